"""The plugin installed the way a user installs it: ``pip install`` of its directory into a
throwaway virtualenv, found through its ``flyte_deploy`` entry point, run with the
flyte_deploy.testing kit (``deploy_project.git_init`` and ``run_subprocess(python=...)``).
The same deploy gains Bitbucket links only where it is installed; ``-p no:bitbucket`` turns
it off."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

import flyte_deploy
from flyte_deploy.testing import install_in_venv

PLUGIN_DIR = Path(__file__).resolve().parents[1]
PLUGIN_VERSION = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]["version"]

TASKS_PY = """\
import flyte_deploy as fd

env = fd.TaskEnvironment(name="bb")


@env.task
@(lambda func: func)
def clean(x: int) -> int:
    return x


@env.task(
    retries=1,
)
async def train(x: int) -> int:
    return x
"""


def def_line(name: str) -> int:
    return next(i for i, line in enumerate(TASKS_PY.splitlines(), 1) if f"def {name}(" in line)


@pytest.fixture(scope="session")
def plugin_venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a throwaway virtualenv where the plugin is pip-installed; built once per
    test session."""
    return install_in_venv(PLUGIN_DIR, tmp_path_factory.mktemp("bitbucket-venv"))


@pytest.fixture
def plugin_python(plugin_venv_python: Path, deploy_isolation) -> Path:
    """``plugin_venv_python``, with installed ``flyte_deploy`` entry points loading again for
    this test (the kit turns them off); installed policy plugins stay off."""
    deploy_isolation.use_installed_plugins(policy=False)
    return plugin_venv_python


@pytest.fixture
def bitbucket_commit(deploy_project) -> str:
    """``deploy_project`` holding tasks.py, committed in a git repository whose origin is on
    bitbucket.org; returns the commit sha."""
    deploy_project({"tasks.py": TASKS_PY})
    return deploy_project.git_init(remote="git@bitbucket.org:acme/pipelines.git")


def links(project, *args: str, python: Path | str | None = None) -> dict[str, str | None]:
    """task name -> source link of ``flyte-deploy deploy tasks.py env ARGS`` in a subprocess."""
    run = project.run_subprocess("deploy", "tasks.py", "env", "--output", "json", "-q", *args, python=python)
    return {t["name"]: t["source_link"] for e in run.assert_ok().json["environments"] for t in e["tasks"]}


def plugins(project, *args: str, python: Path | str | None = None) -> dict[str, dict]:
    run = project.run_subprocess("plugins", "--json", *args, python=python)
    return {p["name"]: p for p in run.assert_ok().json["plugins"]}


def test_the_venv_imports_this_checkouts_flyte_deploy(plugin_python: Path, deploy_project) -> None:
    code = "import flyte_deploy, flyte_deploy_bitbucket as b; print(flyte_deploy.__file__); print(b.__file__)"
    done = subprocess.run(
        [str(plugin_python), "-c", code],
        cwd=deploy_project.root,
        env=deploy_project.subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ours, plugin = map(Path, done.stdout.split())
    assert ours.resolve() == Path(flyte_deploy.__file__).resolve()
    assert plugin.is_relative_to(plugin_python.parents[1])  # installed into the venv, not the source


def test_installed_plugin_adds_bitbucket_links(plugin_python: Path, deploy_project, bitbucket_commit: str) -> None:
    expected = {
        f"bb.{name}": f"https://bitbucket.org/acme/pipelines/src/{bitbucket_commit}/tasks.py#lines-{def_line(name)}"
        for name in ("clean", "train")
    }
    assert links(deploy_project, python=plugin_python) == expected
    listed = deploy_project.run_subprocess("ls", "--output", "json", python=plugin_python).assert_ok().json
    assert {t["name"]: t["source_link"] for r in listed for t in r["tasks"]} == expected


@pytest.mark.usefixtures("bitbucket_commit")
def test_without_the_plugin_the_same_deploy_has_no_links(deploy_project) -> None:
    # whether or not the plugin is installed where the tests run: the kit's isolation keeps it off
    assert "bitbucket" not in plugins(deploy_project)
    assert set(links(deploy_project).values()) == {None}


@pytest.mark.usefixtures("bitbucket_commit")
def test_p_no_bitbucket_turns_it_off(plugin_python: Path, deploy_project) -> None:
    assert set(links(deploy_project, "-p", "no:bitbucket", python=plugin_python).values()) == {None}
    assert plugins(deploy_project, "-p", "no:bitbucket", python=plugin_python)["bitbucket"]["status"] == "disabled"


@pytest.mark.usefixtures("bitbucket_commit")
def test_plugins_lists_it_with_its_entry_point_and_version(plugin_python: Path, deploy_project) -> None:
    info = plugins(deploy_project, python=plugin_python)["bitbucket"]
    assert info["source"] == "entrypoint"
    assert info["version"] == f"flyte-deploy-bitbucket {PLUGIN_VERSION}"
    assert info["location"] == "flyte_deploy_bitbucket"
    assert info["status"] == "active"
    assert {"attach_source_link", "configure"} <= set(info["hooks"])


def test_dirty_tree_drops_the_line_anchor(plugin_python: Path, deploy_project, bitbucket_commit: str) -> None:
    deploy_project({"notes.txt": "not committed\n"})
    assert set(links(deploy_project, python=plugin_python).values()) == {
        f"https://bitbucket.org/acme/pipelines/src/{bitbucket_commit}/tasks.py"
    }


def test_github_remotes_stay_with_the_built_in(plugin_python: Path, deploy_project) -> None:
    deploy_project({"tasks.py": TASKS_PY})
    sha = deploy_project.git_init(remote="https://github.com/acme/pipelines.git")
    assert (
        links(deploy_project, python=plugin_python)["bb.clean"]
        == f"https://github.com/acme/pipelines/blob/{sha}/tasks.py#L{def_line('clean')}"
    )


def test_a_bad_host_table_fails_with_one_line_naming_the_file(plugin_python: Path, deploy_project) -> None:
    toml = '[tool.flyte-deploy.plugin.bitbucket.hosts]\n"git.corp.example" = "bitbucket-srever"\n'
    deploy_project({"tasks.py": TASKS_PY, "pyproject.toml": toml})
    deploy_project.git_init(remote="https://git.corp.example/scm/DATA/pipelines.git")
    for args in (("deploy", "tasks.py", "env"), ("plugins",)):
        run = deploy_project.run_subprocess(*args, python=plugin_python).assert_exit(4)
        assert run.stderr.strip().splitlines() == [
            (
                f"error: {deploy_project.root / 'pyproject.toml'}: [tool.flyte-deploy.plugin.bitbucket]: host"
                " 'git.corp.example' has flavour 'bitbucket-srever'; choose one of bitbucket-cloud, bitbucket-server,"
                " github-enterprise, gitea, gitlab"
            )
        ]
        assert not run.store.exists()

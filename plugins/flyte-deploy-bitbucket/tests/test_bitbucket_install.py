"""The plugin installed the way a user installs it: ``pip install`` of its directory into a
virtualenv, found through its ``flyte_deploy`` entry point. The same deploy gains
Bitbucket links only where it is installed, and ``-p no:bitbucket`` turns it off."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from tests.fixtures.gitrepos import GitRepos, deploy_env

PLUGIN_DIR = Path(__file__).resolve().parents[1]
PLUGIN_VERSION = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]["version"]

TASKS_PY = '''\
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
'''


def def_line(name: str) -> int:
    return next(i for i, line in enumerate(TASKS_PY.splitlines(), 1) if f"def {name}(" in line)


@pytest.fixture(scope="session")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv seeing the system's packages (flyte-deploy's dependencies) with the
    plugin pip-installed from a copy of its directory; built once per test session."""
    base = tmp_path_factory.mktemp("bitbucket-plugin")
    source = base / "flyte-deploy-bitbucket"
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache", "tests"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--ignore-installed",
         "--no-input", "--disable-pip-version-check", "-q", str(source)],
        capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return python


def flyte_deploy(python: Path | str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m flyte_deploy args`` with this checkout's flyte_deploy first on the path."""
    return subprocess.run([str(python), "-m", "flyte_deploy", *args], cwd=cwd, capture_output=True, text=True,
                          check=False, env=deploy_env(), timeout=120)


def links(python: Path | str, project: Path, *args: str) -> dict[str, str | None]:
    done = flyte_deploy(python, project, "deploy", "tasks.py", "env", "--output", "json", "-q", *args)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return {t["name"]: t["source_link"] for e in result["environments"] for t in e["tasks"]}


def plugins(python: Path | str, project: Path, *args: str) -> dict[str, dict]:
    done = flyte_deploy(python, project, "plugins", "--json", *args)
    assert done.returncode == 0, done.stderr
    return {p["name"]: p for p in json.loads(done.stdout)["plugins"]}


@pytest.fixture
def bitbucket_project(git_repos: GitRepos) -> Path:
    return git_repos.init("bb", {"tasks.py": TASKS_PY}, remote="git@bitbucket.org:acme/pipelines.git")


def test_the_venv_imports_this_checkouts_flyte_deploy(plugin_python: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(plugin_python), "-c", "import flyte_deploy, flyte_deploy_bitbucket as b;"
                           "print(flyte_deploy.__file__); print(b.__file__)"],
                          capture_output=True, text=True, check=False, env=deploy_env(), cwd=tmp_path)
    ours, plugin = done.stdout.split()
    assert Path(ours).is_relative_to(PLUGIN_DIR.parents[1] / "src")
    assert Path(plugin).is_relative_to(plugin_python.parents[1])  # installed into the venv, not the source


def test_installed_plugin_adds_bitbucket_links(plugin_python: Path, git_repos: GitRepos,
                                               bitbucket_project: Path) -> None:
    sha = git_repos.head(bitbucket_project)
    expected = {f"bb.{name}": f"https://bitbucket.org/acme/pipelines/src/{sha}/tasks.py#lines-{def_line(name)}"
                for name in ("clean", "train")}
    assert links(plugin_python, bitbucket_project) == expected
    listed = json.loads(flyte_deploy(plugin_python, bitbucket_project, "ls", "--output", "json").stdout)
    assert {t["name"]: t["source_link"] for r in listed for t in r["tasks"]} == expected


def test_without_the_plugin_the_same_deploy_has_no_links(bitbucket_project: Path) -> None:
    installed = plugins(sys.executable, bitbucket_project)
    assert "bitbucket" not in installed, (
        "flyte-deploy-bitbucket is installed in the interpreter running the tests; its tests install it into"
        " a virtualenv themselves, so do not install it system-wide")
    assert set(links(sys.executable, bitbucket_project).values()) == {None}


def test_p_no_bitbucket_turns_it_off(plugin_python: Path, bitbucket_project: Path) -> None:
    assert set(links(plugin_python, bitbucket_project, "-p", "no:bitbucket").values()) == {None}
    assert plugins(plugin_python, bitbucket_project, "-p", "no:bitbucket")["bitbucket"]["status"] == "disabled"


def test_plugins_lists_it_with_its_entry_point_and_version(plugin_python: Path, bitbucket_project: Path) -> None:
    info = plugins(plugin_python, bitbucket_project)["bitbucket"]
    assert info["source"] == "entrypoint"
    assert info["version"] == f"flyte-deploy-bitbucket {PLUGIN_VERSION}"
    assert info["location"] == "flyte_deploy_bitbucket"
    assert info["status"] == "active"
    assert {"attach_source_link", "configure"} <= set(info["hooks"])


def test_dirty_tree_drops_the_line_anchor(plugin_python: Path, git_repos: GitRepos, bitbucket_project: Path) -> None:
    (bitbucket_project / "notes.txt").write_text("not committed\n")
    sha = git_repos.head(bitbucket_project)
    assert set(links(plugin_python, bitbucket_project).values()) == \
        {f"https://bitbucket.org/acme/pipelines/src/{sha}/tasks.py"}


def test_github_remotes_stay_with_the_built_in(plugin_python: Path, git_repos: GitRepos) -> None:
    project = git_repos.init("gh", {"tasks.py": TASKS_PY}, remote="https://github.com/acme/pipelines.git")
    sha = git_repos.head(project)
    assert links(plugin_python, project)["bb.clean"] == \
        f"https://github.com/acme/pipelines/blob/{sha}/tasks.py#L{def_line('clean')}"


HOSTS_TOML = '''\
[tool.flyte-deploy.plugin.bitbucket.hosts]
"git.corp.example" = "bitbucket-server"
"ghe.corp.example" = { flavour = "github-enterprise", web_url = "https://github.corp.example" }
"gitea.corp.example" = "gitea"
'''


@pytest.mark.parametrize("remote, expected", [
    ("https://builder:s3cr3t@git.corp.example/scm/DATA/pipelines.git",
     "https://git.corp.example/projects/DATA/repos/pipelines/browse/tasks.py?at={sha}#{line}"),
    ("ssh://git@git.corp.example:7999/data/pipelines.git",
     "https://git.corp.example/projects/DATA/repos/pipelines/browse/tasks.py?at={sha}#{line}"),
    ("git@ghe.corp.example:acme/pipelines.git", "https://github.corp.example/acme/pipelines/blob/{sha}/tasks.py#L{line}"),
    ("https://gitea.corp.example/acme/pipelines.git",
     "https://gitea.corp.example/acme/pipelines/src/commit/{sha}/tasks.py#L{line}"),
    ("https://unmapped.corp.example/acme/pipelines.git", None),
], ids=["bitbucket-server-https", "bitbucket-server-ssh", "github-enterprise", "gitea", "unmapped"])
def test_self_hosted_forges_mapped_in_pyproject(plugin_python: Path, git_repos: GitRepos, remote: str,
                                                expected: str | None) -> None:
    project = git_repos.init("corp", {"tasks.py": TASKS_PY, "pyproject.toml": HOSTS_TOML}, remote=remote)
    sha = git_repos.head(project)
    done = flyte_deploy(plugin_python, project, "deploy", "tasks.py", "env", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr
    result = json.loads(done.stdout)
    got = {t["name"]: t["source_link"] for e in result["environments"] for t in e["tasks"]}
    assert got["bb.clean"] == (expected.format(sha=sha, line=def_line("clean")) if expected else None)


def test_a_bad_host_table_fails_with_one_line_naming_the_file(plugin_python: Path, git_repos: GitRepos) -> None:
    toml = '[tool.flyte-deploy.plugin.bitbucket.hosts]\n"git.corp.example" = "bitbucket-srever"\n'
    project = git_repos.init("typo", {"tasks.py": TASKS_PY, "pyproject.toml": toml},
                             remote="https://git.corp.example/scm/DATA/pipelines.git")
    for args in (("deploy", "tasks.py", "env"), ("plugins",)):
        done = flyte_deploy(plugin_python, project, *args)
        assert done.returncode == 4, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"error: {project / 'pyproject.toml'}: [tool.flyte-deploy.plugin.bitbucket]: host 'git.corp.example'"
            " has flavour 'bitbucket-srever'; choose one of bitbucket-cloud, bitbucket-server, github-enterprise,"
            " gitea, gitlab"]
    assert not (project / ".flyte-deploy").exists()

"""The flyte_deploy.testing kit: isolation, plugin_manager, register_plugin, hook_recorder and
deploy_project, checked in process and, for isolation between tests, in pytest sessions of
their own (pytester)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy.errors import PluginError
from flyte_deploy.pluginmanager import BUILTIN_PLUGINS, DeployPluginManager

ENVS = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="{name}", resources=fd.Resources(cpu=1, memory="1Gi"))

@env.task
def work(x: int) -> int:
    return x + 1
"""


def version_plugin(version: str) -> types.ModuleType:
    module = types.ModuleType("fixed_version")

    @fd.hookimpl
    def compute_version(session, plan):
        return version

    module.compute_version = compute_version
    return module


def test_plugin_manager_is_fresh_with_the_builtins(plugin_manager):
    assert isinstance(plugin_manager, DeployPluginManager)
    assert [n for n, _ in BUILTIN_PLUGINS] == [i.name for i in plugin_manager.infos.values()][: len(BUILTIN_PLUGINS)]
    assert all(plugin_manager.infos[n].source == "builtin" for n, _ in BUILTIN_PLUGINS)
    assert plugin_manager.hook.discover_environments.get_hookimpls()


def test_register_plugin_reaches_plugin_manager_and_deploys(plugin_manager, register_plugin, deploy_project):
    name = register_plugin(version_plugin("from-test"), "fixed_version")
    assert name == "fixed_version"
    assert plugin_manager.infos["fixed_version"].source == "env"  # registered after the manager was built
    assert plugin_manager.hook.compute_version.get_hookimpls()[-1].plugin_name == "fixed_version"

    deploy_project({"envs.py": ENVS.format(name="one")})
    run = deploy_project.deploy("envs.py", "env").assert_ok()
    assert run.json["version"] == "from-test"
    assert run.deployed()[0]["version"] == "from-test"


def test_register_plugin_refuses_clashes_and_misspelled_hooks(register_plugin, plugin_manager, tmp_path, monkeypatch):
    register_plugin(version_plugin("a"), "fixed_version")
    with pytest.raises(ValueError, match="already registered"):
        register_plugin(version_plugin("b"), "fixed_version")
    with pytest.raises(ValueError, match="a module of that name is imported"):
        register_plugin(version_plugin("c"), "os")

    site = tmp_path / "site"
    info = site / "shadow-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[flyte_deploy]\nshadowed = shadow_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ValueError, match="an installed flyte_deploy entry point of that name"):
        register_plugin(version_plugin("d"), "shadowed")

    class Typo:
        @fd.hookimpl
        def compute_verison(self, session, plan):
            return "x"

    with pytest.raises(PluginError, match="compute_verison"):
        register_plugin(Typo(), "typo")


def test_hook_recorder_records_calls_in_order_with_arguments_and_results(deploy_project, hook_recorder):
    deploy_project({"envs.py": ENVS.format(name="rec")})
    run = deploy_project.deploy("envs.py", "env").assert_ok()

    phases = [n for n in hook_recorder.names if n not in ("add_hookspecs", "phase_finished")]
    assert phases == [
        "configure",
        "register_backends",
        "register_image_builders",
        "deploy_start",
        "discover_environments",
        "find_environments",
        "resolve_dependencies",
        "build_bundle",
        "compute_version",
        "serialize_task",
        "attach_source_link",
        "check_plan",
        "build_image",
        "upload_bundle",
        "register_environment",
        "deploy_finish",
        "unconfigure",
    ]
    assert hook_recorder.getcall("compute_version").returned == run.json["version"]
    serialized = hook_recorder.getcall("serialize_task")
    assert serialized.task.name == "rec.work" and serialized.environment.name == "rec"
    assert serialized.returned.name == "rec.work"
    assert [c.report.phase for c in hook_recorder.getcalls("phase_finished")][:2] == [
        "discover_environments",
        "resolve_dependencies",
    ]
    assert len(hook_recorder.getcalls("build_bundle compute_version")) == 2
    with pytest.raises(AttributeError, match="no argument 'nope'"):
        serialized.nope  # noqa: B018


def test_hook_recorder_records_errors(deploy_project, hook_recorder):
    deploy_project({"envs.py": "raise RuntimeError('broken on purpose')\n"})
    deploy_project.deploy("envs.py", "env").assert_exit(5)
    discover = hook_recorder.getcall("discover_environments")
    assert discover.returned is None and "broken on purpose" in str(discover.raised)
    assert hook_recorder.getcall("deploy_finish").error is discover.raised


def test_hook_recorder_attaches_to_plugin_manager(plugin_manager, hook_recorder):
    plugin_manager.hook.unconfigure(config=None)
    assert hook_recorder.getcall("unconfigure").config is None


def test_same_named_modules_of_two_projects_deploy_in_one_test(deploy_project):
    first = deploy_project({"envs.py": ENVS.format(name="first")})
    second = deploy_project.new("second", {"envs.py": ENVS.format(name="second")})
    assert first.deploy("envs.py", "env").assert_ok().json["environments"][0]["name"] == "first"
    assert second.deploy("envs.py", "env").assert_ok().json["environments"][0]["name"] == "second"
    assert "envs" not in sys.modules, "the kit forgets project modules after each run"
    assert str(first.root) not in sys.path and str(second.root) not in sys.path
    assert first.deploy_api("envs.py:env", version="v1").version == "v1"
    assert second.deploy_api("envs.py:env", version="v1").environments == ("second",)


def test_deploy_run_reports_store_json_and_output(deploy_project, tmp_path):
    deploy_project({"envs.py": ENVS.format(name="store")})
    store = tmp_path / "elsewhere"
    run = deploy_project.deploy("envs.py", "env", "--store", store.as_uri(), "--version", "v9").assert_ok()
    assert run.store == store and run.ok
    assert [(r["environment"], r["version"]) for r in run.deployed()] == [("store", "v9")]
    assert not deploy_project.store.exists()
    assert "register_environment" in run.stderr  # progress lines go to stderr
    table = deploy_project.deploy("envs.py", "env", "--output", "table", "--version", "v9", "--store", store.as_uri())
    assert table.json is None and "Deployed version v9" in table.assert_ok().stdout


def test_run_subprocess_does_not_pass_in_memory_plugins(deploy_project, register_plugin):
    register_plugin(version_plugin("in-memory"), "fixed_version")
    deploy_project({"envs.py": ENVS.format(name="sub")})
    assert deploy_project.deploy("envs.py", "env").assert_ok().json["version"] == "in-memory"
    run = deploy_project.run_subprocess("deploy", "envs.py", "env", "--output", "json").assert_ok()
    assert run.json["version"] != "in-memory"


def test_subprocess_env_is_what_run_subprocess_uses(deploy_project, register_plugin, monkeypatch):
    register_plugin(version_plugin("in-memory"), "fixed_version")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    environ = deploy_project.subprocess_env({"EXTRA": "1"})
    assert environ["PYTHONPATH"].split(os.pathsep) == [str(Path(fd.__file__).resolve().parent.parent), "/elsewhere"]
    assert environ["EXTRA"] == "1" and "FLYTE_DEPLOY_PLUGINS" not in environ
    code = "import flyte_deploy, os; print(flyte_deploy.__file__, os.environ['EXTRA'])"
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(Path(fd.__file__).resolve()), "1"]


def test_git_init_commits_the_project_for_source_links_ignoring_the_machines_git_config(
    deploy_project, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()  # a user whose git config rewrites push URLs and names another author
    (home / ".gitconfig").write_text(
        '[url "https://mirror.example/"]\n\tpushInsteadOf = https://github.com/\n[user]\n\tname = Machine User\n'
    )
    monkeypatch.setenv("HOME", str(home))
    deploy_project({"envs.py": ENVS.format(name="linked")})
    sha = deploy_project.git_init(remote="https://github.com/acme/demo.git")
    assert re.fullmatch(r"[0-9a-f]{40}", sha) and deploy_project.git("log", "--format=%an") == "flyte-deploy test"
    link = f"https://github.com/acme/demo/blob/{sha}/envs.py#L{ENVS.splitlines().index('def work(x: int) -> int:')}"
    run = deploy_project.deploy("envs.py", "env").assert_ok()
    assert run.json["environments"][0]["tasks"][0]["source_link"] == link
    assert deploy_project.git("status", "--porcelain") == ""  # the store and __pycache__ are ignored
    sub = deploy_project.run_subprocess("deploy", "envs.py", "env", "--output", "json").assert_ok()
    assert sub.json["environments"][0]["tasks"][0]["source_link"] == link
    assert deploy_project.new("bare", {"a.txt": "x"}).git_init(commit=False) is None


KIT_SESSION = '''
import os, sys
import pytest
import flyte_deploy as fd

ENVS = """
import flyte_deploy as fd
env = fd.TaskEnvironment(name="{name}", resources=fd.Resources(cpu=1, memory="1Gi"))

@env.task
def work(x: int) -> int:
    return x
"""

PATH = list(sys.path)


class FixedVersion:
    @fd.hookimpl
    def compute_version(self, session, plan):
        return "pinned"


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_same_module_name_in_every_test(deploy_project, register_plugin, name):
    assert "FLYTE_DEPLOY_BACKEND" not in os.environ and os.environ["NO_COLOR"] == "1"
    if name == "alpha":
        register_plugin(FixedVersion(), "pinned")
    deploy_project({"envs.py": ENVS.format(name=name)})
    run = deploy_project.deploy("envs.py", "env").assert_ok()
    assert run.json["environments"][0]["name"] == name
    assert (run.json["version"] == "pinned") == (name == "alpha")
    deploy_project.import_module("envs.py")
    assert "envs" in sys.modules


def test_nothing_leaked(plugin_manager):
    assert "envs" not in sys.modules and "pinned" not in sys.modules
    assert "FLYTE_DEPLOY_PLUGINS" not in os.environ
    assert sys.path == PATH
    assert "pinned" not in plugin_manager.infos
'''


def test_isolation_between_tests_in_a_session_of_its_own(pytester, monkeypatch):
    monkeypatch.setenv("FLYTE_DEPLOY_BACKEND", "not-a-backend")  # must not reach the kit's tests
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(p) for p in sys.path if p]))
    pytester.makeconftest('pytest_plugins = ["flyte_deploy.testing"]\n')
    pytester.makepyfile(test_kit_session=KIT_SESSION)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)


def test_the_kit_is_opt_in_not_a_pytest11_entry_point(pytester, monkeypatch):
    from importlib import metadata

    assert not [ep for ep in metadata.entry_points(group="pytest11") if ep.value.startswith("flyte_deploy")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(p) for p in sys.path if p]))
    pytester.makepyfile(test_no_kit="def test_uses_kit(deploy_project):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'deploy_project' not found*"])


def test_the_examples_in_the_testing_docs_pass(pytester, monkeypatch):
    """docs/plugins/testing.md's conftest.py, first test module and policy test, run as written."""
    repo = Path(__file__).resolve().parent.parent
    text = (repo / "docs" / "plugins" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    conftest = next(b for b in blocks if b.startswith("# conftest.py"))
    first = next(b for b in blocks if b.startswith("# test_my_plugin.py"))
    policy = next(b for b in blocks if b.startswith("import flyte_deploy_policy"))
    pythonpath = [str(repo / "plugins" / "flyte-deploy-policy" / "src"), *(str(p) for p in sys.path if p)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(pythonpath))
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_my_plugin=first, test_policy_snippet=policy)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)


def test_install_in_venv_fails_the_test_with_pips_output_and_leaves_the_source_alone(tmp_path):
    """The success path is the installed-plugin tests of both packages of plugins/."""
    from flyte_deploy.testing import install_in_venv

    source = tmp_path / "broken"
    source.mkdir()
    (source / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "no_such_backend"\n')
    with pytest.raises(pytest.fail.Exception) as failed:
        install_in_venv(source, tmp_path / "venv")
    message = str(failed.value)
    assert message.startswith(f"pip install of {source} failed:") and "no_such_backend" in message
    assert sorted(p.name for p in source.iterdir()) == ["pyproject.toml"]

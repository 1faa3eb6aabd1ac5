"""Backends and image builders are chosen by name when a command starts: a typo fails every
command up front (nothing discovered, built, uploaded or stored), two plugins offering one
name fail naming both, and a plugin's backend is deployed to by name."""

from __future__ import annotations

import pytest

from flyte_deploy.errors import ExitCode

ENVS = """
import flyte_deploy as fd
env = fd.TaskEnvironment(name="solo")

@env.task
def hello() -> str:
    return "hi"
"""

#: every command that selects a backend and image builder, with arguments that would work
COMMANDS = {
    "deploy": ("deploy", "envs.py", "env", "-q"),
    "dry-run": ("deploy", "envs.py", "env", "-q", "--dry-run"),
    "check": ("check", "envs.py", "env", "-q"),
    "ls": ("ls",),
    "run": ("run", "solo.hello"),
    "serve": ("serve", "solo-app"),
}

#: a deployconf.py whose discovery would record that it ran
WATCHER = """
import flyte_deploy as fd

CALLS = []

@fd.hookimpl(tryfirst=True)
def discover_environments(session, request):
    CALLS.append("discover")
    open("discovered", "w").close()
"""


@pytest.fixture
def proj(project, monkeypatch):
    root = project({"envs.py": ENVS, "deployconf.py": WATCHER})
    monkeypatch.chdir(root)
    return root


def assert_nothing_happened(root):
    assert not (root / "discovered").exists(), "discovery ran before the name was checked"
    assert not (root / ".flyte-deploy").exists(), "something was stored"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_backend_on_the_command_line_fails_every_command_up_front(proj, invoke, command):
    result = invoke(*COMMANDS[command], "--backend", "locall")
    assert result.exit_code == ExitCode.USAGE_ERROR, result.stderr
    assert "error: backend 'locall' is unknown; available: local, remote (set in command line)" in result.stderr
    assert_nothing_happened(proj)


@pytest.mark.parametrize("command", [*COMMANDS, "plugins"])
def test_an_unknown_backend_in_pyproject_fails_every_command(proj, invoke, command):
    (proj / "pyproject.toml").write_text('[tool.flyte-deploy]\nbackend = "nosuch"\n')
    result = invoke(*COMMANDS.get(command, ("plugins",)))
    assert result.exit_code == ExitCode.USAGE_ERROR, result.stderr
    assert f"backend 'nosuch' is unknown; available: local, remote (set in {proj / 'pyproject.toml'})" in result.stderr
    assert_nothing_happened(proj)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_image_builder_fails_every_command_up_front(proj, invoke, command):
    (proj / "pyproject.toml").write_text('[tool.flyte-deploy]\nimage = { builder = "dokcer" }\n')
    result = invoke(*COMMANDS[command])
    assert result.exit_code == ExitCode.USAGE_ERROR, result.stderr
    assert "image.builder 'dokcer' is unknown; available: auto, docker, oci" in result.stderr
    assert_nothing_happened(proj)


@pytest.mark.parametrize("command", [*COMMANDS, "plugins"])
def test_blocking_a_plugin_nobody_has_fails_every_command(proj, invoke, command):
    result = invoke(*COMMANDS.get(command, ("plugins",)), "-p", "no:sourcelink")
    assert result.exit_code == ExitCode.USAGE_ERROR, result.stderr
    assert "error: -p no:sourcelink: no plugin is named 'sourcelink'; known:" in result.stderr
    assert "source_link" in result.stderr
    assert_nothing_happened(proj)


@pytest.mark.parametrize("command", [*COMMANDS, "plugins"])
def test_a_misspelled_hook_fails_every_command_naming_its_file_and_line(proj, invoke, command):
    (proj / "deployconf.py").write_text(WATCHER + "\n\n@fd.hookimpl\ndef build_bundel(plan):\n    return None\n")
    result = invoke(*COMMANDS.get(command, ("plugins",)))
    assert result.exit_code == ExitCode.PLUGIN_ERROR, result.stderr
    line = WATCHER.count("\n") + 3
    assert f"error: {proj / 'deployconf.py'}:{line}: plugin 'deployconf' (local" in result.stderr
    assert "build_bundel is not a flyte-deploy hook (did you mean build_bundle?)" in result.stderr
    assert "flyte_deploy_local_plugin" not in result.stderr  # no internal module name
    assert_nothing_happened(proj)


@pytest.mark.parametrize("command", [*COMMANDS, "plugins"])
def test_every_command_loads_pyproject_plugins_and_p(proj, invoke, command, monkeypatch):
    """A plugin named in pyproject (or with -p) that refuses the configuration fails every command alike."""
    (proj / "strict.py").write_text(
        "import flyte_deploy as fd\n\n@fd.hookimpl\ndef configure(config):\n"
        "    raise fd.UsageError('strict: refused')\n"
    )
    monkeypatch.syspath_prepend(str(proj))
    (proj / "pyproject.toml").write_text('[tool.flyte-deploy]\nplugins = ["strict.py"]\n')
    result = invoke(*COMMANDS.get(command, ("plugins",)))
    assert result.exit_code == ExitCode.USAGE_ERROR and "strict: refused" in result.stderr
    (proj / "pyproject.toml").unlink()
    result = invoke(*COMMANDS.get(command, ("plugins",)), "-p", "strict")
    assert result.exit_code == ExitCode.USAGE_ERROR and "strict: refused" in result.stderr


MEMO_BACKEND = """
import flyte_deploy as fd

REGISTERED = []

def register(session, environment, tasks, plan):
    REGISTERED.extend(t.name for t in tasks)
    return [fd.Registration(task=t.name, version=plan.version, status="created") for t in tasks]

@fd.hookimpl
def register_backends():
    return [fd.Backend(name={name!r}, register=register, description="in memory")]
"""


def test_a_plugin_backend_is_deployed_to_by_name(project, invoke, monkeypatch):
    root = project({"envs.py": ENVS, "deployconf.py": MEMO_BACKEND.format(name="memo")})
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "env", "--backend", "memo", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.json()["backend"] == "memo"
    assert [r["task"] for r in result.json()["registrations"]] == ["solo.hello"]
    assert not (root / ".flyte-deploy" / "environments").exists()  # the local store was not written

    listed = invoke("plugins", "--json").json()
    assert {"name": "memo", "plugin": "deployconf", "capabilities": []} in listed["backends"]
    local = {
        "name": "local",
        "plugin": "local_backend",
        "capabilities": ["list", "run", "apps", "serve", "diff", "history"],
    }
    assert local in listed["backends"]

    cannot_list = invoke("ls", "--backend", "memo")
    assert cannot_list.exit_code == ExitCode.USAGE_ERROR
    assert "backend 'memo' (command line) cannot list what it holds" in cannot_list.stderr
    cannot_run = invoke("run", "solo.hello", "--backend", "memo")
    assert cannot_run.exit_code == ExitCode.USAGE_ERROR
    assert "backend 'memo' (command line) cannot run tasks" in cannot_run.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_two_plugins_offering_one_backend_name_fail_naming_both(project, invoke, monkeypatch, command):
    root = project({"envs.py": ENVS, "deployconf.py": MEMO_BACKEND.format(name="local")})
    monkeypatch.chdir(root)
    result = invoke(*COMMANDS[command])
    assert result.exit_code == ExitCode.PLUGIN_ERROR, result.stderr
    assert "two backends are named 'local': offered by plugin 'deployconf'" in result.stderr
    assert "plugin 'local_backend' (builtin flyte-deploy " in result.stderr  # its distribution and version
    assert f"plugin 'deployconf' (local {root / 'deployconf.py'})" in result.stderr
    assert not (root / ".flyte-deploy").exists()

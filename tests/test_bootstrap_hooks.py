"""Bootstrap and reporting hooks: add_hookspecs, configure (historic), unconfigure,
deploy_start, phase_finished and deploy_finish."""

from __future__ import annotations

import pytest

from flyte_deploy.api import open_session
from flyte_deploy.errors import ExitCode
from flyte_deploy.lifecycle import deploy
from flyte_deploy.types import DeployRequest

ENVS = """
import flyte_deploy as fd
env = fd.TaskEnvironment(name="solo")

@env.task
def hello() -> str:
    return "hi"
"""

RECORDER = """
import flyte_deploy as fd

EVENTS = []

@fd.hookimpl
def configure(config):
    EVENTS.append(("configure", config.root_dir.name))

@fd.hookimpl
def unconfigure(config):
    EVENTS.append(("unconfigure", config.root_dir.name))

@fd.hookimpl
def deploy_start(session, plan):
    EVENTS.append(("deploy_start", plan.request.mode))

@fd.hookimpl
def phase_finished(session, report):
    assert report.duration >= 0
    EVENTS.append(("phase_finished", report.phase, report.outcome, report.detail))

@fd.hookimpl
def deploy_finish(session, result, error):
    EVENTS.append(("deploy_finish", result.version if result else None, type(error).__name__ if error else None))
"""


def events_of(session):
    return session.pluginmanager.get_plugin("deployconf").EVENTS


def test_configure_is_replayed_to_late_plugins_and_reporting_hooks_fire(project):
    root = project({"envs.py": ENVS, "deployconf.py": RECORDER})
    with open_session(root, options={"quiet": True}) as session:
        events = events_of(session)
        assert events == [("configure", "proj")]  # deployconf registers after configure's first call
        deploy(session, DeployRequest(mode="all", path=root / "envs.py"), version="v1")
    phases = [e[1] for e in events if e[0] == "phase_finished"]
    assert phases == [
        "discover_environments",
        "resolve_dependencies",
        "build_bundle",
        "serialize_task",
        "attach_source_link",
        "check_plan",
        "build_image",
        "upload_bundle",
        "register_environment",
    ]
    assert ("phase_finished", "serialize_task", "passed", "1 task(s)") in events
    assert ("phase_finished", "register_environment", "passed", "1 task(s) registered with local") in events
    assert events[1] == ("deploy_start", "all")
    assert events[-2:] == [("deploy_finish", "v1", None), ("unconfigure", "proj")]


def test_deploy_finish_and_unconfigure_see_failures(project, invoke, monkeypatch):
    root = project({"envs.py": ENVS + "\nraise SystemExit(3)\n", "deployconf.py": RECORDER})
    with open_session(root, options={"quiet": True}) as session:
        events = events_of(session)
        with pytest.raises(Exception) as info:
            deploy(session, DeployRequest(mode="all", path=root / "envs.py"))
        assert info.value.exit_code == ExitCode.DISCOVERY_FAILED
    assert events[-2:] == [("deploy_finish", None, "DiscoveryError"), ("unconfigure", "proj")]
    failed = [e for e in events if e[0] == "phase_finished"]
    assert len(failed) == 1 and failed[0][1:3] == ("discover_environments", "failed")


def test_add_hookspecs_lets_a_plugin_define_hooks_others_implement(project, invoke, monkeypatch):
    root = project(
        {
            "envs.py": ENVS,
            "myspecs.py": """
            import flyte_deploy as fd

            @fd.hookspec(firstresult=True)
            def notify_channel(environment):
                '''Where to announce a deployed environment.'''
        """,
            "announcer.py": """
            import flyte_deploy as fd
            import myspecs

            @fd.hookimpl
            def add_hookspecs(pluginmanager):
                pluginmanager.add_hookspecs(myspecs)

            @fd.hookimpl
            def deploy_finish(session, result, error):
                channel = session.hook.notify_channel(environment=result.environments[0])
                session.console.print(f"announce to {channel}")
        """,
            "deployconf.py": """
            import flyte_deploy as fd

            @fd.hookimpl
            def notify_channel(environment):
                return "#deploys-" + environment
        """,
            "pyproject.toml": '[tool.flyte-deploy]\nplugins = ["announcer"]\n',
        }
    )
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    result = invoke("deploy", "--all", "envs.py", "-q")
    assert result.exit_code == 0, result.stderr
    assert "announce to #deploys-solo" in result.stderr

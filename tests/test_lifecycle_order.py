"""The lifecycle calls hooks in the documented order (recorded, then asserted exactly)."""

from __future__ import annotations

import pytest

from flyte_deploy.api import open_session
from flyte_deploy.errors import PolicyViolation
from flyte_deploy.lifecycle import deploy
from flyte_deploy.types import DeployRequest, Violation

PROJECT = {
    "envs.py": """
        import flyte_deploy as fd
        base = fd.TaskEnvironment(name="base")
        top = fd.TaskEnvironment(name="top", depends_on=[base])

        @base.task
        def one() -> int:
            return 1

        @top.task
        def two() -> int:
            return one() + 1

        @top.task
        def three() -> int:
            return 3
    """,
}

PHASE_HOOKS = {
    "deploy_start",
    "discover_environments",
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
}


def record(session):
    calls: list[tuple[str, str]] = []

    def before(hook_name, hook_impls, kwargs):
        if hook_name in PHASE_HOOKS:
            subject = kwargs.get("task") or kwargs.get("environment")
            calls.append((hook_name, getattr(subject, "name", "")))

    session.pluginmanager.add_hookcall_monitoring(before, lambda *a: None)
    return calls


def test_hooks_are_called_in_lifecycle_order(project):
    root = project(PROJECT)
    with open_session(root, options={"quiet": True}) as session:
        calls = record(session)
        deploy(session, DeployRequest(mode="file", path=root / "envs.py", env_names=("top",)))
    assert calls == [
        ("deploy_start", ""),
        ("discover_environments", ""),
        ("resolve_dependencies", ""),
        ("build_bundle", ""),
        ("compute_version", ""),
        ("serialize_task", "base.one"),
        ("serialize_task", "top.two"),
        ("serialize_task", "top.three"),
        ("attach_source_link", "base.one"),
        ("attach_source_link", "top.two"),
        ("attach_source_link", "top.three"),
        ("check_plan", ""),
        ("build_image", "base"),  # one distinct image shared by both environments
        ("upload_bundle", ""),
        ("register_environment", "base"),
        ("register_environment", "top"),
        ("deploy_finish", ""),
    ]


def test_dry_run_stops_after_the_policy_check(project):
    root = project(PROJECT)
    with open_session(root, options={"quiet": True}, dry_run=True) as session:
        calls = record(session)
        result = deploy(session, DeployRequest(mode="all", path=root / "envs.py"), version="v1")
    names = [name for name, _ in calls]
    assert "compute_version" not in names  # an explicit version skips it
    assert names[-2:] == ["check_plan", "deploy_finish"]
    assert not {"build_image", "upload_bundle", "register_environment"} & set(names)
    assert result.dry_run and result.version == "v1"
    assert not (root / ".flyte-deploy").exists()


def test_a_violation_stops_before_anything_is_built_uploaded_or_registered(project):
    root = project(PROJECT)

    class Veto:
        @staticmethod
        def check_plan(session, plan):
            return [Violation(rule="no-top", subject="top", message="top is not allowed")]

    from flyte_deploy import hookimpl

    Veto.check_plan = hookimpl(Veto.check_plan)
    with open_session(root, options={"quiet": True}) as session:
        session.pluginmanager.register(Veto(), name="veto")
        calls = record(session)
        with pytest.raises(PolicyViolation, match="no-top: top: top is not allowed"):
            deploy(session, DeployRequest(mode="all", path=root / "envs.py"))
    names = [name for name, _ in calls]
    assert names[-2:] == ["check_plan", "deploy_finish"]
    assert not (root / ".flyte-deploy").exists()

"""`flyte-deploy diff`: a plan against what the backend holds, on the embedded store and on a
control plane on 127.0.0.1; each kind of change names exactly its field; exit 0 when nothing
changes, 20 when changes are pending, 6 when a `check_diff` policy refuses the diff."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy.api import open_session
from flyte_deploy.diffing import FIELDS, bundle_digest, changes, run_diff
from flyte_deploy.errors import ExitCode
from flyte_deploy.types import DeployRequest
from tests.diffing_helpers import APP, Target, make_target

BACKENDS = ("local", "remote")


@pytest.fixture(params=BACKENDS)
def target(request, deploy_project, tmp_path) -> Target:
    deploy_project({"app.py": APP})
    return make_target(request, deploy_project, request.param, tmp_path).settings()


def by_name(run) -> dict[str, dict]:
    return {t["name"]: t for t in run.json["tasks"]}


def test_nothing_deployed_yet_every_task_is_new_and_changes_are_pending(target):
    run = target.diff().assert_exit(ExitCode.CHANGES_PENDING)
    assert run.json["backend"] == target.backend
    assert [(t["name"], t["status"], t["deployed_version"]) for t in run.json["tasks"]] == [
        ("svc.ping", "new", None),
        ("svc.pong", "new", None),
    ]
    assert run.json["pending"] is True and run.json["summary"]["new"] == 2
    assert not (target.project.store / "deployments.db").exists()  # a diff writes nothing
    if target.server is not None:
        assert not [m for m, _, _ in target.server.service.calls if m == "DeployTask"]


def test_an_identical_plan_is_unchanged_and_exits_0(target):
    deployed = target.deploy()
    run = target.diff().assert_ok()
    assert [t["status"] for t in run.json["tasks"]] == ["unchanged", "unchanged"]
    assert run.json["pending"] is False and run.json["version"] == deployed.json["version"]
    table = target.diff("--output", "table").assert_ok()
    assert f"0 new, 0 changed, 0 removed, 2 unchanged: nothing to deploy to backend {target.backend}" in table.stdout


def test_another_version_of_the_same_spec_is_unchanged(target):
    target.deploy("--version", "v1")
    run = target.diff("--version", "v2").assert_ok()
    assert {(t["deployed_version"], t["planned_version"], t["status"]) for t in run.json["tasks"]} == {
        ("v1", "v2", "unchanged")
    }


SETTING_CHANGES = [
    ("image", {"image": "python:3.12-slim"}, "python:3.11-slim", "python:3.12-slim"),
    ("resources", {"cpu": 2}, "requests cpu=1 memory=512Mi", "requests cpu=2 memory=512Mi"),
    ("interface", {"out": "int"}, "(host: STRING, port: INTEGER) -> (o0: STRING)", None),
    ("default inputs", {"default": 8080}, "port=80", "port=8080"),
    ("env vars", {"env": {"MODE": "prod"}}, "MODE=test", "MODE=prod"),
    ("secrets", {"secrets": ["api-key", "db-password"]}, "api-key as API_KEY", None),
    ("retries", {"retries": 3}, "0", "3"),
    ("timeout", {"timeout": 300}, "none", "300s"),
    ("cache", {"cache": "auto"}, "off", None),
]


@pytest.mark.parametrize(("field", "change", "before", "after"), SETTING_CHANGES, ids=[c[0] for c in SETTING_CHANGES])
def test_a_change_in_one_setting_names_exactly_that_field(target, field, change, before, after):
    target.deploy("--version", "v1")
    target.settings(**change)
    run = target.diff().assert_exit(ExitCode.CHANGES_PENDING)
    ping = by_name(run)["svc.ping"]
    assert ping["status"] == "changed"
    assert [c["field"] for c in ping["changes"]] == [field]
    assert ping["changes"][0]["before"] == before
    if after is not None:
        assert ping["changes"][0]["after"] == after
    pong = by_name(run)["svc.pong"]  # environment-wide settings change it too, task settings do not
    environment_wide = field in ("image", "resources", "env vars", "secrets")
    assert pong["status"] == ("changed" if environment_wide else "unchanged")


def test_bundle_content_changes_the_bundle_digest_only(target):
    first = target.deploy()
    target.project.write({"app.py": APP + "\n# a comment: the bundle changes, no setting does\n"})
    run = target.diff().assert_exit(ExitCode.CHANGES_PENDING)
    for task in run.json["tasks"]:
        assert [c["field"] for c in task["changes"]] == ["bundle digest"]
        assert task["changes"][0]["before"] == first.json["bundle"]["digest"]
        assert task["changes"][0]["after"] != first.json["bundle"]["digest"]


def test_removed_and_new_tasks(target):
    target.deploy()
    target.settings(pong=False)
    run = target.diff().assert_exit(ExitCode.CHANGES_PENDING)
    assert [(t["name"], t["status"]) for t in run.json["tasks"]] == [("svc.ping", "unchanged"), ("svc.pong", "removed")]
    assert by_name(run)["svc.pong"]["planned_version"] is None
    target.deploy()  # ping is deployed again, pong's latest stays what it was: still removed
    assert by_name(target.diff().assert_exit(20))["svc.pong"]["status"] == "removed"


def test_a_task_added_to_a_deployed_environment_is_new(target):
    target.settings(pong=False).deploy()
    target.settings(pong=True)
    run = target.diff().assert_exit(ExitCode.CHANGES_PENDING)
    assert [(t["name"], t["status"]) for t in run.json["tasks"]] == [("svc.ping", "unchanged"), ("svc.pong", "new")]


def test_the_table_names_each_changed_field(target):
    target.deploy()
    target.settings(retries=2, env={"MODE": "prod"})
    run = target.diff("--output", "table").assert_exit(20)
    assert "svc.ping" in run.stdout and "changed" in run.stdout
    assert "retries: 0 -> 2" in run.stdout and "env vars: MODE=test -> MODE=prod" in run.stdout
    assert "0 new, 2 changed, 0 removed, 0 unchanged" in run.stdout


def test_the_diff_compares_with_the_configured_domain(target):
    target.deploy()
    run = target.diff("--domain", "production").assert_exit(20)
    assert run.json["domain"] == "production"
    assert {t["status"] for t in run.json["tasks"]} == {"new"}


def interface_freeze() -> types.ModuleType:
    module = types.ModuleType("interface_freeze")

    @fd.hookimpl
    def check_diff(session, diff):
        if diff.domain != "production":
            return None
        return [
            fd.Violation("interface.frozen", e.name, "changes the interface of a production task")
            for e in diff.entries
            if "interface" in e.fields
        ]

    module.check_diff = check_diff
    return module


def test_a_check_diff_policy_refuses_an_interface_change_in_production(target, register_plugin):
    register_plugin(interface_freeze(), "interface_freeze", policy=True)
    for domain in ("development", "production"):
        target.deploy("--domain", domain)
    target.settings(out="int")
    assert target.diff("--domain", "development").exit_code == ExitCode.CHANGES_PENDING  # not policed there
    run = target.diff("--domain", "production").assert_exit(ExitCode.POLICY_VIOLATION)
    assert run.violations == [
        {
            "rule": "interface.frozen",
            "subject": "svc.ping",
            "message": "changes the interface of a production task",
            "plugin": "interface_freeze",
        }
    ]
    assert by_name(run)["svc.ping"]["changes"][0]["field"] == "interface"  # the diff is still shown
    assert "error: 1 policy violation(s) reported by interface_freeze" in run.stderr
    table = target.diff("--domain", "production", "--output", "table").assert_exit(6)
    assert "interface.frozen: svc.ping: changes the interface of a production task [interface_freeze]" in table.stdout
    target.settings(out="str", retries=1)  # another change in production is fine
    assert target.diff("--domain", "production").exit_code == ExitCode.CHANGES_PENDING


def test_a_check_plan_violation_stops_the_diff_before_the_backend_is_read(target, register_plugin):
    module = types.ModuleType("no_tasks")
    module.check_plan = fd.hookimpl(lambda session, plan: [fd.Violation("none", t.name, "no") for t in plan.tasks])
    register_plugin(module, "no_tasks", policy=True)
    run = target.diff()
    assert run.exit_code == ExitCode.POLICY_VIOLATION
    assert "2 policy violation(s)" in run.stderr


def test_the_api_diffs_environment_objects(target):
    target.deploy()
    target.settings(timeout=60)
    diff = fd.diff(target.project.environment("app.py:env"), root_dir=target.project.root, options={"quiet": True})
    assert diff.backend == target.backend and diff.pending
    assert [(e.name, e.fields) for e in diff.entries] == [("svc.ping", ("timeout",)), ("svc.pong", ())]
    assert diff.entries[0].changes[0].paths == ("task_template.metadata.timeout.seconds",)
    assert diff.to_json()["summary"] == {"new": 0, "changed": 1, "removed": 0, "unchanged": 1}


def test_run_diff_needs_a_dry_run_session(target):
    request = DeployRequest(mode="file", path=target.project.root / "app.py", env_names=("env",))
    with open_session(target.project.root, options={"quiet": True}) as session, pytest.raises(fd.UsageError):
        run_diff(session, request)  # a diff never runs a real deploy
    with open_session(target.project.root, options={"quiet": True}, dry_run=True) as session:
        assert run_diff(session, request).count("new") == 2


def test_a_backend_that_cannot_diff_is_a_usage_error(deploy_project, register_plugin):
    deploy_project({"app.py": APP})
    Target(deploy_project, "local").settings()
    module = types.ModuleType("memo")
    module.register_backends = fd.hookimpl(lambda: [fd.Backend("memo", lambda *a: [])])
    register_plugin(module, "memo")
    run = Target(deploy_project, "memo").diff("--backend", "memo").assert_exit(ExitCode.USAGE_ERROR)
    assert "error: backend 'memo' (command line) cannot tell what it holds, so it cannot diff" in run.stderr


def test_bad_arguments_are_usage_errors(target):
    run = target.run("diff", "app.py")
    assert run.exit_code == ExitCode.USAGE_ERROR and "name the environment variable(s)" in run.stderr


def test_every_named_field_reads_its_own_paths():
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    prefixes = [p for f in FIELDS for p in f.prefixes]
    assert len(prefixes) == len(set(prefixes))


# -- a flyte SDK project ------------------------------------------------------------------

PROJECTS = Path(__file__).parent / "flyte_projects"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_flyte_project_diff_names_each_changed_field(request, deploy_project, tmp_path, backend):
    pytest.importorskip("flyte")
    shutil.copy(PROJECTS / "basics.py", deploy_project.root / "basics.py")
    target = make_target(request, deploy_project, backend, tmp_path)
    target.run("deploy", "basics.py", "top_env").assert_ok()
    same = target.run("diff", "basics.py", "top_env").assert_ok()
    assert {t["status"] for t in same.json["tasks"]} == {"unchanged"} and len(same.json["tasks"]) == 5
    other = target.run("diff", "basics.py", "top_env", "--version", "other").assert_ok()  # the version aside
    assert {t["planned_version"] for t in other.json["tasks"]} == {"other"}

    source = (PROJECTS / "basics.py").read_text()
    changed = source.replace("retries=3,", "retries=4,").replace('"MODE": "test"', '"MODE": "prod"')
    changed = changed.replace('memory="1Gi"', 'memory="2Gi"').replace("y: int = 2", "y: int = 5")
    changed = changed.replace("\n@middle_env.task(report=True)\nasync def nothing() -> None:\n    return None\n", "\n")
    deploy_project.write({"basics.py": changed})
    run = target.run("diff", "basics.py", "top_env").assert_exit(ExitCode.CHANGES_PENDING)
    tasks = by_name(run)
    fields = {name: [c["field"] for c in t["changes"]] for name, t in tasks.items()}
    assert tasks["basics-middle.nothing"]["status"] == "removed"
    # the flyte SDK's cache version hashes the function's source, its default included
    assert fields["basics-base.add"] == ["bundle digest", "resources", "default inputs", "env vars", "cache"]
    assert "retries" in fields["basics-base.multiply"]
    assert fields["basics-top.pipeline"] == ["bundle digest"]
    default = next(c for c in tasks["basics-base.add"]["changes"] if c["field"] == "default inputs")
    assert (default["before"], default["after"]) == ("y=2", "y=5")


def test_changes_compare_the_bundle_by_its_digest():
    from flyteidl2.task.task_definition_pb2 import TaskSpec

    digest = "ab" * 32
    old, new = TaskSpec(), TaskSpec()
    old.task_template.container.args.extend(["--tgz", f"s3://a/{digest}.tar.gz"])
    new.task_template.container.args.extend(["--tgz", f"s3://b/{digest}.tar.gz"])
    assert bundle_digest(old) == digest
    assert [c.field for c in changes(old, new)] == ["bundle location"]


def test_a_path_no_field_covers_is_named_by_its_path():
    from flyteidl2.task.task_definition_pb2 import TaskSpec

    old, new = TaskSpec(), TaskSpec()
    new.task_template.metadata.debuggable = True
    (change,) = changes(old, new)
    assert (change.field, change.before, change.after) == (
        "task_template.metadata.debuggable",
        "task_template.metadata.debuggable=False",
        "task_template.metadata.debuggable=True",
    )


def test_an_unreachable_control_plane_is_one_line_and_exit_15(request, deploy_project, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_DEPLOY_RETRIES", "0")  # the retries' backoff is tested with deploy
    deploy_project({"app.py": APP})
    target = make_target(request, deploy_project, "remote", tmp_path).settings()
    target.deploy()
    target.server.stop()
    for run in (target.diff(), target.history("svc.ping")):
        assert run.exit_code == ExitCode.CONTROL_PLANE_FAILED, run.stderr
        assert run.stderr.startswith("error: cannot reach the control plane at http://127.0.0.1:")
        assert run.stderr.count("\n") == 1

"""`flyte-deploy diff` and `history` of Flyte apps, on the embedded store and on a control plane
on 127.0.0.1 (its AppService): an app never deployed is new, the same spec is unchanged
whatever the version, a change in one setting names exactly that field, entries carry
`kind: "app"`, exit codes count apps, and a `check_diff` policy sees app changes. History
lists an app's revisions (the control plane keeps only the current one)."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path
from typing import Any

import pytest

import flyte_deploy as fd
from flyte_deploy.diffing import APP, APP_FIELDS, changes
from flyte_deploy.errors import ExitCode
from flyte_deploy.testing import DeployRun
from flyte_deploy.types import APP_VERSION_LABEL
from tests.diffing_helpers import Target, make_target

pytest.importorskip("flyte")
BACKENDS = ("local", "remote")
APPS_PROJECT = Path(__file__).parent / "flyte_projects" / "apps"
REMOTE = "https://github.com/acme/apps.git"

#: an app whose every setting comes from settings.json (read at import, not bundled)
WEB = """
import json
import pathlib
from datetime import timedelta

import flyte
import flyte.app

S = json.loads((pathlib.Path(__file__).parent / "settings.json").read_text())

web = flyte.app.AppEnvironment(
    name="web",
    image=S["image"],
    port=S["port"],
    args=S["args"],
    resources=flyte.Resources(cpu=S["cpu"], memory="1Gi"),
    scaling=flyte.app.Scaling(replicas=tuple(S["replicas"]), scaledown_after=timedelta(seconds=S["scaledown"])),
    env_vars=S["env"],
    secrets=[flyte.Secret(key=key, as_env_var=key.upper().replace("-", "_")) for key in S["secrets"]],
    requires_auth=S["auth"],
    domain=flyte.app.Domain(subdomain=S["subdomain"]),
    timeouts=flyte.app.Timeouts(request=timedelta(seconds=S["timeout"])),
    parameters=[flyte.app.Parameter(name="title", value=S["title"], env_var="TITLE")],
)
"""

SETTINGS: dict[str, Any] = {
    "image": "python:3.11-slim",
    "port": 8080,
    "args": ["python", "-m", "http.server", "8080"],
    "cpu": 1,
    "replicas": [0, 2],
    "scaledown": 300,
    "env": {"MODE": "test"},
    "secrets": ["api-key"],
    "auth": True,
    "subdomain": "web",
    "timeout": 30,
    "title": "Scores",
}


class AppTarget(Target):
    """``Target`` for the ``web`` app project."""

    def settings(self, **changes: Any) -> AppTarget:
        self.project.write({"settings.json": json.dumps({**SETTINGS, **changes})})
        return self

    def deploy(self, *args: str) -> DeployRun:
        return self.run("deploy", "web.py", "web", *args).assert_ok()

    def diff(self, *args: str) -> DeployRun:
        return self.run("diff", "web.py", "web", *args)


@pytest.fixture(params=BACKENDS)
def target(request, deploy_project, tmp_path) -> AppTarget:
    deploy_project({"web.py": WEB})
    base = make_target(request, deploy_project, request.param, tmp_path)
    return AppTarget(base.project, base.backend, base.server).settings()


def entry(run) -> dict:
    (web,) = run.json["tasks"]
    return web


def test_an_app_never_deployed_is_new(target):
    run = target.diff().assert_exit(ExitCode.CHANGES_PENDING)
    assert entry(run) == {
        "kind": "app",
        "name": "web",
        "environment": "web",
        "status": "new",
        "deployed_version": None,
        "planned_version": run.json["version"],
        "deployed_revision": None,
        "changes": [],
    }
    assert run.json["summary"] == {"new": 1, "changed": 0, "removed": 0, "unchanged": 0}
    assert not (target.project.store / "deployments.db").exists()  # a diff writes nothing
    if target.server is not None:
        assert not target.server.apps.apps


def test_a_deployed_app_is_unchanged_whatever_the_version(target):
    target.deploy("--version", "v1")
    run = target.diff("--version", "v1").assert_ok()
    assert (entry(run)["status"], entry(run)["deployed_revision"]) == ("unchanged", 1)
    other = target.diff("--version", "v2").assert_ok()  # the version label and fserve --version aside
    assert (entry(other)["deployed_version"], entry(other)["planned_version"]) == ("v1", "v2")
    assert entry(other)["status"] == "unchanged"
    table = target.diff("--output", "table", "--version", "v2").assert_ok()
    assert "0 new, 0 changed, 0 removed, 1 unchanged: nothing to deploy" in table.stdout


SETTING_CHANGES = [
    ("image", {"image": "python:3.12-slim"}, "python:3.11-slim", "python:3.12-slim"),
    ("resources", {"cpu": 2}, "requests cpu=1 memory=1Gi", "requests cpu=2 memory=1Gi"),
    ("scaling", {"replicas": [1, 2]}, "replicas 0-2, scaledown after 300s", "replicas 1-2, scaledown after 300s"),
    ("scaling", {"scaledown": 600}, "replicas 0-2, scaledown after 300s", "replicas 0-2, scaledown after 600s"),
    ("port", {"port": 8081}, "8080", "8081"),
    ("env vars", {"env": {"MODE": "prod"}}, "MODE=test, _F_SYS_PATH=./.", "MODE=prod, _F_SYS_PATH=./."),
    ("secrets", {"secrets": ["api-key", "db-key"]}, "api-key as API_KEY", "api-key as API_KEY, db-key as DB_KEY"),
    ("requires auth", {"auth": False}, "true", "false"),
    ("ingress", {"subdomain": "www"}, "subdomain web", "subdomain www"),
    ("timeouts", {"timeout": 60}, "request 30s", "request 60s"),
    ("parameters", {"title": "Totals"}, "title=Scores as TITLE", "title=Totals as TITLE"),
    ("command", {"args": ["python", "-m", "http.server", "9000"]}, None, None),
]


@pytest.mark.parametrize(
    ("field", "change", "before", "after"), SETTING_CHANGES, ids=[next(iter(c[1])) for c in SETTING_CHANGES]
)
def test_a_change_in_one_app_setting_names_exactly_that_field(target, field, change, before, after):
    target.deploy("--version", "v1")
    target.settings(**change)
    run = target.diff("--version", "v2").assert_exit(ExitCode.CHANGES_PENDING)
    web = entry(run)
    assert (web["kind"], web["status"], web["deployed_version"]) == ("app", "changed", "v1")
    assert web["deployed_revision"] == 1
    assert [c["field"] for c in web["changes"]] == [field]
    found = web["changes"][0]
    if before is not None:
        assert (found["before"], found["after"]) == (before, after)
    else:
        assert "9000" in found["after"] and "8080" in found["before"]
    assert all(p.startswith(("spec.", "metadata.")) for p in found["paths"])


def test_the_table_names_the_app_and_its_changed_fields(target):
    target.deploy("--version", "v1")
    target.settings(port=8081, env={"MODE": "prod"})
    run = target.diff("--output", "table", "--version", "v2").assert_exit(20)
    assert "web (app)" in run.stdout and "(revision 1)" in run.stdout
    assert "port: 8080 -> 8081" in run.stdout and "env vars: MODE=test," in run.stdout and "MODE=prod" in run.stdout
    assert "0 new, 1 changed, 0 removed, 0 unchanged" in run.stdout


def test_a_new_revision_is_what_the_diff_compares_with(target):
    target.deploy("--version", "v1")
    target.settings(port=8081).deploy("--version", "v2")
    run = target.diff("--version", "v3").assert_ok()
    assert (entry(run)["status"], entry(run)["deployed_version"], entry(run)["deployed_revision"]) == (
        "unchanged",
        "v2",
        2,
    )


def port_freeze() -> types.ModuleType:
    module = types.ModuleType("port_freeze")

    @fd.hookimpl
    def check_diff(session, diff):
        return [
            fd.Violation("app.port", e.name, "changes the port of a served app")
            for e in diff.entries
            if e.kind == "app" and "port" in e.fields
        ]

    module.check_diff = check_diff
    return module


def test_a_check_diff_policy_sees_an_app_change(target, register_plugin):
    register_plugin(port_freeze(), "port_freeze", policy=True)
    target.deploy("--version", "v1")
    target.settings(env={"MODE": "prod"})
    assert target.diff().exit_code == ExitCode.CHANGES_PENDING  # another field: not policed
    target.settings(port=9000)
    run = target.diff().assert_exit(ExitCode.POLICY_VIOLATION)
    assert run.violations == [
        {"rule": "app.port", "subject": "web", "message": "changes the port of a served app", "plugin": "port_freeze"}
    ]
    assert entry(run)["changes"][0]["field"] == "port"  # the diff is still shown


def test_the_api_diffs_app_environment_objects(target):
    target.deploy("--version", "v1")
    target.settings(timeout=90)
    web = target.project.import_module("web.py").web  # a flyte.app.AppEnvironment
    diff = fd.diff(web, version="v2", root_dir=target.project.root, options={"quiet": True})
    assert diff.pending and diff.backend == target.backend
    (only,) = diff.entries
    assert (only.kind, only.name, only.fields, only.deployed_revision) == ("app", "web", ("timeouts",), 1)
    assert only.changes[0].paths == ("spec.timeouts.request_timeout.seconds",)


# -- the apps project: tasks and apps in one plan ------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_project_of_tasks_and_apps_diffs_both_in_deploy_order(request, deploy_project, tmp_path, backend):
    for source in APPS_PROJECT.glob("*.py"):
        shutil.copy(source, deploy_project.root / source.name)
    target = make_target(request, deploy_project, backend, tmp_path)
    new = target.run("diff", "--all", "apps.py").assert_exit(ExitCode.CHANGES_PENDING)
    assert [(e["kind"], e["name"], e["status"]) for e in new.json["tasks"]] == [
        ("task", "apps-worker.score", "new"),
        ("app", "apps-echo", "new"),
        ("app", "apps-scores", "new"),
    ]
    deployed = target.run("deploy", "--all", "apps.py").assert_ok()
    same = target.run("diff", "--all", "apps.py").assert_ok()
    assert {e["status"] for e in same.json["tasks"]} == {"unchanged"}
    assert same.json["version"] == deployed.json["version"]

    source = (deploy_project.root / "apps.py").read_text()
    deploy_project.write({"apps.py": source.replace("replicas=(0, 3)", "replicas=(1, 3)")})
    run = target.run("diff", "--all", "apps.py").assert_exit(ExitCode.CHANGES_PENDING)
    fields = {e["name"]: [c["field"] for c in e["changes"]] for e in run.json["tasks"]}
    assert fields == {
        "apps-worker.score": ["bundle digest"],
        "apps-echo": ["bundle digest", "scaling"],
        "apps-scores": ["bundle digest"],
    }
    digest = next(c for c in run.json["tasks"][1]["changes"] if c["field"] == "bundle digest")
    assert digest["before"] == deployed.json["bundle"]["digest"] != digest["after"]


def test_a_backend_that_cannot_diff_apps_is_a_usage_error(deploy_project, register_plugin):
    from flyte_deploy.builtin import local_backend

    (local,) = local_backend.register_backends()
    module = types.ModuleType("tasks_only")
    module.register_backends = fd.hookimpl(
        lambda: [
            fd.Backend(
                "tasks-only",
                local.register,
                register_app=local.register_app,
                deployed_tasks=local.deployed_tasks,
                task_history=local.task_history,
            )
        ]
    )
    register_plugin(module, "tasks_only")
    deploy_project({"web.py": WEB})
    target = AppTarget(deploy_project, "tasks-only").settings()
    run = target.diff("--backend", "tasks-only").assert_exit(ExitCode.USAGE_ERROR)
    assert "error: backend 'tasks-only' (command line) cannot tell which apps it holds, so it cannot diff app web" in (
        run.stderr
    )
    run = deploy_project.run_cli("history", "web", "--backend", "tasks-only", "--root-dir", str(deploy_project.root))
    assert run.exit_code == ExitCode.USAGE_ERROR
    assert "backend 'tasks-only' (command line) keeps no app history it can show" in run.stderr


# -- history of an app -----------------------------------------------------------------------


def three_revisions(target: AppTarget) -> list[tuple[str, dict]]:
    """Deploy three commits of the app, each changing its bundle and port; (commit, deploy JSON) each."""
    project, deploys = target.project, []
    for n in range(3):
        if n:
            project.write({"web.py": WEB + f"\n# revision {n}\n"})
            target.settings(port=8080 + n)
            project.git("commit", "-qam", f"revision {n}")
        else:
            project.git_init(remote=REMOTE)
        deploys.append((project.git("rev-parse", "HEAD"), target.deploy().json))
    return deploys


def test_app_history_lists_the_revisions_the_backend_keeps(target):
    deploys = three_revisions(target)
    run = target.history("web").assert_ok()
    # the embedded store keeps every revision; the AppService only the current one
    kept = deploys if target.backend == "local" else deploys[-1:]
    assert [r["revision"] for r in run.json] == ([1, 2, 3] if target.backend == "local" else [3])
    assert [r["version"] for r in run.json] == [d["version"] for _, d in kept]
    assert [r["bundle_digest"] for r in run.json] == [d["bundle"]["digest"] for _, d in kept]
    for (commit, _), record in zip(kept, run.json, strict=True):
        assert (record["kind"], record["app"]) == ("app", "web")
        assert record["source_link"].startswith(f"https://github.com/acme/apps/blob/{commit}/web.py#L")
        assert record["deployed_at"].endswith("Z")
    table = target.history("web", "--output", "table").assert_ok()
    assert f"History of app web on backend {target.backend} (flytesnacks/development)" in table.stdout
    assert f"sha256 {deploys[-1][1]['bundle']['digest'][:12]}" in table.stdout
    note = f"revisions 1 to 2 are not kept by backend {target.backend}"
    assert (note in table.stdout) == (target.backend == "remote")


def test_app_history_through_the_api(target):
    target.deploy("--version", "v1")
    target.settings(cpu=2).deploy("--version", "v2")
    revisions = fd.app_history("web", root_dir=target.project.root)
    assert revisions[-1].version == "v2" and revisions[-1].revision == 2
    assert revisions[-1].spec.metadata.labels[APP_VERSION_LABEL] == "v2"
    assert revisions[-1].deployed_at is not None and revisions[-1].deployed_at.tzinfo is not None
    assert [r.version for r in revisions] == (["v1", "v2"] if target.backend == "local" else ["v2"])


def test_an_app_redeployed_at_its_version_adds_no_revision(target):
    target.deploy("--version", "v1")
    target.deploy("--version", "v1")
    assert [r["revision"] for r in target.history("web").assert_ok().json] == [1]


def test_an_app_never_deployed_is_a_usage_error_and_a_dotted_name_needs_app(target):
    target.deploy()
    run = target.history("nope").assert_exit(ExitCode.USAGE_ERROR)
    assert run.stderr.strip() == (
        f"error: app nope was never deployed to flytesnacks/development on backend {target.backend!r}"
        " (a task is named ENV.TASK)"
    )
    run = target.history("web.example", "--app").assert_exit(ExitCode.USAGE_ERROR)
    assert "error: app web.example was never deployed" in run.stderr
    run = target.history("web.example").assert_exit(ExitCode.USAGE_ERROR)  # a dotted name is a task
    assert "error: task web.example was never deployed" in run.stderr
    assert target.history("web", "--domain", "production").exit_code == ExitCode.USAGE_ERROR  # per domain


def test_history_of_an_app_and_diff_in_a_subprocess(deploy_project):
    deploy_project({"web.py": WEB})
    target = AppTarget(deploy_project, "local").settings()
    target.deploy("--version", "v1")
    run = deploy_project.run_subprocess("history", "web", "--output", "json")
    assert run.exit_code == 0, run.stderr
    assert [(r["kind"], r["version"]) for r in run.json] == [("app", "v1")]
    assert deploy_project.run_subprocess("diff", "web.py", "web", "--version", "v1", "-q").exit_code == 0
    target.settings(auth=False)
    run = deploy_project.run_subprocess("diff", "web.py", "web", "-q")
    assert run.exit_code == ExitCode.CHANGES_PENDING, run.stderr
    assert "requires auth: true -> false" in run.stdout


# -- units --------------------------------------------------------------------------------


def test_every_named_app_field_reads_its_own_paths():
    names = [f.name for f in APP_FIELDS]
    assert len(names) == len(set(names))
    prefixes = [p for f in APP_FIELDS for p in f.prefixes]
    assert len(prefixes) == len(set(prefixes))


def test_what_the_control_plane_fills_in_is_not_a_change():
    from flyteidl2.app.app_definition_pb2 import App

    planned = App()
    planned.metadata.id.name = "web"
    planned.metadata.labels[APP_VERSION_LABEL] = "v2"
    planned.spec.container.command.extend(["fserve", "--version", "v2", "--tgz", f"s3://b/{'ab' * 32}.tar.gz"])
    held = App()
    held.CopyFrom(planned)
    held.metadata.labels[APP_VERSION_LABEL] = "v1"
    held.metadata.id.org = "acme"
    held.metadata.revision = 4
    held.metadata.source_code.link = "https://github.com/acme/apps/blob/abc/web.py#L3"
    held.spec.creator.user.spec.email = "ci@acme.test"
    held.status.ingress.public_url = "https://web.apps.test"
    held.spec.container.command[2] = "v1"
    assert changes(held, planned, APP) == ()
    held.spec.container.command[4] = f"s3://a/{'cd' * 32}.tar.gz"
    (change,) = changes(held, planned, APP)
    assert (change.field, change.paths, change.before) == ("bundle digest", ("spec.container.command",), "cd" * 32)
    held.spec.container.command[4] = f"s3://a/{'ab' * 32}.tar.gz"
    held.spec.cluster = "east"  # a path no field covers is named by its path... unless a field does
    assert [c.field for c in changes(held, planned, APP)] == ["bundle location", "cluster pool"]


def test_an_unreachable_control_plane_is_one_line_and_exit_15_for_apps(request, deploy_project, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_DEPLOY_RETRIES", "0")  # the retries' backoff is tested with deploy
    deploy_project({"web.py": WEB})
    base = make_target(request, deploy_project, "remote", tmp_path)
    target = AppTarget(base.project, base.backend, base.server).settings()
    target.deploy()
    target.server.stop()
    for run in (target.diff(), target.history("web")):
        assert run.exit_code == ExitCode.CONTROL_PLANE_FAILED, run.stderr
        assert run.stderr.startswith("error: cannot reach the control plane at http://127.0.0.1:")
        assert run.stderr.count("\n") == 1

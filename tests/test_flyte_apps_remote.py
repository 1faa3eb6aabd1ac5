"""Flyte apps on a control plane: the remote backend registers each serialized app with the
AppService of the test control plane (tests/fixtures/flyte_server.py, a real HTTP server on
127.0.0.1 serving flyteidl2's generated TaskService and AppService). An app is one record
with revisions: created, unchanged on the same version and spec, updated to a new revision on
another version, refused on the same version with another spec. The CLI and API deploys go
through the lifecycle's ``register_app`` hook, whose built-in implementation hands each app to
the remote backend's ``Backend.register_app``."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import pytest
from flyteidl2.app import app_definition_pb2, app_payload_pb2
from flyteidl2.app.app_service_connect import AppServiceClientSync
from flyteidl2.task import task_definition_pb2

from flyte_deploy.builtin.remote_backend import app_spec, listing, look_up_apps, register_one_app
from flyte_deploy.config import Config
from flyte_deploy.errors import ExitCode, RegistrationError, RunError
from flyte_deploy.remote import AppServiceConnection, RemoteSettings, TaskServiceConnection
from flyte_deploy.types import APP_VERSION_LABEL, SerializedApp
from tests.fixtures.flyte_server import APP_CREATOR, settings_for
from tests.test_remote_deploy import TOKEN, assert_no_local_store, write_config

pytest.importorskip("flyte")
PROJECT, DOMAIN = "flytesnacks", "development"
APPS_PROJECT = Path(__file__).parent / "flyte_projects" / "apps" / "apps.py"
#: what ``deploy --all apps.py`` registers, in deploy order (the worker's task, then the apps)
DEPLOYED = [("apps-worker.score", "task"), ("apps-echo", "app"), ("apps-scores", "app")]


def settings_of(server) -> RemoteSettings:
    return settings_for(server.endpoint, project=PROJECT, domain=DOMAIN, concurrency=4)


def make_app(name: str, version: str, image: str = "img:1", port: int = 8080) -> SerializedApp:
    """An ``app.App`` shaped like a serialized one: identifier, version label, container."""
    spec = app_definition_pb2.App()
    spec.metadata.id.project, spec.metadata.id.domain, spec.metadata.id.name = PROJECT, DOMAIN, name
    spec.metadata.labels[APP_VERSION_LABEL] = version
    spec.metadata.source_code.link = f"https://github.com/acme/apps/blob/{version}/apps.py#L3"
    spec.spec.container.image = image
    spec.spec.container.args.extend(["fserve", "--version", version])
    spec.spec.container.ports.add(container_port=port)
    return SerializedApp(environment=name, spec=spec)


def app_calls(server) -> list[str]:
    return [method for method, _, _ in server.service.calls if method.startswith("AppService.")]


@pytest.fixture
def apps(flyte_server):
    with AppServiceConnection(settings_of(flyte_server), None) as connection:
        yield connection


def test_an_app_is_created_then_unchanged_then_updated_to_a_new_revision(flyte_server, apps):
    first = make_app("web", "v1")
    created = register_one_app(apps, first, None)
    assert (created.task, created.version, created.status, created.kind) == ("web", "v1", "created", "app")
    stored = flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")]
    assert stored.metadata.revision == 1 and stored.spec.container == first.spec.spec.container

    held = apps.get(apps.app_id("web"))
    assert held is not None and held.status.ingress.public_url  # Get returns it with its status
    assert held.spec.creator.user.spec.email == APP_CREATOR  # the control plane's, not ours
    # the same version and spec (another commit's source link): nothing is sent
    again = make_app("web", "v1")
    again.spec.metadata.source_code.link = "https://github.com/acme/apps/blob/other/apps.py#L3"
    assert register_one_app(apps, again, held).status == "unchanged"
    assert app_calls(flyte_server) == ["AppService.Create", "AppService.Get"]

    updated = register_one_app(apps, make_app("web", "v2", image="img:2"), held)
    assert (updated.version, updated.status, updated.kind) == ("v2", "updated", "app")
    stored = flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")]
    assert stored.metadata.revision == 2
    assert stored.metadata.labels[APP_VERSION_LABEL] == "v2" and stored.spec.container.image == "img:2"
    assert stored.spec.creator.user.spec.email == APP_CREATOR
    update = next(req for m, req, _ in flyte_server.service.calls if m == "AppService.Update")
    assert update.app.metadata.revision == 1  # the revision it replaces, as flyte.remote.App.replace sends
    assert update.reason == "flyte-deploy version v2"


def test_the_same_version_with_another_spec_is_refused_naming_the_fields(flyte_server, apps):
    register_one_app(apps, make_app("web", "v1"), None)
    held = apps.get(apps.app_id("web"))
    with pytest.raises(RegistrationError) as info:
        register_one_app(apps, make_app("web", "v1", image="img:2", port=9090), held)
    assert str(info.value) == (
        "app web version v1 is already deployed with a different spec (differs in spec.container.image,"
        " spec.container.ports); an app's version holds one spec: pass a new --version"
    )
    assert flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")].metadata.revision == 1
    assert "AppService.Update" not in app_calls(flyte_server)


def test_the_look_up_refuses_every_conflicting_app_before_anything_is_registered(flyte_server, apps):
    for name in ("a", "b"):
        register_one_app(apps, make_app(name, "v1"), None)
    plan = [make_app("a", "v1", image="img:2"), make_app("b", "v1", port=1), make_app("c", "v1")]
    with pytest.raises(RegistrationError) as info:
        look_up_apps(apps, plan)
    text = str(info.value)
    assert "app a version v1 is already deployed with a different spec (differs in spec.container.image)" in text
    assert "app b version v1 is already deployed with a different spec (differs in spec.container.ports)" in text
    assert sorted(name for _, _, _, name in flyte_server.apps.apps) == ["a", "b"]
    found = look_up_apps(apps, [make_app("a", "v1"), make_app("c", "v1")])
    assert found["a"] is not None and found["a"].metadata.revision == 1 and found["c"] is None


def test_an_app_changed_meanwhile_is_looked_up_and_decided_again(flyte_server, apps):
    register_one_app(apps, make_app("web", "v1"), None)
    # the look-up saw nothing, but the app exists: Create answers ALREADY_EXISTS, it is fetched
    assert register_one_app(apps, make_app("web", "v1"), None).status == "unchanged"
    assert register_one_app(apps, make_app("web", "v2"), None).status == "updated"
    # the look-up saw revision 1, someone else updated to 2: Update answers ABORTED, fetched again
    stale = apps.get(apps.app_id("web"))
    assert stale is not None
    register_one_app(apps, make_app("web", "v3"), stale)
    before = len(flyte_server.service.calls)
    registration = register_one_app(apps, make_app("web", "v4"), stale)
    assert registration.status == "updated"
    assert app_calls(flyte_server)[-3:] == ["AppService.Update", "AppService.Get", "AppService.Update"]
    assert len(flyte_server.service.calls) == before + 3
    assert flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")].metadata.revision == 4
    with pytest.raises(RegistrationError) as info:  # someone else deployed v4 with another spec meanwhile
        register_one_app(apps, make_app("web", "v4", image="img:9"), stale)
    assert "app web version v4 is already deployed with a different spec" in str(info.value)


def test_a_failed_create_names_the_app_and_says_a_rerun_completes(flyte_server_factory):
    server = flyte_server_factory(fail_app_create_at=1)
    with AppServiceConnection(settings_of(server), None) as connection:
        with pytest.raises(RegistrationError) as info:
            register_one_app(connection, make_app("web", "v1"), None)
        text = str(info.value)
        assert text.startswith(f"registering app web version v1 failed: AppService.Create at {server.endpoint}")
        assert "internal: injected failure of app Create call 1" in text
        assert text.endswith("run the same command again to register the rest")
        assert register_one_app(connection, make_app("web", "v1"), None).status == "created"


def test_app_spec_returns_the_deployed_app_for_serve(flyte_server, apps, tmp_path, monkeypatch):
    register_one_app(apps, make_app("web", "v1"), None)
    config = config_for(flyte_server, tmp_path, monkeypatch)
    served = app_spec(config, "web")
    assert (served.name, served.environment, served.version) == ("web", "web", "v1")
    assert served.spec.metadata.revision == 1 and served.spec.spec.container.image == "img:1"
    with pytest.raises(RunError) as info:
        app_spec(config, "nope")
    assert str(info.value) == (
        f"app nope is not deployed on the control plane at {flyte_server.endpoint} ({PROJECT}/{DOMAIN})"
    )
    AppServiceClientSync(flyte_server.endpoint).delete(app_payload_pb2.DeleteRequest(app_id=apps.app_id("web")))
    with pytest.raises(RunError, match="app web is not deployed"):
        app_spec(config, "web")


def test_a_control_plane_without_an_app_service_lists_its_tasks(flyte_server_factory, tmp_path, monkeypatch):
    """``AppService.List`` answered 404 (UNIMPLEMENTED): a Flyte without apps lists its tasks."""
    server = flyte_server_factory(serve_apps=False)
    spec = task_definition_pb2.TaskSpec(short_name="clean")
    spec.task_template.id.project, spec.task_template.id.domain = PROJECT, DOMAIN
    spec.task_template.id.name, spec.task_template.id.version = "prep.clean", "v1"
    with TaskServiceConnection(settings_of(server), None) as tasks:
        assert tasks.deploy(spec) == "created"
    listed = listing(config_for(server, tmp_path, monkeypatch))
    assert [(r["kind"], r["task"]) for r in listed.records] == [("task", "prep.clean")]


def config_for(server, tmp_path, monkeypatch):
    """The configuration a remote command reads, from a Flyte config.yaml naming ``server``."""
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "config.yaml").write_text(
        f"admin:\n  endpoint: {server.endpoint}\n  insecure: true\n"
        f"task:\n  project: {PROJECT}\n  domain: {DOMAIN}\nflyte-deploy:\n  retries: 0\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    return Config.load(root)


# -- a flyte project with AppEnvironments, through the CLI and the API ----------------------


@pytest.fixture
def apps_project(tmp_path, monkeypatch):
    """tests/flyte_projects/apps (a task environment, a plain app, a FastAPI app depending on
    the task environment) with a config.yaml naming the control plane (``configure``)."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(APPS_PROJECT, root / "apps.py")
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(tmp_path))

    def configure(server, extra: str = "") -> Path:
        write_config(root, server.endpoint, storage=tmp_path / "bundles", extra=extra)
        return root

    return configure


def kinds(result) -> list[tuple[str, str, str]]:
    return [(r["task"], r["kind"], r["status"]) for r in result.json()["registrations"]]


def sent(server, *methods: str) -> list[str]:
    """What was sent with ``methods``: task names of DeployTask, app names of AppService calls."""
    names = []
    for method, request, _ in server.service.calls:
        if method in methods:
            names.append(request.task_id.name if method == "DeployTask" else request.app.metadata.id.name)
    return names


def test_apps_are_created_then_unchanged_then_updated_to_a_new_revision(apps_project, flyte_server, invoke):
    root = apps_project(flyte_server)
    first = invoke("deploy", "--all", "apps.py", "--version", "v1", "--output", "json", "-q")
    assert first.exit_code == 0, first.stderr
    assert kinds(first) == [(name, kind, "created") for name, kind in DEPLOYED]
    assert sent(flyte_server, "DeployTask", "AppService.Create") == [name for name, _ in DEPLOYED]
    stored = {key[3]: app for key, app in flyte_server.apps.apps.items()}
    assert sorted(stored) == ["apps-echo", "apps-scores"]
    for app in stored.values():
        assert app.metadata.revision == 1 and app.metadata.labels[APP_VERSION_LABEL] == "v1"
        assert (app.metadata.id.project, app.metadata.id.domain) == (PROJECT, DOMAIN)
        assert app.metadata.code_bundle_uri == first.json()["bundle"]["uri"]
    assert stored["apps-echo"].spec.container.ports[0].container_port == 8081
    assert {e.key: e.value for e in stored["apps-echo"].spec.container.env}["GREETING"] == "hello"

    again = invoke("deploy", "--all", "apps.py", "--version", "v1", "--output", "json", "-q")
    assert again.exit_code == 0, again.stderr
    assert kinds(again) == [(name, kind, "unchanged") for name, kind in DEPLOYED]
    assert len(sent(flyte_server, "DeployTask", "AppService.Create", "AppService.Update")) == 3  # nothing again

    newer = invoke("deploy", "--all", "apps.py", "--version", "v2", "--output", "json", "-q")
    assert newer.exit_code == 0, newer.stderr
    assert kinds(newer) == [("apps-worker.score", "task", "created"), ("apps-echo", "app", "updated"),
                            ("apps-scores", "app", "updated")]  # fmt: skip
    assert sent(flyte_server, "AppService.Update") == ["apps-echo", "apps-scores"]
    for app in flyte_server.apps.apps.values():
        assert app.metadata.revision == 2 and app.metadata.labels[APP_VERSION_LABEL] == "v2"
        assert "v2" in app.spec.container.command
    assert_no_local_store(root)


def test_the_api_registers_an_app_and_its_dependencies(apps_project, flyte_server):
    import flyte_deploy as fd

    root = apps_project(flyte_server)
    sys.path.insert(0, str(root))
    from apps import scores_app

    result = fd.deploy(scores_app, version="v1", root_dir=root)
    assert result.backend == "remote"
    assert [(r.task, r.kind, r.status) for r in result.registrations] == [
        ("apps-worker.score", "task", "created"),
        ("apps-scores", "app", "created"),
    ]
    assert [a.name for a in result.apps] == ["apps-scores"]
    stored = flyte_server.apps.apps[("", PROJECT, DOMAIN, "apps-scores")]
    assert stored.spec.container == result.apps[0].spec.spec.container


def test_the_same_version_with_another_app_spec_is_refused_before_anything_is_registered(
    apps_project, flyte_server, invoke
):
    apps_project(flyte_server)
    assert invoke("deploy", "apps.py", "echo_app", "--version", "v1", "-q").exit_code == 0
    before = len(flyte_server.service.calls)
    other_image = ("--image", "apps-echo=ghcr.io/acme/echo:2")
    refused = invoke("deploy", "--all", "apps.py", "--version", "v1", *other_image, "-q")
    assert refused.exit_code == ExitCode.REGISTRATION_FAILED
    assert refused.stderr.strip() == (
        "error: app apps-echo version v1 is already deployed with a different spec (differs in"
        " spec.container.command, spec.container.image); an app's version holds one spec: pass a new --version;"
        " registered: none; not registered: apps-worker.score, apps-echo, apps-scores"
    )
    later = [m for m, _, _ in flyte_server.service.calls[before:]]
    assert set(later) == {"GetTaskDetails", "AppService.Get"}  # looked up, nothing registered
    assert flyte_server.service.tasks == {}
    assert flyte_server.apps.apps[("", PROJECT, DOMAIN, "apps-echo")].metadata.revision == 1

    updated = invoke("deploy", "--all", "apps.py", "--version", "v2", *other_image, "--output", "json", "-q")
    assert updated.exit_code == 0, updated.stderr
    assert kinds(updated)[1] == ("apps-echo", "app", "updated")
    assert flyte_server.apps.apps[("", PROJECT, DOMAIN, "apps-echo")].spec.container.image == "ghcr.io/acme/echo:2"


def test_a_failed_app_create_names_what_was_deployed_and_a_rerun_completes(apps_project, flyte_server_factory, invoke):
    server = flyte_server_factory(fail_app_create_at=2)
    apps_project(server)
    failed = invoke("deploy", "--all", "apps.py", "--version", "v1", "-q")
    assert failed.exit_code == ExitCode.REGISTRATION_FAILED
    assert failed.stderr.strip() == (
        f"error: registering app apps-scores version v1 failed: AppService.Create at {server.endpoint} failed:"
        " internal: injected failure of app Create call 2; registered: apps-worker.score, apps-echo;"
        " not registered: apps-scores; run the same command again to register the rest"
    )
    assert sorted(key[3] for key in server.apps.apps) == ["apps-echo"]

    rerun = invoke("deploy", "--all", "apps.py", "--version", "v1", "--output", "json", "-q")
    assert rerun.exit_code == 0, rerun.stderr
    assert kinds(rerun) == [
        ("apps-worker.score", "task", "unchanged"),
        ("apps-echo", "app", "unchanged"),
        ("apps-scores", "app", "created"),
    ]
    assert sorted(key[3] for key in server.apps.apps) == ["apps-echo", "apps-scores"]


def test_a_failed_app_update_leaves_the_old_revision_and_a_rerun_completes(apps_project, flyte_server_factory, invoke):
    server = flyte_server_factory(fail_app_update_at=1)
    apps_project(server)
    assert invoke("deploy", "apps.py", "echo_app", "--version", "v1", "-q").exit_code == 0
    failed = invoke("deploy", "apps.py", "echo_app", "--version", "v2", "-q")
    assert failed.exit_code == ExitCode.REGISTRATION_FAILED
    assert "registering app apps-echo version v2 failed: AppService.Update at" in failed.stderr
    assert "not registered: apps-echo; run the same command again" in failed.stderr
    assert server.apps.apps[("", PROJECT, DOMAIN, "apps-echo")].metadata.revision == 1
    rerun = invoke("deploy", "apps.py", "echo_app", "--version", "v2", "--output", "json", "-q")
    assert kinds(rerun) == [("apps-echo", "app", "updated")]
    assert server.apps.apps[("", PROJECT, DOMAIN, "apps-echo")].metadata.revision == 2


def test_apps_need_the_bearer_token_which_is_never_printed(
    apps_project, flyte_server_factory, invoke, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    server = flyte_server_factory(token=TOKEN)
    apps_project(server)
    refused = invoke("deploy", "apps.py", "echo_app", "--version", "v1", "-q")
    assert refused.exit_code == ExitCode.REGISTRATION_FAILED
    assert refused.stderr.strip().startswith(
        f"error: looking up the apps failed: the control plane at {server.endpoint} refused the credentials"
        " of AppService.Get"
    )
    assert "set FLYTE_DEPLOY_TOKEN or token_command" in refused.stderr
    assert server.apps.apps == {}

    monkeypatch.setenv("FLYTE_DEPLOY_TOKEN", TOKEN)
    before = len(server.service.calls)
    ok = invoke("deploy", "--all", "apps.py", "--version", "v1")
    assert ok.exit_code == 0, ok.stderr
    calls = server.service.calls[before:]
    assert (
        sorted(m for m, _, _ in calls if m.startswith("AppService."))
        == ["AppService.Create"] * 2 + ["AppService.Get"] * 2
    )
    assert {h.get("authorization") for _, _, h in calls} == {f"Bearer {TOKEN}"}
    listed = invoke("ls", "--remote", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    for output in (refused.stdout, refused.stderr, ok.stdout, ok.stderr, listed.stdout, listed.stderr, caplog.text):
        assert TOKEN not in output


def test_apps_on_a_control_plane_without_an_app_service_are_refused_before_any_registration(
    apps_project, flyte_server_factory, invoke
):
    server = flyte_server_factory(serve_apps=False)
    apps_project(server)
    refused = invoke("deploy", "--all", "apps.py", "--version", "v1", "-q")
    assert refused.exit_code == ExitCode.REGISTRATION_FAILED
    assert refused.stderr.startswith(
        f"error: looking up the apps failed: the control plane at {server.endpoint} does not offer"
        " AppService.Get (unimplemented: "
    )
    assert "not registered: apps-worker.score, apps-echo, apps-scores" in refused.stderr
    assert server.service.tasks == {}


def test_apps_over_tls_with_a_custom_ca(apps_project, flyte_server_factory, server_certificates, invoke):
    server = flyte_server_factory(certificates=server_certificates)
    apps_project(server, extra=f"  caCertFilePath: {server_certificates.ca_cert}\n")
    result = invoke("deploy", "apps.py", "echo_app", "--version", "v1", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    assert kinds(result) == [("apps-echo", "app", "created")]


def test_ls_remote_lists_apps_next_to_tasks(apps_project, flyte_server, invoke):
    apps_project(flyte_server)
    for version in ("v1", "v2"):
        assert invoke("deploy", "--all", "apps.py", "--version", version, "-q").exit_code == 0
    listed = invoke("ls", "--remote", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    records = listed.json()
    assert [(r["kind"], r.get("task") or r["app"]) for r in records] == [
        ("task", "apps-worker.score"),
        ("app", "apps-echo"),
        ("app", "apps-scores"),
    ]
    echo = records[1]
    assert (echo["environment"], echo["project"], echo["domain"]) == ("apps-echo", PROJECT, DOMAIN)
    assert (echo["latest"], echo["revision"], echo["status"]) == ("v2", 2, "pending")
    assert echo["url"] == f"https://apps-echo.{PROJECT}-{DOMAIN}.apps.test" and echo["updated_at"]
    table = invoke("ls", "--remote")
    assert "apps-echo (app)" in table.stdout and "revision 2" in table.stdout
    assert "apps-worker.score" in table.stdout

"""Flyte apps on a control plane: the remote backend registers each serialized app with the
AppService of the test control plane (tests/fixtures/flyte_server.py, a real HTTP server on
127.0.0.1 serving flyteidl2's generated TaskService and AppService). An app is one record
with revisions: created, unchanged on the same version and spec, updated to a new revision on
another version, refused on the same version with another spec."""

from __future__ import annotations

import pytest
from flyteidl2.app import app_definition_pb2
from flyteidl2.task import task_definition_pb2

from flyte_deploy.builtin.remote_backend import app_spec, listing, look_up_apps, register_app
from flyte_deploy.config import Config
from flyte_deploy.errors import RegistrationError, RunError
from flyte_deploy.remote import AppServiceConnection, RemoteSettings, TaskServiceConnection
from flyte_deploy.types import APP_VERSION_LABEL, SerializedApp
from tests.fixtures.flyte_server import APP_CREATOR

PROJECT, DOMAIN = "flytesnacks", "development"


def settings_for(server, *, retries: int = 0) -> RemoteSettings:
    return RemoteSettings(
        address=server.endpoint,
        org="",
        project=PROJECT,
        domain=DOMAIN,
        ca_cert=None,
        timeout=5,
        retries=retries,
        token_command=None,
        concurrency=4,
    )


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
    with AppServiceConnection(settings_for(flyte_server), None) as connection:
        yield connection


def test_an_app_is_created_then_unchanged_then_updated_to_a_new_revision(flyte_server, apps):
    first = make_app("web", "v1")
    created = register_app(apps, first, None)
    assert (created.task, created.version, created.status, created.kind) == ("web", "v1", "created", "app")
    stored = flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")]
    assert stored.metadata.revision == 1 and stored.spec.container == first.spec.spec.container

    held = apps.get(apps.app_id("web"))
    assert held is not None and held.status.ingress.public_url  # Get returns it with its status
    assert held.spec.creator.user.spec.email == APP_CREATOR  # the control plane's, not ours
    # the same version and spec (another commit's source link): nothing is sent
    again = make_app("web", "v1")
    again.spec.metadata.source_code.link = "https://github.com/acme/apps/blob/other/apps.py#L3"
    assert register_app(apps, again, held).status == "unchanged"
    assert app_calls(flyte_server) == ["AppService.Create", "AppService.Get"]

    updated = register_app(apps, make_app("web", "v2", image="img:2"), held)
    assert (updated.version, updated.status, updated.kind) == ("v2", "updated", "app")
    stored = flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")]
    assert stored.metadata.revision == 2
    assert stored.metadata.labels[APP_VERSION_LABEL] == "v2" and stored.spec.container.image == "img:2"
    assert stored.spec.creator.user.spec.email == APP_CREATOR
    update = next(req for m, req, _ in flyte_server.service.calls if m == "AppService.Update")
    assert update.app.metadata.revision == 1  # the revision it replaces, as flyte.remote.App.replace sends
    assert update.reason == "flyte-deploy version v2"


def test_the_same_version_with_another_spec_is_refused_naming_the_fields(flyte_server, apps):
    register_app(apps, make_app("web", "v1"), None)
    held = apps.get(apps.app_id("web"))
    with pytest.raises(RegistrationError) as info:
        register_app(apps, make_app("web", "v1", image="img:2", port=9090), held)
    assert str(info.value) == (
        "app web version v1 is already deployed with a different spec (differs in spec.container.image,"
        " spec.container.ports); an app's version holds one spec: pass a new --version"
    )
    assert flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")].metadata.revision == 1
    assert "AppService.Update" not in app_calls(flyte_server)


def test_the_look_up_refuses_every_conflicting_app_before_anything_is_registered(flyte_server, apps):
    for name in ("a", "b"):
        register_app(apps, make_app(name, "v1"), None)
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
    register_app(apps, make_app("web", "v1"), None)
    # the look-up saw nothing, but the app exists: Create answers ALREADY_EXISTS, it is fetched
    assert register_app(apps, make_app("web", "v1"), None).status == "unchanged"
    assert register_app(apps, make_app("web", "v2"), None).status == "updated"
    # the look-up saw revision 1, someone else updated to 2: Update answers ABORTED, fetched again
    stale = apps.get(apps.app_id("web"))
    assert stale is not None
    register_app(apps, make_app("web", "v3"), stale)
    before = len(flyte_server.service.calls)
    registration = register_app(apps, make_app("web", "v4"), stale)
    assert registration.status == "updated"
    assert app_calls(flyte_server)[-3:] == ["AppService.Update", "AppService.Get", "AppService.Update"]
    assert len(flyte_server.service.calls) == before + 3
    assert flyte_server.apps.apps[("", PROJECT, DOMAIN, "web")].metadata.revision == 4
    with pytest.raises(RegistrationError) as info:  # someone else deployed v4 with another spec meanwhile
        register_app(apps, make_app("web", "v4", image="img:9"), stale)
    assert "app web version v4 is already deployed with a different spec" in str(info.value)


def test_a_failed_create_names_the_app_and_says_a_rerun_completes(flyte_server_factory):
    server = flyte_server_factory(fail_app_create_at=1)
    with AppServiceConnection(settings_for(server), None) as connection:
        with pytest.raises(RegistrationError) as info:
            register_app(connection, make_app("web", "v1"), None)
        text = str(info.value)
        assert text.startswith(f"registering app web version v1 failed: AppService.Create at {server.endpoint}")
        assert "internal: injected failure of app Create call 1" in text
        assert text.endswith("run the same command again to register the rest")
        assert register_app(connection, make_app("web", "v1"), None).status == "created"


def test_app_spec_returns_the_deployed_app_for_serve(flyte_server, apps, tmp_path, monkeypatch):
    register_app(apps, make_app("web", "v1"), None)
    config = config_for(flyte_server, tmp_path, monkeypatch)
    served = app_spec(config, "web")
    assert (served.name, served.environment, served.version) == ("web", "web", "v1")
    assert served.spec.metadata.revision == 1 and served.spec.spec.container.image == "img:1"
    with pytest.raises(RunError) as info:
        app_spec(config, "nope")
    assert str(info.value) == (
        f"app nope is not deployed on the control plane at {flyte_server.endpoint} ({PROJECT}/{DOMAIN})"
    )


def test_a_control_plane_without_an_app_service_lists_its_tasks(flyte_server_factory, tmp_path, monkeypatch):
    """``AppService.List`` answered 404 (UNIMPLEMENTED): a Flyte without apps lists its tasks."""
    server = flyte_server_factory(serve_apps=False)
    spec = task_definition_pb2.TaskSpec(short_name="clean")
    spec.task_template.id.project, spec.task_template.id.domain = PROJECT, DOMAIN
    spec.task_template.id.name, spec.task_template.id.version = "prep.clean", "v1"
    with TaskServiceConnection(settings_for(server), None) as tasks:
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

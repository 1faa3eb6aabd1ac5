"""Flyte apps (``flyte.app.AppEnvironment`` and the FastAPI app env) deployed alongside task
environments: discovery in every mode, dependency order, one bundle and version, the SDK's
own app translation under our context (``serialize_app``), the embedded store's rules for
apps (``register_app``: created, unchanged, updated, refused with nothing written), the
upgrade of an old store, and errors naming the app. Through the CLI and the API."""

from __future__ import annotations

import importlib
import json
import shutil
import sqlite3
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

import flyte_deploy as fd
from flyte_deploy import ExitCode, hookimpl
from flyte_deploy.adapters.flyte import sdk_internals
from flyte_deploy.adapters.flyte.views import FlyteApp, view_of
from flyte_deploy.environments import Environment, is_app
from flyte_deploy.lifecycle import deploy
from flyte_deploy.store import Store
from flyte_deploy.store import database as store_database
from flyte_deploy.types import APP_VERSION_LABEL, DeployRequest, SerializedApp

from .bundle_helpers import dry

flyte = pytest.importorskip("flyte")
PROJECT = Path(__file__).parent / "flyte_projects" / "apps"


@pytest.fixture
def apps_project(tmp_path, monkeypatch):
    """A copy of ``tests/flyte_projects/apps``, made the working directory."""
    root = tmp_path / "proj"
    shutil.copytree(PROJECT, root)
    monkeypatch.chdir(root)
    return root


def names(out: dict) -> list[str]:
    return [e["name"] for e in out["environments"]]


def api_deploy(root: Path, *, dry_run: bool = False, version: str | None = None, plugins=()) -> fd.DeployResult:
    with fd.open_session(root, options={"quiet": True}, dry_run=dry_run) as session:
        for plugin in plugins:
            session.pluginmanager.register(plugin)
        return deploy(session, DeployRequest(mode="all", path=root / "apps.py"), version=version)


def import_apps(root: Path) -> ModuleType:
    """Import ``root/apps.py`` as module ``apps``, with ``root`` on ``sys.path`` only meanwhile."""
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module("apps")
    finally:
        sys.path.remove(str(root))


def forget(root: Path) -> None:
    """Drop the project's modules, so the next in-process deploy imports its edited files."""
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]


def edit(root: Path, old: str, new: str, file: str = "apps.py") -> None:
    path = root / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    forget(root)


# -- discovery, dependencies, bundle and version ----------------------------------------


def test_apps_are_discovered_in_every_mode_and_their_task_dependency_comes_first(apps_project, invoke):
    assert names(dry(invoke, "apps.py", "echo_app")) == ["apps-echo"]
    assert names(dry(invoke, "apps.py", "scores_app")) == ["apps-worker", "apps-scores"]
    everything = dry(invoke, "--all", "apps.py")
    assert names(everything) == ["apps-worker", "apps-echo", "apps-scores"]
    assert names(dry(invoke, "extras.py", "dashboard_app")) == ["apps-echo", "apps-dashboard"]  # an app on an app
    assert names(dry(invoke, "--recursive", ".")) == [*names(everything), "apps-dashboard", "apps-proxy"]
    by_name = {e["name"]: e for e in everything["environments"]}
    assert by_name["apps-echo"]["tasks"] == [] and by_name["apps-echo"]["app"] == {
        "name": "apps-echo",
        "source_link": None,
    }
    assert by_name["apps-worker"]["app"] is None and by_name["apps-worker"]["tasks"][0]["name"] == "apps-worker.score"


def test_an_app_view_satisfies_the_environment_protocol(apps_project):
    module = import_apps(apps_project)
    view = view_of(module.scores_app)
    assert isinstance(view, FlyteApp) and isinstance(view, Environment) and is_app(view)
    assert view.tasks == {} and view.sdk == "flyte" and view is view_of(module.scores_app)
    assert view.depends_on == (view_of(module.worker_env),) and not is_app(view.depends_on[0])
    assert view.location == f"{apps_project / 'apps.py'}:60"
    assert view.env_vars == {"SCORER": "apps-worker.score"} and len(view.secrets) == 1
    assert view.image.uri == flyte.Image.from_debian_base().uri  # "auto", as in the SDK


def test_the_python_api_deploys_app_objects_with_their_dependencies(apps_project):
    module = import_apps(apps_project)
    result = fd.deploy(module.scores_app, root_dir=apps_project, dry_run=True, options={"quiet": True})
    assert list(result.environments) == ["apps-worker", "apps-scores"]
    assert [a.name for a in result.apps] == ["apps-scores"] and [t.name for t in result.tasks] == ["apps-worker.score"]
    done = fd.deploy(module.scores_app, module.echo_app, root_dir=apps_project, options={"quiet": True})
    assert [(r.kind, r.task, r.status) for r in done.registrations] == [
        ("task", "apps-worker.score", "created"),
        ("app", "apps-scores", "created"),
        ("app", "apps-echo", "created"),
    ]


def test_apps_share_the_plans_bundle_and_version_and_any_app_setting_changes_the_version(apps_project):
    result = api_deploy(apps_project, dry_run=True)
    assert [a.name for a in result.apps] == ["apps-echo", "apps-scores"]
    for app in result.apps:
        command = list(app.spec.spec.container.command)
        assert app.version == result.version == command[command.index("--version") + 1]
        assert command[command.index("--tgz") + 1] == result.bundle_uri == app.spec.metadata.code_bundle_uri
    assert result.tasks[0].spec.task_template.id.version == result.version
    first = result.version
    edit(apps_project, "replicas=(1, 2)", "replicas=(1, 4)")
    assert api_deploy(apps_project, dry_run=True).version != first


def test_the_version_covers_the_server_function_defined_elsewhere(project):
    files = {
        "server.py": """
            def run() -> None:
                print("v1")
        """,
        "apps.py": """
            import flyte.app

            import server

            app = flyte.app.AppEnvironment(name="hooked")
            app.server(server.run)
        """,
    }
    root = project(files)
    first = api_deploy(root, dry_run=True).version
    edit(root, '"v1"', '"v2"', file="server.py")
    assert api_deploy(root, dry_run=True).version != first


def test_the_identity_covers_every_app_setting_and_the_server_function(apps_project):
    """Not only the bundle: two apps differing in one SDK field, or in their server
    function, have different identities."""
    import flyte.app

    def serve() -> None:
        print("serving")

    def identity(**changes):
        app = flyte.app.AppEnvironment(name="same", **changes)
        app.server(serve)
        return view_of(app).identity(apps_project)

    plain = identity()
    assert identity() == plain
    for changes in (
        {"port": 8090},
        {"scaling": flyte.app.Scaling(replicas=(1, 2))},
        {"requires_auth": False},
        {"env_vars": {"A": "1"}},
        {"secrets": "token"},
        {"resources": flyte.Resources(cpu=2)},
        {"timeouts": flyte.app.Timeouts(request=30)},
        {"links": [flyte.app.Link(path="/x", title="x")]},
        {"args": ["--flag"]},
        {"cluster_pool": "gpu"},
    ):
        assert identity(**changes) != plain, changes
    other = flyte.app.AppEnvironment(name="same")
    other.server(lambda: None)
    assert view_of(other).identity(apps_project) != plain


# -- serialize_app ------------------------------------------------------------------------


def test_serialize_app_gives_the_sdks_translation_under_the_tasks_context(apps_project, capsys):
    capsys.readouterr()
    result = api_deploy(apps_project, dry_run=True)
    assert "VERSION:" not in capsys.readouterr().out  # the SDK's print is kept off stdout
    echo, scores = result.apps
    assert isinstance(echo, SerializedApp) and echo.spec.metadata.labels[APP_VERSION_LABEL] == result.version
    meta = echo.spec.metadata.id
    assert (meta.project, meta.domain, meta.name) == ("flytesnacks", "development", "apps-echo")
    container = echo.spec.spec.container
    command = list(container.command)
    assert command[0] == "fserve" and command[-1] == "--"
    assert command[command.index("--resolver-args") + 1] == "apps:echo_app"
    assert [p.container_port for p in container.ports] == [8081]
    env = {e.key: e.value for e in container.env}
    assert env["GREETING"] == "hello" and set(sdk_internals.local_sys_paths(apps_project)) <= set(env)
    assert echo.spec.spec.security_context.allow_anonymous
    assert [s.key for s in echo.spec.spec.security_context.secrets] == ["echo-token"]
    assert echo.spec.spec.autoscaling.replicas.max == 3 and echo.spec.spec.autoscaling.scaledown_period.seconds == 300
    assert echo.spec.spec.timeouts.request_timeout.seconds == 30
    assert scores.spec.spec.profile.type == "FastAPI" and scores.spec.spec.links[0].path == "/docs"
    assert scores.spec.spec.autoscaling.scaling_metric.concurrency.target_value == 10


def test_dry_run_json_stays_parseable_with_apps(apps_project, invoke):
    result = invoke("deploy", "--all", "apps.py", "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)
    assert "Failed to get remote URL" not in result.stderr


def test_an_app_the_sdk_cannot_serialize_is_a_one_line_error_naming_it(project, invoke):
    root = project(
        {
            "apps.py": """
                import flyte.app

                bad = flyte.app.AppEnvironment(name="bad-app", pod_template="named-template")
            """
        }
    )
    result = invoke("deploy", "--all", root / "apps.py", "--dry-run", "-q")
    assert result.exit_code == ExitCode.SERIALIZATION_FAILED
    message = result.stderr.strip().splitlines()[-1]
    assert f"{root / 'apps.py'}:3: app bad-app: the flyte SDK cannot serialize it: NotImplementedError" in message


def test_a_plugin_may_answer_serialize_app_and_register_app_before_the_builtins(apps_project):
    seen: list[str] = []

    class Labeller:
        @hookimpl(tryfirst=True)
        def serialize_app(self, session, environment, plan):
            if environment.name != "apps-echo":
                return None
            app = session.pluginmanager.subset_hook_caller("serialize_app", remove_plugins=[self])(
                session=session, environment=environment, plan=plan
            )
            app.spec.metadata.labels["team"] = "search"
            return app

        @hookimpl(tryfirst=True)
        def register_app(self, session, environment, app, plan):
            seen.append(f"{app.name}:{app.spec.metadata.labels.get('team', '')}")

    result = api_deploy(apps_project, plugins=[Labeller()])
    assert result.apps[0].spec.metadata.labels["team"] == "search"
    assert seen == ["apps-echo:search", "apps-scores:"]  # observed, then the built-in registered
    stored = {r.name: r for r in Store.at(str(apps_project / ".flyte-deploy")).find_apps(with_spec=True)}
    assert stored["apps-echo"].app().metadata.labels["team"] == "search"


# -- register_app with the embedded store ------------------------------------------------


def registrations(out: dict) -> list[tuple[str, str, str]]:
    return [(r["kind"], r["task"], r["status"]) for r in out["registrations"]]


def deploy_json(invoke, *args: str) -> dict:
    result = invoke("deploy", "--all", "apps.py", "--output", "json", "-q", *args)
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_the_store_creates_keeps_and_updates_apps_after_their_task_environments(apps_project, invoke):
    first = deploy_json(invoke)
    assert registrations(first) == [
        ("task", "apps-worker.score", "created"),
        ("app", "apps-echo", "created"),
        ("app", "apps-scores", "created"),
    ]
    assert {s for _, _, s in registrations(deploy_json(invoke))} == {"unchanged"}
    edit(apps_project, 'env_vars={"GREETING": "hello"}', 'env_vars={"GREETING": "hi"}')
    third = deploy_json(invoke)
    assert third["version"] != first["version"]
    assert registrations(third) == [
        ("task", "apps-worker.score", "created"),  # a task version is immutable: a new one
        ("app", "apps-echo", "updated"),
        ("app", "apps-scores", "updated"),
    ]
    store = Store.at(str(apps_project / ".flyte-deploy"))
    latest = {r.name: r for r in store.find_apps(with_spec=True)}
    assert latest["apps-echo"].revision == 2 and latest["apps-echo"].version == third["version"]
    assert latest["apps-echo"].app().metadata.revision == 2
    with fd.open_session(apps_project, options={"quiet": True}) as session:
        assert session.backend.app_spec is not None
        served = session.backend.app_spec(session.config, "apps-echo")
    assert served.version == third["version"] and served.spec.metadata.revision == 2
    env = {e.key: e.value for e in served.spec.spec.container.env}
    assert env["GREETING"] == "hi"


def test_the_same_version_with_another_app_spec_is_refused_and_nothing_is_written(apps_project, invoke):
    first = invoke("deploy", "apps.py", "echo_app", "--version", "v1", "-q")
    assert first.exit_code == 0, first.stderr
    # the whole project at that version, the echo app on another image: the worker's task and
    # the scores app would be created, but the echo app's v1 is not the one deployed
    result = invoke("deploy", "--all", "apps.py", "--version", "v1", "--image", "apps-echo=acme/echo:2", "-q")
    assert result.exit_code == ExitCode.REGISTRATION_FAILED
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "versions are immutable: pass a new --version" in message
    assert (
        "app apps-echo version v1 is already deployed with a different spec in flytesnacks/development"
        " (differs in spec.container.command, spec.container.image)" in message
    )
    store = Store.at(str(apps_project / ".flyte-deploy"))
    assert store.find() == []  # the new task was not written either
    assert [(r.name, r.revision) for r in store.find_apps()] == [("apps-echo", 1)]


def test_an_app_not_deployed_is_named_by_app_spec(apps_project):
    with fd.open_session(apps_project, options={"quiet": True}) as session:
        assert session.backend.app_spec is not None
        with pytest.raises(fd.RunError, match=r"app nowhere is not deployed in .*deployments.db$"):
            session.backend.app_spec(session.config, "nowhere")


def test_a_store_of_the_previous_schema_keeps_its_tasks_and_gains_apps(apps_project, invoke):
    store = Store.at(str(apps_project / ".flyte-deploy"))
    store.directory.mkdir()
    with sqlite3.connect(store.path) as conn:
        for statement in store_database.SCHEMA:
            if "CREATE TABLE apps" not in statement:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        old = store_database.TaskRecord(
            project="default",
            domain="development",
            name="old-env.task",
            version="v0",
            environment="old-env",
            image="img:1",
            bundle_uri=None,
            bundle_digest=None,
            copy_style="loaded_modules",
            depends_on=(),
            source_link=None,
            spec=b"",
        )
        store_database.insert(conn, old, "2026-01-01T00:00:00.000000Z")
        taken = replace(old, project="flytesnacks", name="apps-worker.score", version="v1", environment="apps-worker")
        store_database.insert(conn, taken, "2026-01-01T00:00:00.000000Z")
    listed = invoke("ls", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [e["environment"] for e in listed.json()] == ["old-env", "apps-worker"]  # a read keeps the schema
    refused = invoke("deploy", "--all", "apps.py", "--version", "v1", "-q")  # v1 of the task is another spec
    assert refused.exit_code == ExitCode.REGISTRATION_FAILED, refused.stderr
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1  # the upgrade went with the refused deploy
    deploy_json(invoke)
    found = [(r.name, r.version) for r in store.find()]
    assert len(found) == 3 and {("old-env.task", "v0"), ("apps-worker.score", "v1")} < set(found)
    assert [r.name for r in store.find_apps()] == ["apps-echo", "apps-scores"]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_database.SCHEMA_VERSION
        notes = dict(conn.execute("SELECT key, value FROM store_info").fetchall())
    assert notes["upgraded_from_schema_1"].endswith(": apps table added")


def test_a_backend_without_apps_refuses_a_plan_with_an_app_before_anything_is_built(apps_project, invoke):
    (apps_project / "deployconf.py").write_text(
        textwrap.dedent(
            """
            import flyte_deploy as fd

            @fd.hookimpl
            def register_backends():
                return [fd.Backend(name="tasks-only", register=lambda *args: [])]
            """
        )
    )
    result = invoke("deploy", "--all", "apps.py", "--backend", "tasks-only", "-q")
    assert result.exit_code == ExitCode.USAGE_ERROR, result.stderr
    assert (
        f"{apps_project / 'apps.py'}:24: app environment apps-echo: backend 'tasks-only' cannot hold apps"
        in result.stderr
    )
    assert not (apps_project / ".flyte-deploy").exists()


# -- what is shown: ls, the summary table, JSON ------------------------------------------


def test_ls_and_the_summary_show_apps_with_their_status_version_and_image(apps_project, invoke, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    done = invoke("deploy", "--all", "apps.py", "-q")
    assert done.exit_code == 0, done.stderr
    assert "app apps-echo (created)" in done.stdout and "apps-worker.score (created)" in done.stdout
    edit(apps_project, "replicas=(1, 2)", "replicas=(2, 2)")
    again = invoke("deploy", "--all", "apps.py", "-q")
    assert "app apps-scores (updated)" in again.stdout and "app apps-echo (updated)" in again.stdout
    listed = invoke("ls", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    apps = {e["app"]["name"]: e for e in listed.json() if e["app"]}
    assert sorted(apps) == ["apps-echo", "apps-scores"]
    assert apps["apps-scores"]["app"]["revision"] == 2 and apps["apps-scores"]["tasks"] == []
    assert apps["apps-scores"]["image"] == flyte.Image.from_debian_base().uri
    versions = {e["environment"]: e["version"] for e in listed.json() if e["latest"]}
    assert versions["apps-scores"] == versions["apps-worker"]  # one version for the deploy
    table = invoke("ls")
    assert "app apps-scores (revision 2)" in table.stdout and "app apps-echo (revision 2)" in table.stdout


def test_the_image_phase_resolves_the_apps_own_image_at_the_sdks_uri(project, invoke):
    root = project(
        {
            "apps.py": """
                import flyte
                import flyte.app

                base = flyte.Image.from_debian_base(registry="registry.acme.test/apps", name="served")
                image = base.with_pip_packages("six")
                app = flyte.app.AppEnvironment(name="built-app", image=image)
            """
        }
    )
    out = dry(invoke, "--all", root / "apps.py")
    expected = import_apps(root).app.image.uri
    assert expected.startswith("registry.acme.test/apps/served:")
    assert out["environments"][0]["image"] == expected
    result = api_deploy(root, dry_run=True)
    assert result.apps[0].spec.spec.container.image == expected
    from flyte._internal.image_cache import ImageCache

    command = list(result.apps[0].spec.spec.container.command)
    cache = ImageCache.from_transport(command[command.index("--image-cache") + 1])
    assert cache.image_lookup == {"built-app": expected}  # what the app's runtime resolves images with


def test_an_app_links_to_the_line_constructing_it(git_repos):
    import subprocess

    from tests.fixtures.gitrepos import deploy_env

    files = {path.name: path.read_text() for path in PROJECT.glob("*.py")}
    repo = git_repos.init("served", files, remote="git@github.com:acme/served.git")
    sha = git_repos.head(repo)
    done = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", "deploy", "--all", "apps.py", "--output", "json", "-q"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=deploy_env(),
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    apps = {e["name"]: e["app"] for e in json.loads(done.stdout)["environments"] if e["app"]}
    assert apps["apps-echo"]["source_link"] == f"https://github.com/acme/served/blob/{sha}/apps.py#L24"
    assert apps["apps-scores"]["source_link"] == f"https://github.com/acme/served/blob/{sha}/apps.py#L60"
    stored = {r.name: r for r in Store.at(str(repo / ".flyte-deploy")).find_apps(with_spec=True)}
    assert stored["apps-echo"].app().metadata.source_code.link == apps["apps-echo"]["source_link"]
    assert stored["apps-echo"].source_link == apps["apps-echo"]["source_link"]


@pytest.mark.servers
def test_an_apps_image_is_built_and_pushed_at_the_sdks_uri_and_the_app_runs_that_image(
    base_registry, project, invoke, monkeypatch
):
    from tests.fixtures.base_image import BASE_REPOSITORY, BASE_TAG
    from tests.imaging import pull_back

    addr = base_registry.address
    root = project(
        {
            "apps.py": f"""
                import flyte
                import flyte.app

                base = flyte.Image.from_base("{addr}/{BASE_REPOSITORY}:{BASE_TAG}").clone(
                    name="served", registry="{addr}/apps", extendable=True)
                app = flyte.app.AppEnvironment(name="built-app", image=base.with_env_vars({{"STAGE": "app"}}))
            """
        }
    )
    expected = import_apps(root).app.image.uri
    forget(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # the daemonless builder
    done = invoke("deploy", "--all", "apps.py", "--output", "json")
    assert done.exit_code == 0, done.stderr
    out = done.json()["environments"][0]
    assert out["image"] == expected and out["image_built"]
    assert f"building {expected} (oci)" in done.stderr
    pulled = pull_back(expected, root.parent / "pulled")
    assert "STAGE=app" in pulled.config["config"]["Env"]
    stored = Store.at(str(root / ".flyte-deploy")).find_apps(with_spec=True)
    assert stored[0].image == expected and stored[0].app().spec.container.image == expected


@pytest.mark.servers
def test_the_stored_apps_command_serves_the_app_from_the_bundle(project, invoke, monkeypatch, tmp_path):
    """The container contract: the registered command (``fserve`` with our bundle, version
    and resolver args) starts the app's server function from the uploaded bundle in an empty
    directory, as the app's container would."""
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = project(
        {
            "served.py": f"""
                import flyte.app

                app = flyte.app.AppEnvironment(name="served-app", port={port}, env_vars={{"REPLY": "pong"}})


                @app.server
                def serve() -> None:
                    import http.server
                    import os

                    class Reply(http.server.BaseHTTPRequestHandler):
                        def do_GET(self) -> None:
                            self.send_response(200)
                            self.end_headers()
                            self.wfile.write(os.environ["REPLY"].encode())

                    http.server.HTTPServer(("127.0.0.1", {port}), Reply).serve_forever()
            """
        }
    )
    monkeypatch.chdir(root)
    done = invoke("deploy", "--all", "served.py", "-q")
    assert done.exit_code == 0, done.stderr
    served = Store.at(str(root / ".flyte-deploy")).find_apps(with_spec=True)[0].app().spec.container
    workdir = tmp_path / "container"
    workdir.mkdir()
    command = [part.replace("{{.rawOutputDataPrefix}}", str(workdir / "raw")) for part in served.command]
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {e.key: e.value for e in served.env}
    server = subprocess.Popen(command, cwd=workdir, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        reply = None
        deadline = time.monotonic() + 60
        while reply is None and time.monotonic() < deadline and server.poll() is None:
            try:
                reply = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            except OSError:
                time.sleep(0.3)
        assert reply == b"pong", server.stdout.read().decode() if server.poll() is not None else "no answer"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_concurrent_deploys_of_one_version_make_one_revision_of_each_app(apps_project):
    import os
    import subprocess

    environ = {**os.environ, "PYTHONPATH": str(Path(fd.__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "flyte_deploy", "deploy", "--all", "apps.py", "--version", "v1", "-q"]
    procs = [
        subprocess.Popen(
            [*command, "--output", "json"],
            cwd=apps_project,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err.decode() for _, err in outputs]
    statuses = sorted(
        tuple(r["status"] for r in json.loads(out)["registrations"] if r["kind"] == "app") for out, _ in outputs
    )
    assert statuses == [("created", "created"), ("unchanged", "unchanged"), ("unchanged", "unchanged")]
    stored = Store.at(str(apps_project / ".flyte-deploy")).find_apps()
    assert [(r.name, r.revision, r.version) for r in stored] == [("apps-echo", 1, "v1"), ("apps-scores", 1, "v1")]

"""``flyte-deploy serve`` of deployed flyte apps: the container's own ``fserve`` command from
the bundle in storage, in a fresh directory and a clean environment, on 127.0.0.1, answering
real HTTP requests until SIGINT/SIGTERM stops it and its whole process group."""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from flyte_deploy.bundle.archive import write_archive
from flyte_deploy.errors import RunError
from flyte_deploy.serving import HOST_PORT_ENV, ON_HOST_ENV, choose_port, command_line, serve_app
from flyte_deploy.types import SerializedApp

pytest.importorskip("flyte")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
PROJECT = Path(__file__).resolve().parent / "flyte_projects" / "apps_serve"


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def sdk_app(tmp_path, monkeypatch):
    """The ``SerializedApp`` the Flyte SDK's own translation makes of an app env of
    tests/flyte_projects/apps_serve, its bundle a real archive of that directory."""

    def make(name: str) -> SerializedApp:
        from flyte.app._runtime.app_serde import translate_app_env_to_idl
        from flyte.models import CodeBundle, SerializationContext

        bundle = tmp_path / "bundle.tar.gz"
        write_archive({p.name: str(p) for p in PROJECT.glob("*.py")}, bundle)
        monkeypatch.syspath_prepend(str(PROJECT))
        env = getattr(importlib.import_module(name), name)
        context = SerializationContext(
            version="v1",
            project="flytesnacks",
            domain="development",
            code_bundle=CodeBundle(tgz=bundle.as_uri(), destination=".", computed_version="v1"),
            root_dir=PROJECT,
        )
        return SerializedApp(name, translate_app_env_to_idl(env, context))

    return make


def test_the_command_is_the_containers_own_fserve_with_the_raw_data_prefix_filled_in(sdk_app):
    app = sdk_app("greeter")
    argv = command_line(app, "file:///raw")
    assert Path(argv[0]).name == "fserve" and Path(argv[0]).parent == Path(sys.executable).parent
    assert argv[argv.index("--raw-data-path") + 1] == "file:///raw"
    assert argv[argv.index("--resolver-args") + 1] == "greeter:greeter"
    assert argv[argv.index("--tgz") + 1] == app.spec.metadata.code_bundle_uri
    assert not [arg for arg in argv if "{{" in arg]


def test_a_port_in_use_is_refused_before_anything_starts(sdk_app):
    app = sdk_app("greeter")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RunError, match=rf"app greeter: port {port} on 127.0.0.1 is in use.*pass another --port"):
            choose_port(app, port)
    assert choose_port(app, 0) > 0


def test_the_sdk_reports_the_port_serve_passes_to_an_app(monkeypatch):
    """``serve --port`` relies on it: ``AppEnvironment.get_port()`` honours the SDK's
    host-execution port variables."""
    import flyte.app

    env = flyte.app.AppEnvironment(name="ported", port=8095)
    assert env.get_port().port == 8095
    monkeypatch.setenv(ON_HOST_ENV, "1")
    monkeypatch.setenv(HOST_PORT_ENV, "41234")
    assert env.get_port().port == 41234


@pytest.mark.servers
def test_serve_app_answers_requests_until_sigint_then_returns(sdk_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the server must not depend on the caller's directory
    answers: list[dict] = []

    def ready(url: str) -> None:
        answers.append(get(f"{url}/greet/Ann"))
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; serve_app forwards it

    serve_app(sdk_app("greeter"), port=0, on_ready=ready)
    assert answers == [{"greeting": "Hello, Ann!"}]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.servers
def test_a_server_that_fails_as_it_starts_is_a_run_error_with_its_last_line(sdk_app):
    with pytest.raises(RunError, match=r"app broken exited before serving on .* code 1: RuntimeError: the model"):
        serve_app(sdk_app("broken"), port=0)

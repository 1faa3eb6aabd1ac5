"""``flyte-deploy serve`` of deployed flyte apps: the container's own ``fserve`` command from
the bundle in storage, in a fresh directory and a clean environment, on 127.0.0.1, answering
real HTTP requests until SIGINT/SIGTERM stops it and its whole process group."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy import ExitCode
from flyte_deploy.errors import RunError
from flyte_deploy.serving import HOST_PORT_ENV, ON_HOST_ENV, choose_port, command_line, serve_app
from flyte_deploy.testing import AUTOLOAD_VARIABLES
from flyte_deploy.types import SerializedApp

from .bundle_helpers import cli, cli_env

pytest.importorskip("flyte")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
PROJECT = Path(__file__).resolve().parent / "flyte_projects" / "apps_serve"


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    """tests/flyte_projects/apps_serve deployed to the embedded backend by the CLI, then its
    sources removed: serve must use the bundle in storage, not the user's tree."""
    root = tmp_path_factory.mktemp("apps-serve") / "proj"
    root.mkdir()
    for source in PROJECT.glob("*.py"):
        shutil.copy(source, root / source.name)
    env = {name: "1" for name in AUTOLOAD_VARIABLES}  # as deploy_isolation, which is per test
    env["FLYTE_DEPLOY_CACHE_DIR"] = str(tmp_path_factory.mktemp("signature-cache"))
    for file in ("greeter.py", "broken.py", "files.py"):
        result = cli(["deploy", "--all", file, "-q"], root, env)
        assert result.returncode == 0, result.stderr
    for source in PROJECT.glob("*.py"):
        (root / source.name).unlink()
    return root


@pytest.fixture
def deployed_app(deployed):
    """The ``SerializedApp`` the embedded store holds for an app of ``deployed``."""

    def find(name: str) -> SerializedApp:
        with fd.open_session(deployed) as session:
            assert session.backend.app_spec is not None
            return session.backend.app_spec(session.config, name)

    return find


def test_the_command_is_the_containers_own_fserve_with_the_raw_data_prefix_filled_in(deployed_app):
    app = deployed_app("greeter")
    argv = command_line(app, "file:///raw")
    assert argv[:2] == [sys.executable, "-c"]  # this interpreter, whatever PATH holds
    (point,) = entry_points(group="console_scripts", name="fserve")  # the SDK's declared fserve
    assert "sys.argv[0] = 'fserve'" in argv[2] and f"from {point.module} import {point.attr}" in argv[2]
    assert argv[argv.index("--raw-data-path") + 1] == "file:///raw"
    assert argv[argv.index("--resolver-args") + 1] == "greeter:greeter"
    assert argv[argv.index("--tgz") + 1] == app.spec.metadata.code_bundle_uri
    assert argv[argv.index("--version") + 1] == app.version
    assert not [arg for arg in argv if "{{" in arg]


def test_a_port_in_use_is_refused_before_anything_starts(deployed_app):
    app = deployed_app("greeter")
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
def test_serve_app_answers_on_the_declared_port_until_sigint_then_returns(deployed_app, tmp_path, monkeypatch):
    app = deployed_app("greeter")
    try:
        choose_port(app, None)
    except RunError as exc:  # not a skip: only an absent binary may skip a test
        pytest.fail(f"this test serves on the app's declared port, which something else holds: {exc}")
    monkeypatch.chdir(tmp_path)  # the server must not depend on the caller's directory
    answers: list[tuple[str, dict]] = []

    def ready(url: str) -> None:
        answers.append((url, get(f"{url}/greet/Ann")))
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; serve_app forwards it

    serve_app(app, on_ready=ready)
    assert answers == [("http://127.0.0.1:8093", {"greeting": "Hello, Ann!"})]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.servers
def test_a_server_that_does_not_listen_in_time_is_stopped_and_a_run_error(deployed_app):
    with pytest.raises(RunError, match=r"app greeter did not listen on 127\.0\.0\.1:\d+ within 0\.01s"):
        serve_app(deployed_app("greeter"), port=0, timeout=0.01)


@pytest.mark.servers
def test_a_server_that_fails_as_it_starts_is_a_run_error_with_its_last_line(deployed_app):
    with pytest.raises(RunError, match=r"app broken exited before serving on .* code 1: RuntimeError: the model"):
        serve_app(deployed_app("broken"), port=0)


def start_serve(root: Path, *args: str, background: bool = False) -> subprocess.Popen[str]:
    """``flyte-deploy serve ARGS``; ``background``: with SIGINT ignored, as a shell starts
    ``cmd &`` (and as the server would inherit it, but for serve)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flyte_deploy", "serve", *args],
        cwd=root,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,
    )


def first_line(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """The first stdout line of ``proc`` (the URL), or a failure with its stderr."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail(f"serve printed no URL within {timeout}s: {proc.communicate()[1]}")
    line = proc.stdout.readline().strip()
    assert line, proc.communicate()[1]
    return line


def processes() -> list[tuple[int, str, int, int]]:
    """Every live process as (pid, state, parent pid, process group), from /proc; zombies
    (exited, not yet reaped) left out."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if state != "Z":
            found.append((int(stat.parent.name), state, int(ppid), int(pgrp)))
    return found


def children_of(pid: int) -> list[int]:
    return [child for child, _, parent, _ in processes() if parent == pid]


def group_alive(pgid: int) -> bool:
    return any(group == pgid for _, _, _, group in processes())


@pytest.mark.servers
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_the_url_answers_http_and_stops_cleanly(deployed, stop):
    proc = start_serve(deployed, "greeter", "--port", "0")
    try:
        url = first_line(proc)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        assert get(f"{url}/greet/Bo") == {"greeting": "Hello, Bo!"}
        servers = children_of(proc.pid)
        assert len(servers) == 1 and os.getpgid(servers[0]) == servers[0]  # the server leads its own group
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == ""  # the URL was the only line
    assert re.search(r"^serving app greeter \(version [\w.-]+\); Ctrl-C stops it$", err, re.MULTILINE), err
    assert err.rstrip().endswith("stopped app greeter")
    assert not group_alive(servers[0])  # nothing of the server's process group is left
    with pytest.raises(urllib.error.URLError):
        get(f"{url}/greet/Bo")


@pytest.mark.servers
def test_a_command_app_runs_in_its_unpacked_bundle_and_its_whole_group_stops(deployed):
    proc = start_serve(deployed, "files", "--port", "0", background=True)
    try:
        url = first_line(proc)
        with urllib.request.urlopen(f"{url}/files.py", timeout=10) as response:
            assert response.read() == (PROJECT / "files.py").read_bytes()  # from the bundle: the tree has none
        [server] = children_of(proc.pid)
        group = [pid for pid, _, _, pgid in processes() if pgid == server]
        assert len(group) >= 2  # fserve and the shell (and http.server) it runs the command in
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "did not stop" not in err  # SIGINT reached the server, though serve's own was ignored at start
    assert not group_alive(server)


@pytest.mark.servers
def test_a_server_that_fails_as_it_starts_exits_14_with_its_last_line(deployed):
    result = cli(["serve", "broken", "--port", "0"], deployed)
    assert result.returncode == ExitCode.RUN_FAILED, result.stderr
    *output, error = result.stderr.strip().splitlines()
    assert "raise RuntimeError" in "\n".join(output)  # the server's traceback, on stderr
    assert re.fullmatch(
        r"error: app broken exited before serving on http://127\.0\.0\.1:\d+ with code 1:"
        r" RuntimeError: the model file is missing",
        error,
    ), error
    assert result.stdout == ""


def test_a_port_in_use_or_an_unknown_app_is_one_line_exit_14(deployed):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli(["serve", "greeter", "--port", str(port)], deployed)
    assert busy.returncode == ExitCode.RUN_FAILED
    assert busy.stderr.startswith(f"error: app greeter: port {port} on 127.0.0.1 is in use")
    assert len(busy.stderr.splitlines()) == 1
    unknown = cli(["serve", "nosuch"], deployed)
    assert unknown.returncode == ExitCode.RUN_FAILED, unknown.stderr
    assert len(unknown.stderr.splitlines()) == 1 and "nosuch" in unknown.stderr


MEMO_BACKEND = """
import flyte_deploy as fd

@fd.hookimpl
def register_backends():
    return [fd.Backend(name="memo", register=lambda *args: [], description="holds no apps")]
"""


def test_a_backend_without_apps_cannot_serve(project, invoke, monkeypatch):
    root = project({"deployconf.py": MEMO_BACKEND})
    monkeypatch.chdir(root)
    result = invoke("serve", "greeter", "--backend", "memo")
    assert result.exit_code == ExitCode.USAGE_ERROR
    assert result.stderr == "error: backend 'memo' (command line) cannot serve apps: it holds none\n"


@pytest.mark.servers
@pytest.mark.skipif(sys.platform != "linux", reason="the server ends with serve through Linux's PR_SET_PDEATHSIG")
def test_a_killed_serve_takes_its_server_with_it(deployed):
    proc = start_serve(deployed, "greeter", "--port", "0")
    try:
        url = first_line(proc)
        [server] = children_of(proc.pid)
        proc.kill()  # SIGKILL: serve forwards nothing
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while group_alive(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(server)
        with pytest.raises(urllib.error.URLError):
            get(f"{url}/greet/Bo")
    finally:
        if proc.poll() is None:
            proc.kill()

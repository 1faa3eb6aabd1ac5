"""``flyte-deploy serve``: run a deployed app from its code bundle, as the app runtime would.

From the stored ``app.App`` only (the user's code is never imported here): its container's
command and args run in a fresh, empty working directory, ``{{.rawOutputDataPrefix}}``
filled in, in a clean environment (``local_run.clean_environment`` plus the container's env
vars and ``storage.storage_environment``: how it reaches a bundle in object storage). The
Flyte SDK's command (``fserve --tgz <bundle URI> --resolver ...``) runs on this interpreter's
``fserve``, which fetches and unpacks the bundle and starts the app's server.

The port is the app's declared container port, or ``--port`` (``0``: a free one), passed
the way the SDK runs an app natively on a host at a port of the host's choosing:
``AppEnvironment.get_port()`` reports it (FastAPI apps and ``@env.server`` functions that ask
for it listen there) and ``PORT`` holds it (for command apps). A port already in use on
127.0.0.1 is refused before anything starts. Once the server accepts connections on
127.0.0.1 its URL is printed; its output goes to stderr (scrubbed of credentials).

SIGINT (Ctrl-C) and SIGTERM are forwarded to the server's process group; it has
``STOP_GRACE`` seconds to stop before the group is killed, and ``serve`` then exits 0: a
server stopped on request ended normally. A server that exits on its own with a non-zero
code, or that does not listen within the timeout, is a ``RunError`` (exit 14) naming the
app and its last exception line (else its last output line); no process of the group
outlives ``serve`` (on Linux, the server is sent SIGTERM even when ``serve`` itself is killed).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any

from .errors import RunError, scrub
from .local_run import RAW_DATA_PLACEHOLDER, clean_environment, sdk_command, this_interpreter
from .types import SerializedApp

HOST = "127.0.0.1"
#: the Flyte SDK's app server, the first word of the command it serializes for an app
SDK_SERVE = "fserve"
#: what the Flyte SDK sets to run an app on a host port of the host's choosing (its Apple
#: Silicon host execution): ``AppEnvironment.get_port()`` then reports ``HOST_PORT_ENV``
ON_HOST_ENV = "_F_APPLE_SILICON_ON_HOST"
HOST_PORT_ENV = "_F_APPLE_SILICON_HOST_PORT"
PORT_ENV = "PORT"
#: seconds a server has to stop after SIGINT/SIGTERM before its process group is killed
STOP_GRACE = 10.0
#: seconds between two checks of the server (listening yet? exited?)
POLL_INTERVAL = 0.1


def declared_port(app: SerializedApp) -> int | None:
    """The app's first declared container port, None when it declares none."""
    ports = app.spec.spec.container.ports
    return ports[0].container_port if ports else None


def choose_port(app: SerializedApp, requested: int | None) -> int:
    """The port to serve on: ``requested`` (``0``: a free one), else the declared port;
    a port in use on 127.0.0.1 is a ``RunError``."""
    port = declared_port(app) if requested is None else requested
    if port is None:
        raise RunError(f"app {app.name} declares no port; pass --port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            flag = "pass --port (0 picks a free port)" if requested is None else "pass another --port"
            raise RunError(f"app {app.name}: port {port} on {HOST} is in use ({exc.strerror}); {flag}") from None
        return int(probe.getsockname()[1])


def command_line(app: SerializedApp, raw_data: str) -> list[str]:
    """The container's command and args, ``{{.rawOutputDataPrefix}}`` filled in, ``fserve``
    being this interpreter's and ``python`` this interpreter."""
    spec = app.spec.spec
    if spec.WhichOneof("app_payload") != "container":
        raise RunError(f"app {app.name} runs in a pod template; serve runs apps with a container spec")
    container = spec.container
    words = [part.replace(RAW_DATA_PLACEHOLDER, raw_data) for part in (*container.command, *container.args)]
    if not words:
        raise RunError(f"app {app.name} has no container command to run")
    if words[0] == SDK_SERVE:
        found = sdk_command(SDK_SERVE)
        if not found:
            raise RunError(
                f"app {app.name} runs on the Flyte SDK's app server (fserve), which is not installed here:"
                " pip install 'flyte-deploy[flyte]'"
            )
        return [*found, *words[1:]]
    return this_interpreter(words)


def serve_environment(app: SerializedApp, port: int, storage_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ``clean_environment`` of the container's env vars and
    ``storage_env``, with the port to listen on (module docstring)."""
    env = clean_environment({kv.key: kv.value for kv in app.spec.spec.container.env}, storage_env)
    env.update({ON_HOST_ENV: "1", HOST_PORT_ENV: str(port), PORT_ENV: str(port)})
    return env


#: a Python exception's line in a traceback (``RuntimeError: ...``, ``obstore.exceptions.X: ...``)
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception): ")


class _Output:
    """Copies the server's output to stderr, scrubbed, keeping its last non-empty line and
    its last exception line (a traceback can end in more lines, e.g. obstore's debug dump)."""

    def __init__(self, stream: IO[str]) -> None:
        self.last = "no output"
        self.last_exception: str | None = None
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            sys.stderr.write(scrub(line))
            sys.stderr.flush()
            if line.strip():
                self.last = scrub(line.strip())
                if EXCEPTION_LINE.match(line):
                    self.last_exception = self.last

    def last_line(self, exited: bool) -> str:
        """The last exception line, else the last non-empty line; read to the end first when
        the server has ``exited``."""
        if exited:
            self._thread.join(timeout=2)
        return self.last_exception or self.last


#: Linux's prctl option: the signal a process gets when the thread that started it ends
PR_SET_PDEATHSIG = 1


def _server_setup() -> Callable[[], None]:
    """What the server's process runs before its command: SIGINT and SIGTERM at their
    default action (a ``serve`` started in the background, ``cmd &``, ignores SIGINT, and
    an ignored signal stays ignored across exec), and on Linux a SIGTERM when ``serve`` ends,
    even by SIGKILL, so that no server outlives it. libc is looked up here, before the fork."""
    prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None

    def setup() -> None:
        for stopping in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=POLL_INTERVAL):
            return True
    except OSError:
        return False


def _signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to process group ``pgid``, if any process of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def serve_app(
    app: SerializedApp,
    *,
    port: int | None = None,
    timeout: float = 120.0,
    storage_env: Mapping[str, str] | None = None,
    on_ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (then return) or until it exits on its own
    (``RunError`` unless it exits 0); ``on_ready(url)`` is called once it listens;
    ``storage_env`` is how it reaches its bundle (``storage.storage_environment``). Must run
    in the main thread (it installs the signal handlers, restored on return)."""
    chosen = choose_port(app, port)
    url = f"http://{HOST}:{chosen}"
    run_dir = Path(tempfile.mkdtemp(prefix="flyte-deploy-serve-"))
    work, raw = run_dir / "work", run_dir / "raw"
    work.mkdir()
    raw.mkdir()
    stop: list[int] = []
    previous: dict[signal.Signals, Any] = {}

    def forward(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)
        _signal_group(proc.pid, signum if len(stop) == 1 else signal.SIGKILL)

    try:
        argv = command_line(app, raw.as_uri())
        try:
            proc = subprocess.Popen(
                argv,
                cwd=work,
                env=serve_environment(app, chosen, storage_env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group: a terminal's Ctrl-C reaches it through us, once
                preexec_fn=_server_setup(),
            )
        except OSError as exc:
            raise RunError(f"app {app.name}: cannot start {argv[0]}: {exc.strerror or exc}") from None
        assert proc.stdout is not None
        output = _Output(proc.stdout)
        try:
            for stopping in (signal.SIGINT, signal.SIGTERM):
                previous[stopping] = signal.signal(stopping, forward)
            _wait(app, proc, output, stop, chosen, url, timeout, on_ready)
        finally:
            _stop(proc, stop)
            for stopping, handler in previous.items():
                signal.signal(stopping, handler)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _wait(
    app: SerializedApp,
    proc: subprocess.Popen[str],
    output: _Output,
    stop: list[int],
    port: int,
    url: str,
    timeout: float,
    on_ready: Callable[[str], None],
) -> None:
    """Wait for readiness, then for a stop signal or the server's own exit."""
    deadline = time.monotonic() + timeout
    ready = False
    while not stop:
        code = proc.poll()
        if code is not None:
            if ready and code == 0:
                return
            when = "stopped" if ready else f"exited before serving on {url}"
            raise RunError(f"app {app.name} {when} with code {code}: {output.last_line(exited=True)}")
        if not ready:
            if _listening(port):
                ready = True
                on_ready(url)
                continue
            if time.monotonic() > deadline:
                hint = "" if port == declared_port(app) else " (an app that binds a port of its own serves only there)"
                raise RunError(
                    f"app {app.name} did not listen on {HOST}:{port} within {timeout:g}s{hint}:"
                    f" {output.last_line(exited=False)}"
                )
        time.sleep(POLL_INTERVAL)


def _stop(proc: subprocess.Popen[str], stop: list[int]) -> None:
    """End the server's process group: the forwarded signal (SIGTERM when none was sent),
    ``STOP_GRACE`` seconds, then SIGKILL to whatever of the group is left."""
    if proc.poll() is None and not stop:
        _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"the server did not stop within {STOP_GRACE:g}s; killing it\n")
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()

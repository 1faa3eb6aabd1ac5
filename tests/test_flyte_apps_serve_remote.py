"""``flyte-deploy serve`` of a flyte app deployed to a control plane, its bundle in S3: the
app comes from the AppService of the test control plane (tests/fixtures/flyte_server.py), the
bundle from a real S3 server (tests/fixtures/s3.py: moto_server, and rclone, which checks
credentials but answers no range reads, for the wrong ones) through the Flyte SDK's own
storage code in ``fserve``, reached with the project's storage options translated into the
SDK's environment (``storage.storage_environment``); the secret is never printed."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flyte_deploy import ExitCode
from flyte_deploy.storage import storage_environment
from flyte_deploy.testing import AUTOLOAD_VARIABLES
from tests.fixtures.flyte_server import FlyteServer, start_flyte_server
from tests.fixtures.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server

from .bundle_helpers import cli, cli_env
from .test_flyte_apps_serve import PROJECT, children_of, first_line, get, group_alive

pytest.importorskip("flyte")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
WRONG_SECRET = "wrong-s3cr3t-never-print-me"


@dataclass
class RemoteProject:
    """A project deployed to ``server`` with its bundles in S3, its sources removed."""

    root: Path
    server: FlyteServer
    s3: S3Server
    bucket: str

    def env(self, secret: str = SECRET_KEY) -> dict[str, str]:
        """The CLI's environment: the S3 server's options with ``secret``."""
        options = {**self.s3.options(), "secret": secret}
        return {"FLYTE_DEPLOY_STORAGE_OPTIONS": json.dumps(options), "FLYTE_DEPLOY_CACHE_DIR": str(self.root.parent)}


def write_remote_config(root: Path, endpoint: str, storage: str) -> None:
    (root / "config.yaml").write_text(
        f"admin:\n  endpoint: {endpoint}\n  insecure: true\n"
        f"task:\n  project: flytesnacks\n  domain: development\nstorage: {storage}\n"
    )


@contextlib.contextmanager
def deployed_remotely(root: Path, s3: S3Server, sources: list[Path], *files: str) -> Iterator[RemoteProject]:
    """``sources`` copied to ``root`` and ``files`` deployed by the CLI with ``--backend remote``
    to a fresh control plane, bundles in a fresh bucket; then the sources are removed (what
    runs must come from the bundle in S3, not the user's tree)."""
    root.mkdir()
    for source in sources:
        shutil.copy(source, root / source.name)
    server = start_flyte_server()
    try:
        bucket = s3.make_bucket(f"b-{uuid.uuid4().hex[:12]}")
        write_remote_config(root, server.endpoint, f"s3://{bucket}/bundles")
        project = RemoteProject(root, server, s3, bucket)
        env = {**project.env(), **{name: "1" for name in AUTOLOAD_VARIABLES}}
        for file in files:
            result = cli(["deploy", "--all", file, "--backend", "remote", "--version", "v1", "-q"], root, env)
            assert result.returncode == 0, result.stderr
        for source in sources:
            (root / source.name).unlink()
        yield project
    finally:
        server.stop()


@pytest.fixture(scope="module")
def remote_project(tmp_path_factory, s3_server: S3Server) -> Iterator[RemoteProject]:
    """tests/flyte_projects/apps_serve's greeter deployed to a control plane, bundle in S3."""
    root = tmp_path_factory.mktemp("serve-remote") / "proj"
    with deployed_remotely(root, s3_server, list(PROJECT.glob("*.py")), "greeter.py") as project:
        yield project


@pytest.mark.servers
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)  # rclone's serve s3 answers no range reads
def test_serve_fetches_the_bundle_from_s3_answers_http_and_stops_on_sigint(remote_project):
    [app] = remote_project.server.apps.apps.values()
    assert app.metadata.code_bundle_uri.startswith(f"s3://{remote_project.bucket}/bundles/")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flyte_deploy", "serve", "greeter", "--backend", "remote", "--port", "0"],
        cwd=remote_project.root,
        env=cli_env(remote_project.env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = first_line(proc)
        assert get(f"{url}/greet/Cy") == {"greeting": "Hello, Cy!"}
        [server] = children_of(proc.pid)
        argv = Path(f"/proc/{server}/cmdline").read_bytes().decode()
        assert SECRET_KEY not in argv and ACCESS_KEY not in argv  # credentials only in its environment
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == ""  # the URL, read above, was the only line
    assert "serving app greeter (version v1); Ctrl-C stops it" in err
    assert err.rstrip().endswith("stopped app greeter")
    assert SECRET_KEY not in out + err
    assert not group_alive(server)  # nothing of the server's process group is left
    with pytest.raises(urllib.error.URLError):
        get(f"{url}/greet/Cy")


@pytest.mark.servers
@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)  # moto_server takes any credentials
def test_wrong_s3_credentials_are_one_line_exit_14_naming_the_app_without_the_secret(remote_project):
    args = ["serve", "greeter", "--backend", "remote", "--port", "0"]
    result = cli(args, remote_project.root, remote_project.env(WRONG_SECRET))
    assert result.returncode == ExitCode.RUN_FAILED, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: app greeter exited before serving on http://127\.0\.0\.1:\d+ with code 1:"
        r" PermissionDeniedError: .* 403 Forbidden.*",
        error,
    ), error
    assert WRONG_SECRET not in result.stdout + result.stderr
    assert result.stdout == ""


def test_s3_options_become_the_flyte_sdks_storage_environment(monkeypatch):
    options = {
        "endpoint_url": "http://127.0.0.1:9000",
        "key": ACCESS_KEY,
        "secret": SECRET_KEY,
        "client_kwargs": {"region_name": REGION, "aws_session_token": "session-tok"},
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }
    env = storage_environment("s3://bucket/bundles", options)
    assert json.loads(env.pop("FLYTE_DEPLOY_STORAGE_OPTIONS")) == options  # flyte-deploy's own runtime
    assert env == {
        "FLYTE_AWS_ENDPOINT": "http://127.0.0.1:9000",
        "FLYTE_AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "FLYTE_AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": "session-tok",
        "AWS_REGION": REGION,
        "FLYTE_AWS_S3_ADDRESSING_STYLE": "path",
    }
    from flyte.storage import S3

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert S3.auto().get_fsspec_kwargs()["config"] == {  # what the SDK's obstore store is given
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "endpoint": "http://127.0.0.1:9000",
        "virtual_hosted_style_request": False,
    }
    assert storage_environment("s3://public", {"anon": True}) == {
        "FLYTE_DEPLOY_STORAGE_OPTIONS": '{"anon": true}',
        "AWS_SKIP_SIGNATURE": "true",
    }
    assert storage_environment("file:///bundles", {}) == {}


def test_storage_options_open_s3fs_though_the_flyte_sdk_registered_obstore_for_s3():
    """Deploying a flyte project imports the SDK, which registers obstore for ``s3`` in fsspec's
    registry; the bundle upload must still get the s3fs the options are written for."""
    import flyte.storage  # noqa: F401  (registers obstore)
    import fsspec
    import s3fs

    from flyte_deploy.storage import filesystem

    assert not issubclass(fsspec.get_filesystem_class("s3"), s3fs.S3FileSystem)
    fs, path = filesystem("s3://bucket/bundles/x.tar.gz", {"key": ACCESS_KEY, "secret": SECRET_KEY})
    assert isinstance(fs, s3fs.S3FileSystem) and path == "bucket/bundles/x.tar.gz"

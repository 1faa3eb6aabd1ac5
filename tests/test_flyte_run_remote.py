"""``flyte-deploy run`` of a flyte task deployed to a control plane, its bundle in S3: the spec
from the TaskService of the test control plane, the bundle fetched by the Flyte SDK's runtime
(``a0``) with the project's storage options translated into the SDK's environment
(``storage.storage_environment``); the secret is never printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flyte_deploy import ExitCode
from tests.fixtures.s3 import SECRET_KEY, S3Server

from .bundle_helpers import cli
from .test_flyte_apps_serve_remote import WRONG_SECRET, RemoteProject, deployed_remotely

pytest.importorskip("flyte")
pytestmark = pytest.mark.servers
HELLO = Path(__file__).resolve().parents[1] / "examples" / "flyte_hello" / "hello.py"


@pytest.fixture(scope="module")
def remote_hello(tmp_path_factory, s3_server: S3Server) -> Iterator[RemoteProject]:
    """examples/flyte_hello deployed to a control plane, its bundle in S3."""
    with deployed_remotely(tmp_path_factory.mktemp("run-remote") / "proj", s3_server, [HELLO], "hello.py") as project:
        yield project


def run_greet(project: RemoteProject, secret: str = SECRET_KEY):
    args = ["run", "hello.greet", "--input", "name=S3", "--backend", "remote"]
    return cli(args, project.root, project.env(secret))


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)  # rclone's serve s3 answers no range reads
def test_a_flyte_task_runs_on_a0_from_its_bundle_in_s3(remote_hello):
    spec = remote_hello.server.service.deployed()["hello.greet"]
    assert any(arg.startswith(f"s3://{remote_hello.bucket}/bundles/") for arg in spec.task_template.container.args)
    result = run_greet(remote_hello)
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'o0 = "Hello, S3."\n'
    assert SECRET_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)  # moto_server takes any credentials
def test_wrong_s3_credentials_are_exit_14_naming_the_task_without_the_secret(remote_hello):
    result = run_greet(remote_hello, WRONG_SECRET)
    assert result.returncode == ExitCode.RUN_FAILED, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: task hello.greet raised PermissionDeniedError:"), error
    assert "403 Forbidden" in error
    assert WRONG_SECRET not in result.stdout + result.stderr
    assert result.stdout == ""

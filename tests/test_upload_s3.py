"""Uploading bundles to real S3 servers (rclone serve s3, moto_server) through the CLI:
content-addressed upload, skipped re-upload, retries through a server that fails
mid-upload, and a clean failure that registers nothing and leaks no credentials."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from flyte_deploy.errors import ExitCode

from .bundle_helpers import cli, deploy_json, make_project
from .fixtures.s3 import ACCESS_KEY, SECRET_KEY, S3Server

pytestmark = pytest.mark.servers

#: let the test see flyte-deploy's own retries: botocore makes one attempt per call
ONE_BOTOCORE_ATTEMPT = {"config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop")


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.make_bucket(f"b-{uuid.uuid4().hex[:12]}")


def storage_env(bucket: str, options: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        "FLYTE_DEPLOY_STORAGE": f"s3://{bucket}/bundles",
        "FLYTE_DEPLOY_STORAGE_OPTIONS": json.dumps(options),
        "FLYTE_DEPLOY_UPLOAD_BACKOFF": "0.01",
        **extra,
    }


def test_upload_to_s3_and_skip_when_present(s3_server: S3Server, bucket: str, project: Path, flaky_proxy) -> None:
    proxy = flaky_proxy(s3_server.endpoint)  # forwards everything, counts uploads
    env = storage_env(bucket, s3_server.options(proxy.endpoint))
    first = deploy_json(["flows.py", "audit", "--copy-style", "all"], project, env)
    key = f"{bucket}/bundles/{first['bundle']['digest']}.tar.gz"
    assert first["bundle"]["uri"] == f"s3://{key}"
    stored = s3_server.filesystem().cat_file(key)
    assert hashlib.sha256(stored).hexdigest() == first["bundle"]["archive_digest"]
    assert len(stored) == first["bundle"]["size"]
    assert hashlib.sha256(gzip.decompress(stored)).hexdigest() == first["bundle"]["digest"]
    assert len(proxy.uploads()) == 1
    second = deploy_json(["flows.py", "audit", "--copy-style", "all"], project, env)
    assert second["bundle"]["uri"] == first["bundle"]["uri"]
    assert len(proxy.uploads()) == 1  # the second deploy found it and uploaded nothing


def test_the_same_content_compressed_elsewhere_is_not_uploaded_again(
    s3_server: S3Server, bucket: str, project: Path, tmp_path: Path, flaky_proxy
) -> None:
    # the same code deployed from another checkout, here to local storage, gives the tar stream
    other = tmp_path / "other-checkout"
    shutil.copytree(project, other)
    made = deploy_json(["flows.py", "audit"], other, {"FLYTE_DEPLOY_STORAGE": (tmp_path / "local").as_uri()})
    stream = gzip.decompress(Path(made["bundle"]["uri"].removeprefix("file://")).read_bytes())
    # which a machine with another zlib compressed differently and put at the content address
    elsewhere = gzip.compress(stream, compresslevel=9, mtime=0)
    key = f"{bucket}/bundles/{made['bundle']['digest']}.tar.gz"
    fs = s3_server.filesystem()
    fs.pipe_file(key, elsewhere)
    proxy = flaky_proxy(s3_server.endpoint)
    result = deploy_json(["flows.py", "audit"], project, storage_env(bucket, s3_server.options(proxy.endpoint)))
    assert result["bundle"]["uri"] == f"s3://{key}" and result["version"] == made["version"]
    assert result["bundle"]["size"] != len(elsewhere)
    assert proxy.uploads() == []  # the object at the content address holds the same code
    fs.invalidate_cache()
    assert fs.cat_file(key) == elsewhere


def test_storage_options_from_pyproject(s3_server: S3Server, bucket: str, project: Path) -> None:
    with (project / "pyproject.toml").open("a") as handle:
        handle.write(
            f'storage = "s3://{bucket}/from-pyproject"\n\n[tool.flyte-deploy.storage_options]\n'
            f'endpoint_url = "{s3_server.endpoint}"\nkey = "{ACCESS_KEY}"\nsecret = "{SECRET_KEY}"\n'
        )
    result = deploy_json(["flows.py", "shop"], project)
    key = result["bundle"]["uri"][len("s3://") :]
    assert key.startswith(f"{bucket}/from-pyproject/")
    assert s3_server.filesystem().size(key) == result["bundle"]["size"]


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_uploads_survive_a_server_failing_mid_upload(
    s3_server: S3Server, bucket: str, project: Path, flaky_proxy, mode: str
) -> None:
    proxy = flaky_proxy(s3_server.endpoint, fail_uploads=3, mode=mode)
    env = storage_env(
        bucket, {**s3_server.options(proxy.endpoint), **ONE_BOTOCORE_ATTEMPT}, FLYTE_DEPLOY_UPLOAD_RETRIES="6"
    )
    result = deploy_json(["flows.py", "audit"], project, env)
    outcomes = [outcome for _, _, outcome in proxy.uploads()]
    assert outcomes[:3] == ["dropped" if mode == "drop" else "503"] * 3 and outcomes[3:] == ["200"]
    stored = s3_server.filesystem().cat_file(result["bundle"]["uri"][len("s3://") :])
    assert hashlib.sha256(stored).hexdigest() == result["bundle"]["archive_digest"]
    listed = json.loads(cli(["ls", "--output", "json"], project).stdout)
    assert {r["environment"] for r in listed} == {"shop", "audit"}


def test_a_server_that_keeps_failing_gives_a_clean_upload_error(
    s3_server: S3Server, bucket: str, project: Path, flaky_proxy
) -> None:
    proxy = flaky_proxy(s3_server.endpoint, fail_uploads=10**6, mode="503")
    env = storage_env(
        bucket, {**s3_server.options(proxy.endpoint), **ONE_BOTOCORE_ATTEMPT}, FLYTE_DEPLOY_UPLOAD_RETRIES="1"
    )
    result = cli(["deploy", "flows.py", "audit", "-q"], project, env)
    assert result.returncode == ExitCode.UPLOAD_FAILED
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: uploading the bundle to s3://{bucket}/bundles/")
    assert "failed after 2 attempt(s)" in errors[0]
    assert SECRET_KEY not in result.stderr + result.stdout and ACCESS_KEY not in result.stderr + result.stdout
    # nothing half-deployed: no object, no registration
    assert s3_server.filesystem().ls(bucket) == []
    assert not (project / ".flyte-deploy" / "environments").exists()


def test_a_missing_bucket_fails_at_once(s3_server: S3Server, project: Path, flaky_proxy) -> None:
    proxy = flaky_proxy(s3_server.endpoint)
    env = storage_env("no-such-bucket-flyte-deploy", s3_server.options(proxy.endpoint))
    result = cli(["deploy", "flows.py", "shop", "-q"], project, env)
    assert result.returncode == ExitCode.UPLOAD_FAILED
    assert "error: uploading the bundle to s3://no-such-bucket-flyte-deploy/bundles/" in result.stderr
    assert "attempt" not in result.stderr  # permanent: not retried
    assert not (project / ".flyte-deploy" / "environments").exists()


def test_run_fetches_the_bundle_from_s3_with_the_projects_storage_options(
    s3_server: S3Server, bucket: str, project: Path
) -> None:
    """`run` hands the storage options to the runtime, which fetches the bundle from the
    custom S3 endpoint (never from the source tree)."""
    with (project / "pyproject.toml").open("a") as handle:
        handle.write(
            f'storage = "s3://{bucket}/run"\n\n[tool.flyte-deploy.storage_options]\n'
            f'endpoint_url = "{s3_server.endpoint}"\nkey = "{ACCESS_KEY}"\nsecret = "{SECRET_KEY}"\n'
        )
    result = deploy_json(["flows.py", "audit"], project)
    assert result["bundle"]["uri"].startswith(f"s3://{bucket}/run/")
    ran = cli(["run", "audit.check", "--output", "json"], project)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outputs"]["o0"] == "OK!"
    assert SECRET_KEY not in ran.stdout + ran.stderr

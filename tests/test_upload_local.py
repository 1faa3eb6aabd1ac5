"""Uploading bundles to file:// and memory:// storage: content addressing, skipped
re-uploads, clean failures; storage options and credential scrubbing."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import fsspec
import pytest

from flyte_deploy.bundle.upload import upload
from flyte_deploy.cli import cli as cli_group
from flyte_deploy.cli import run_cli
from flyte_deploy.config import Config
from flyte_deploy.errors import ExitCode, UploadError, UsageError
from flyte_deploy.storage import redact_url, scrub, storage_options
from flyte_deploy.types import Bundle

from .bundle_helpers import cli, deploy_json, make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop")


def archive(tmp_path: Path, data: bytes = b"bundle bytes") -> Bundle:
    path = tmp_path / "b.tar.gz"
    path.write_bytes(data)
    return Bundle(
        copy_style="all",
        digest="d" * 64,
        path=path,
        size=len(data),
        files=("a.py",),
        archive_digest=hashlib.sha256(data).hexdigest(),
    )


def test_file_storage_is_content_addressed_and_not_uploaded_twice(project: Path, tmp_path: Path) -> None:
    storage = tmp_path / "bucket"
    env = {"FLYTE_DEPLOY_STORAGE": storage.as_uri()}
    first = deploy_json(["flows.py", "audit"], project, env)
    stored = storage / f"{first['bundle']['digest']}.tar.gz"
    assert first["bundle"]["uri"] == stored.as_uri()
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first["bundle"]["archive_digest"]
    before = stored.stat()
    second = deploy_json(["flows.py", "audit"], project, env)
    after = stored.stat()
    assert second["bundle"]["uri"] == first["bundle"]["uri"]
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not written again
    assert [p.name for p in storage.iterdir()] == [stored.name]  # no partial files left


def test_a_local_copy_that_does_not_match_the_archive_is_never_published(tmp_path: Path) -> None:
    bundle = archive(tmp_path)
    wrong = Bundle(
        copy_style="all",
        digest=bundle.digest,
        path=bundle.path,
        size=bundle.size,
        files=bundle.files,
        archive_digest="0" * 64,
    )
    store = tmp_path / "store"
    with pytest.raises(UploadError, match=r"after 2 attempt\(s\): _BadCopy: the copy's sha256 is "):
        upload(wrong, (store / "x.tar.gz").as_uri(), retries=1, sleep=lambda _: None)
    assert list(store.iterdir()) == []  # neither the object nor a partial file


def test_an_object_store_upload_of_the_wrong_size_is_uploaded_again(tmp_path: Path) -> None:
    bundle = archive(tmp_path)
    wrong = Bundle(
        copy_style="all",
        digest=bundle.digest,
        path=bundle.path,
        size=bundle.size + 1,
        files=bundle.files,
        archive_digest=bundle.archive_digest,
    )
    uri = f"memory://flyte-deploy-tests/{tmp_path.name}/{bundle.digest}.tar.gz"
    fs, path = fsspec.core.url_to_fs(uri)
    # each attempt uploads again instead of trusting the object the previous one got wrong
    with pytest.raises(
        UploadError,
        match=r"after 3 attempt\(s\): _BadCopy: the stored object has 12 bytes,"
        r" the bundle 13",
    ):
        upload(wrong, uri, retries=2, sleep=lambda _: None)
    fs.rm(path)


def test_memory_storage_upload_and_skip(tmp_path: Path) -> None:
    bundle = archive(tmp_path)
    uri = f"memory://flyte-deploy-tests/{tmp_path.name}/{bundle.digest}.tar.gz"
    fs, path = fsspec.core.url_to_fs(uri)
    assert upload(bundle, uri) == uri
    assert fs.cat_file(path) == b"bundle bytes"
    stored = fs.store[path]
    upload(bundle, uri)
    assert fs.store[path] is stored  # the same object: nothing was uploaded again
    fs.rm(path)


def test_deploy_to_memory_storage_in_process(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"memory://flyte-deploy-tests/{project.parent.name}"
    monkeypatch.setenv("FLYTE_DEPLOY_STORAGE", url)
    monkeypatch.setenv("FLYTE_DEPLOY_STORE", str(project.parent / "store"))  # the store of record is local
    monkeypatch.chdir(project)
    before = set(sys.modules)
    try:
        code = run_cli(cli_group, ["deploy", "flows.py", "shop", "--output", "json", "-q"])
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    fs, path = fsspec.core.url_to_fs(result["bundle"]["uri"])
    assert result["bundle"]["uri"].startswith(url + "/") and fs.size(path) == result["bundle"]["size"]
    fs.rm(url, recursive=True)


def test_a_failed_upload_names_the_url_and_registers_nothing(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the storage directory should be")
    url = (blocker / "bundles").as_uri()
    result = cli(["deploy", "flows.py", "audit", "-q"], project, {"FLYTE_DEPLOY_STORAGE": url})
    assert result.returncode == ExitCode.UPLOAD_FAILED
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: uploading the bundle to {url}/")
    assert "NotADirectoryError" in errors[0] and "attempt" not in errors[0]  # permanent: not retried
    assert not (project / ".flyte-deploy" / "environments").exists()
    assert json.loads(cli(["ls", "--output", "json"], project).stdout) == []


def test_bundle_without_archive_is_an_upload_error(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="no local archive"):
        upload(Bundle(copy_style="all", digest="e" * 64), (tmp_path / "x").as_uri())


def test_storage_options_from_pyproject_and_environment(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flyte-deploy.storage_options]\nendpoint_url = "http://127.0.0.1:1"\n'
        '[tool.flyte-deploy.storage_options.client_kwargs]\nregion_name = "eu-west-1"\n'
    )
    config = Config.load(tmp_path, environ={"FLYTE_DEPLOY_STORAGE_OPTIONS": '{"key": "AK", "secret": "SK"}'})
    assert storage_options(config) == {
        "endpoint_url": "http://127.0.0.1:1",
        "key": "AK",
        "secret": "SK",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    bad = Config.load(tmp_path, environ={"FLYTE_DEPLOY_STORAGE_OPTIONS": "{not json"})
    with pytest.raises(UsageError, match="FLYTE_DEPLOY_STORAGE_OPTIONS is not valid JSON"):
        storage_options(bad)
    with pytest.raises(UsageError, match="must be a JSON object"):
        storage_options(Config.load(tmp_path, environ={"FLYTE_DEPLOY_STORAGE_OPTIONS": "[1]"}))


def test_credentials_never_appear_in_messages() -> None:
    assert redact_url("s3://AKID:s3cret@bucket/path/x.tar.gz") == "s3://bucket/path/x.tar.gz"
    assert redact_url("gs://bucket/x") == "gs://bucket/x"
    options = {
        "key": "AKIDXYZ",
        "secret": "s3cret",
        "client_kwargs": {"aws_session_token": "tok3n"},
        "endpoint_url": "http://127.0.0.1:9000",
    }
    text = scrub("failed at https://user:pw@host/x with AKIDXYZ/s3cret and tok3n via http://127.0.0.1:9000", options)
    assert text == "failed at https://***@host/x with ***/*** and *** via http://127.0.0.1:9000"

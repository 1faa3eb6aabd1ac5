"""Uploading bundles to a real GCS emulator (gcp-storage-emulator) through the CLI."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from .bundle_helpers import deploy_json, make_project
from .fixtures.gcs import GcsServer

pytestmark = pytest.mark.servers


def test_upload_to_gcs_and_skip_when_present(gcs_server: GcsServer, tmp_path: Path) -> None:
    project = make_project(tmp_path / "shop")
    prefix = f"{gcs_server.bucket}/{uuid.uuid4().hex[:8]}"
    env = {"FLYTE_DEPLOY_STORAGE": f"gs://{prefix}", "FLYTE_DEPLOY_STORAGE_OPTIONS": json.dumps(gcs_server.options())}
    first = deploy_json(["--all", "flows.py", "--copy-style", "all"], project, env)
    path = f"{prefix}/{first['bundle']['digest']}.tar.gz"
    assert first["bundle"]["uri"] == f"gs://{path}"
    fs = gcs_server.filesystem()
    assert hashlib.sha256(fs.cat_file(path)).hexdigest() == first["bundle"]["archive_digest"]
    generation = fs.info(path)["generation"]
    second = deploy_json(["--all", "flows.py", "--copy-style", "all"], project, env)
    assert second["bundle"]["uri"] == first["bundle"]["uri"] and second["version"] == first["version"]
    fs.invalidate_cache()
    assert fs.info(path)["generation"] == generation  # not uploaded again
    assert fs.ls(prefix) == [path]

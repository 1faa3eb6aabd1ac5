"""Helpers shared by the image-builder tests: a small task project, sessions configured
for the test registries, and pulling an image back with skopeo to check its digests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

TASKS_PY = """\
import flyte_deploy as fd

prep_env = fd.TaskEnvironment(name="prep")


@prep_env.task
def double(x: int) -> int:
    return 2 * x
"""


def task_project(directory: Path, body: str = TASKS_PY) -> Path:
    """A project directory holding ``tasks.py`` (environment ``prep``, task ``double``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tasks.py").write_text(body)
    return directory


@dataclass
class PulledImage:
    """An image copied back from a registry into an OCI layout, with every blob verified."""

    manifest_digest: str
    manifest: dict
    config: dict
    blobs: dict[str, bytes]

    def layer_files(self, index: int) -> dict[str, tarfile.TarInfo]:
        data = gzip.decompress(self.blobs[self.manifest["layers"][index]["digest"]])
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {m.name: m for m in tar.getmembers()}

    def read(self, index: int, name: str) -> bytes:
        data = gzip.decompress(self.blobs[self.manifest["layers"][index]["digest"]])
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            handle = tar.extractfile(name)
            assert handle is not None
            return handle.read()


def pull_back(uri: str, dest: Path, creds: str | None = None) -> PulledImage:
    """``skopeo copy`` the image to an OCI layout (digests preserved) and verify every blob
    against its digest and every layer against the config's diff_ids."""
    argv = [
        "skopeo",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--preserve-digests",
        "--dest-oci-accept-uncompressed-layers",
        f"docker://{uri}",
        f"oci:{dest}:pulled",
    ]
    if creds:
        argv[2:2] = ["--src-creds", creds]
    subprocess.run(argv, check=True, capture_output=True)
    index = json.loads((dest / "index.json").read_text())
    blobs = {}
    for blob in (dest / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        assert hashlib.sha256(data).hexdigest() == blob.name, f"blob {blob.name} does not match its digest"
        blobs[f"sha256:{blob.name}"] = data
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(blobs[digest])
    config = json.loads(blobs[manifest["config"]["digest"]])
    diff_ids = [
        "sha256:" + hashlib.sha256(gzip.decompress(blobs[layer["digest"]])).hexdigest() for layer in manifest["layers"]
    ]
    assert diff_ids == config["rootfs"]["diff_ids"]
    return PulledImage(digest, manifest, config, blobs)

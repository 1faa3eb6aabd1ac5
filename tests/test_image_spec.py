"""The Image spec: immutability, content hash and tag, base resolution, the generated
Dockerfile, reproducible layers and the builder registry (no servers needed)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from flyte_deploy import Image, ImageBuildError, UsageError
from flyte_deploy.builders.dockerfile import render
from flyte_deploy.builders.layers import write_layer
from flyte_deploy.builders.oci import refuse_run_steps
from flyte_deploy.builders.python import RUNTIME_DIR, SITE_PACKAGES, pip_platforms, runtime_requirements


def test_with_methods_return_new_specs_and_leave_the_original_alone():
    base = Image.from_debian_base(python_version="3.11")
    refined = base.with_pip_packages("six").with_env_vars({"A": "1"})
    assert base.layers == ()
    assert [layer.kind for layer in refined.layers] == ["pip", "env"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        refined.name = "other"  # type: ignore[misc]


def test_equal_specs_share_a_tag_and_any_change_gives_a_new_one():
    a = Image.from_debian_base().with_pip_packages("six", "attrs")
    b = Image.from_debian_base().with_pip_packages("six", "attrs")
    assert a.content_hash == b.content_hash and a.tag == b.tag
    assert a.tag != Image.from_debian_base().with_pip_packages("attrs", "six").tag  # order is part of the spec
    assert a.tag != Image.from_debian_base(python_version="3.12").with_pip_packages("six", "attrs").tag
    assert a.tag != a.with_apt_packages("curl").tag


def test_registry_and_name_place_the_image_but_do_not_change_its_tag():
    spec = Image.from_debian_base().with_pip_packages("six")
    placed = spec.resolved("127.0.0.1:5000/team").with_name("ml")
    assert placed.tag == spec.tag
    assert placed.uri == f"127.0.0.1:5000/team/ml:{spec.tag}"
    assert spec.resolved(None).uri == f"flyte-deploy:{spec.tag}"
    assert placed.resolved("other:1") is placed  # an explicit registry wins over the configured one


def test_file_contents_are_part_of_the_hash(tmp_path: Path):
    req = tmp_path / "requirements.txt"
    req.write_text("six\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "mod.py").write_text("X = 1\n")
    spec = Image.from_debian_base().with_requirements(req).with_source_folder(src)
    first = spec.tag
    (src / "mod.py").write_text("X = 2\n")
    second = spec.tag
    req.write_text("six==1.16.0\n")
    third = spec.tag
    assert len({first, second, third}) == 3


def test_prebuilt_bases_are_used_as_is_until_refined():
    prebuilt = Image.from_base("ghcr.io/org/app:1.0")
    assert prebuilt.prebuilt and prebuilt.uri == "ghcr.io/org/app:1.0"
    refined = prebuilt.with_pip_packages("six").resolved("127.0.0.1:5000")
    assert not refined.prebuilt and refined.uri.startswith("127.0.0.1:5000/flyte-deploy:")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Image.from_debian_base(python_version="python3"), "python_version must look like"),
        (lambda: Image.from_base(""), "needs an image URI"),
        (lambda: Image.from_dockerfile("/nonexistent/Dockerfile"), "is not a file"),
        (lambda: Image.from_debian_base().with_pip_packages(), "needs at least one value"),
        (lambda: Image.from_debian_base().with_source_folder("/nonexistent"), "is not a directory"),
    ],
)
def test_bad_specs_fail_with_a_usage_error(call, message):
    with pytest.raises(UsageError, match=message):
        call()


@pytest.mark.parametrize(
    "base, mirror, expected",
    [
        ("python:3.11-slim-bookworm", "127.0.0.1:5000", "127.0.0.1:5000/library/python:3.11-slim-bookworm"),
        ("docker.io/org/tool:1", "mirror:5000", "mirror:5000/org/tool:1"),
        ("ghcr.io/org/app:1", "mirror:5000", "ghcr.io/org/app:1"),
        ("python:3.11-slim-bookworm", None, "python:3.11-slim-bookworm"),
        ("oci:/layouts/base:1", "mirror:5000", "oci:/layouts/base:1"),
    ],
)
def test_base_registry_mirrors_docker_hub_bases_only(base, mirror, expected):
    image = Image.from_base(base).with_env_vars({"A": "1"})
    assert image.base_uri(mirror) == expected
    assert image.tag == Image.from_base(base).with_env_vars({"A": "1"}).tag  # the mirror is not in the hash


def test_generated_dockerfile_orders_layers_for_caching(tmp_path: Path):
    (tmp_path / "app").mkdir()
    image = (
        Image.from_debian_base()
        .with_source_folder(tmp_path / "app", "app")
        .with_commands("echo hi")
        .with_env_vars({"GREETING": "hello world"})
        .with_apt_packages("curl", "git")
        .with_pip_packages("six")
    )
    text = render(image, "127.0.0.1:5000/library/python:3.11-slim-bookworm", has_packages=True)
    lines = text.splitlines()[1:]
    assert [line.split()[0] for line in lines] == [
        "FROM",
        "RUN",
        "ENV",
        "COPY",
        "COPY",
        "ENV",
        "RUN",
        "WORKDIR",
        "COPY",
    ]
    assert lines[0] == "FROM 127.0.0.1:5000/library/python:3.11-slim-bookworm"
    assert lines[2].startswith(f"ENV PYTHONPATH={RUNTIME_DIR}:{SITE_PACKAGES} PATH=$PATH:")
    assert lines[3:5] == [f"COPY site-packages/ {SITE_PACKAGES}/", f"COPY runtime/ {RUNTIME_DIR}/"]
    assert lines[5:] == ['ENV GREETING="hello world"', "RUN echo hi", "WORKDIR /root", "COPY source-0/ /root/app/"]
    assert "apt-get install -y --no-install-recommends curl git" in text
    assert text.startswith(f"# generated by flyte-deploy for image flyte-deploy (spec {image.tag})")


def test_oci_builder_refuses_specs_that_need_run_steps():
    message = r"needs RUN steps \(apt packages and commands\).*image.builder = \"docker\""
    with pytest.raises(ImageBuildError, match=message):
        refuse_run_steps(Image.from_debian_base().with_apt_packages("curl").with_commands("true"), "prep")
    refuse_run_steps(Image.from_debian_base().with_pip_packages("six"), "prep")  # no RUN needed: no error


def _members(layer_path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_path.read_bytes()))) as tar:
        return tar.getmembers()


def test_layers_are_reproducible_and_normalised(tmp_path: Path):
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    (src / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"junk")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o700)
    os.symlink("pkg/mod.py", src / "link.py")
    first = write_layer([("/opt/app", src)], tmp_path / "a.tar.gz")
    os.utime(src / "pkg" / "mod.py", (1, 1))
    second = write_layer([("/opt/app", src)], tmp_path / "b.tar.gz")
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)
    assert first.digest == "sha256:" + hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(first.path.read_bytes())).hexdigest()
    members = {m.name: m for m in _members(first.path)}
    assert list(members) == ["opt", "opt/app", "opt/app/link.py", "opt/app/pkg", "opt/app/pkg/mod.py", "opt/app/run.sh"]
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, 0, "")}
    assert members["opt/app/run.sh"].mode == 0o755 and members["opt/app/pkg/mod.py"].mode == 0o644
    assert members["opt/app/link.py"].issym() and members["opt/app/link.py"].linkname == "pkg/mod.py"
    (src / "pkg" / "mod.py").write_text("X = 2\n")
    assert write_layer([("/opt/app", src)], tmp_path / "c.tar.gz").digest != first.digest


def test_pip_platforms_cover_manylinux_for_the_image_architecture():
    tags = pip_platforms("linux/amd64")
    assert "manylinux_2_36_x86_64" in tags and "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert all(t.endswith("aarch64") for t in pip_platforms("linux/arm64"))
    with pytest.raises(ImageBuildError, match="windows/amd64"):
        pip_platforms("windows/amd64")


def test_runtime_requirements_are_pinned_to_what_runs_here():
    import importlib.metadata

    pins = dict(r.split(";")[0].strip().split("==") for r in runtime_requirements() if "==" in r)
    assert pins["pluggy"] == importlib.metadata.version("pluggy")
    assert pins["flyteidl2"] == importlib.metadata.version("flyteidl2")

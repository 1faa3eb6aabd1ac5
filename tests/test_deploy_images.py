"""End to end through the CLI: ``flyte-deploy deploy`` with ``image.registry`` set builds
and pushes each environment's image (concurrently, with a progress line per image), a
rerun skips them, and a failing image build registers nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flyte_deploy import ExitCode
from tests.fixtures.processes import free_port
from tests.imaging import pull_back

pytestmark = pytest.mark.servers
SRC = Path(__file__).resolve().parents[1] / "src"

TWO_ENVS = """\
import flyte_deploy as fd

base = fd.Image.from_debian_base()
prep_env = fd.TaskEnvironment(name="prep", image=base.with_pip_packages("six"))
train_env = fd.TaskEnvironment(name="train", depends_on=[prep_env], image=base.with_env_vars({"STAGE": "train"}))


@prep_env.task
def double(x: int) -> int:
    return 2 * x


@train_env.task
def train(x: int) -> int:
    return x + 1
"""


def flyte_deploy(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(SRC), "DOCKER_HOST": "unix:///nonexistent/docker.sock", **env}
    return subprocess.run(
        [sys.executable, "-m", "flyte_deploy", *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def project(tmp_path):
    (tmp_path / "tasks.py").write_text(TWO_ENVS)
    return tmp_path


def test_deploy_builds_and_pushes_images_then_skips_them(base_registry, project, tmp_path):
    addr = base_registry.address
    env = {"FLYTE_DEPLOY_IMAGE_REGISTRY": f"{addr}/e2e", "FLYTE_DEPLOY_IMAGE_BASE_REGISTRY": addr}
    first = flyte_deploy(project, "deploy", "--all", "tasks.py", "--output", "json", env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    images = {e["name"]: e["image"] for e in result["environments"]}
    assert set(images) == {"prep", "train"} and images["prep"] != images["train"]
    assert all(uri.startswith(f"{addr}/e2e/flyte-deploy:") for uri in images.values())
    assert all(e["image_built"] for e in result["environments"])
    for name, uri in images.items():  # no daemon answers, so auto chose the daemonless builder
        assert f"image {name}: building {uri} (oci)" in first.stderr
        assert f"image {name}: pushed {uri}" in first.stderr
    assert "2 built, 2 distinct" in first.stderr

    pulled = pull_back(images["train"], tmp_path / "train")
    assert "STAGE=train" in pulled.config["config"]["Env"]
    deployed = json.loads(flyte_deploy(project, "ls", "--output", "json", env=env).stdout)
    assert {r["environment"]: r["image"] for r in deployed} == images

    second = flyte_deploy(project, "deploy", "--all", "tasks.py", "--output", "json", env=env)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert {e["name"]: e["image"] for e in again["environments"]} == images
    assert not any(e["image_built"] for e in again["environments"])
    assert "0 built, 2 distinct" in second.stderr and "already in registry" in second.stderr


def test_unreachable_registry_fails_the_deploy_and_registers_nothing(project):
    address = f"127.0.0.1:{free_port()}"
    proc = flyte_deploy(project, "deploy", "--all", "tasks.py", env={"FLYTE_DEPLOY_IMAGE_REGISTRY": address})
    assert proc.returncode == ExitCode.IMAGE_FAILED
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: registry {address} is unreachable")
    assert json.loads(flyte_deploy(project, "ls", "--output", "json", env={}).stdout) == []


def test_run_steps_with_the_oci_builder_fail_the_deploy(base_registry, project):
    tasks = TWO_ENVS.replace('with_env_vars({"STAGE": "train"})', 'with_apt_packages("curl")')
    (project / "tasks.py").write_text(tasks)
    addr = base_registry.address
    proc = flyte_deploy(
        project,
        "deploy",
        "--all",
        "tasks.py",
        env={
            "FLYTE_DEPLOY_IMAGE_REGISTRY": f"{addr}/e2e-run",
            "FLYTE_DEPLOY_IMAGE_BASE_REGISTRY": addr,
            "FLYTE_DEPLOY_IMAGE_BUILDER": "oci",
        },
    )
    assert proc.returncode == ExitCode.IMAGE_FAILED
    assert (
        "error: image for environment 'train' needs RUN steps (apt packages), which the daemonless oci builder"
        " cannot run"
    ) in proc.stderr
    assert json.loads(flyte_deploy(project, "ls", "--output", "json", env={}).stdout) == []


BARRIER_PLUGIN = """\
import threading

import flyte_deploy as fd

both_started = threading.Barrier(2, timeout=60)


def build(session, environment, image):
    both_started.wait()  # breaks (and fails the deploy) unless the two builds overlap
    return fd.ImageRef(environment=environment, uri=image.uri, builder="barrier", built=True)


@fd.hookimpl
def register_image_builders():
    return [fd.ImageBuilder(name="barrier", build=build, description="test builder from deployconf.py")]
"""


def test_plugin_builders_are_chosen_by_name_and_independent_images_build_concurrently(project):
    (project / "deployconf.py").write_text(BARRIER_PLUGIN)
    env = {"FLYTE_DEPLOY_IMAGE_REGISTRY": "registry.example:5000", "FLYTE_DEPLOY_IMAGE_BUILDER": "barrier"}
    proc = flyte_deploy(project, "deploy", "--all", "tasks.py", "--output", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert all(e["image_built"] for e in json.loads(proc.stdout)["environments"])

    unknown = flyte_deploy(project, "deploy", "--all", "tasks.py", env={**env, "FLYTE_DEPLOY_IMAGE_BUILDER": "kaniko"})
    assert unknown.returncode == ExitCode.USAGE_ERROR
    assert "error: image.builder 'kaniko' is unknown; available: auto, barrier, docker, oci" in unknown.stderr

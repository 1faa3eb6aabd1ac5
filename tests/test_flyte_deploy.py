"""Deploying flyte projects: images pinned to the SDK's URI and built by our builders into a
real registry, unbuildable images refused before anything is registered, ``--image``
overrides, the bundle (never the SDK itself) and a version derived from content alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flyte_deploy import ExitCode
from flyte_deploy.bundle.select import loaded_module_files
from tests.fixtures.base_image import BASE_REPOSITORY, BASE_TAG
from tests.imaging import pull_back

flyte = pytest.importorskip("flyte")
REPO = Path(__file__).resolve().parents[1]
PROJECTS = REPO / "tests" / "flyte_projects"


def flyte_deploy(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "FLYTE_IMAGE_REGISTRY"}
    environ.update({"PYTHONPATH": str(REPO / "src"), "DOCKER_HOST": "unix:///nonexistent/docker.sock", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "flyte_deploy", *args],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def sdk_uri(root: Path, module: str, variable: str, env: dict[str, str]) -> str:
    """The image URI the Flyte SDK itself computes for ``module.variable``'s image (fresh process)."""
    code = f"import {module}; print({module}.{variable}.image.uri)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root), **env},
    )
    return proc.stdout.strip()


@pytest.mark.servers
def test_a_flyte_image_is_built_by_the_daemonless_builder_at_the_sdks_uri(base_registry, tmp_path):
    addr = base_registry.address
    root = tmp_path / "proj"
    root.mkdir()
    (root / "img.py").write_text(
        textwrap.dedent(f'''
        import flyte

        base = flyte.Image.from_base("{addr}/{BASE_REPOSITORY}:{BASE_TAG}").clone(
            name="flyte-e2e", registry="{addr}/e2e", extendable=True)
        env = flyte.TaskEnvironment(name="img", image=base.with_pip_packages("six").with_env_vars({{"STAGE": "e2e"}}))

        @env.task
        def f(x: int) -> int:
            return x
    ''')
    )
    registry = {"FLYTE_DEPLOY_IMAGE_BASE_REGISTRY": addr}
    expected = sdk_uri(root, "img", "env", registry)
    assert expected.startswith(f"{addr}/e2e/flyte-e2e:")
    first = flyte_deploy(root, "deploy", "img.py", "env", "--output", "json", env=registry)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)["environments"][0]
    assert out["image"] == expected and out["image_built"]
    assert f"building {expected} (oci)" in first.stderr
    pulled = pull_back(expected, tmp_path / "pulled")
    assert "STAGE=e2e" in pulled.config["config"]["Env"]
    again = flyte_deploy(root, "deploy", "img.py", "env", "--output", "json", env=registry)
    assert "already in registry" in again.stderr and not json.loads(again.stdout)["environments"][0]["image_built"]


@pytest.mark.servers
def test_a_flyte_image_with_run_steps_is_built_by_the_docker_builder_at_the_sdks_uri(dockerd, base_registry, tmp_path):
    """Commands need RUN steps, so the docker builder builds them (apt packages would need a
    Debian mirror inside the build, which this offline setup has not)."""
    from flyte_deploy.builtin.local_backend import load_task_spec

    addr = base_registry.address
    root = tmp_path / "proj"
    root.mkdir()
    (root / "img.py").write_text(
        textwrap.dedent(f'''
        import flyte

        base = flyte.Image.from_base("{addr}/{BASE_REPOSITORY}:{BASE_TAG}").clone(
            name="flyte-docker", registry="{addr}/e2e", extendable=True)
        image = base.with_commands(["echo from-run > /built-by-run"]).with_env_vars({{"STAGE": "docker"}})
        env = flyte.TaskEnvironment(name="img", image=image)

        @env.task
        def f(x: int) -> int:
            return x
    ''')
    )
    env = {
        "FLYTE_DEPLOY_IMAGE_BUILDER": "docker",
        "DOCKER_HOST": dockerd.host,
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
    }
    expected = sdk_uri(root, "img", "env", {})
    assert expected.startswith(f"{addr}/e2e/flyte-docker:")
    first = flyte_deploy(root, "deploy", "img.py", "env", "--output", "json", env=env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)["environments"][0]
    assert out["image"] == expected and out["image_built"]
    assert f"building {expected} (docker)" in first.stderr and f"pushed {expected}" in first.stderr
    spec, _ = load_task_spec((root / ".flyte-deploy").as_uri(), "img.f")
    assert spec.task_template.container.image == expected

    pulled = pull_back(expected, tmp_path / "pulled")
    assert "STAGE=docker" in pulled.config["config"]["Env"]
    client = dockerd.client()
    try:
        client.images.remove(expected, force=True)  # run what the registry holds, not the build's local copy
        client.images.pull(expected)
        ran = client.containers.run(
            expected, ["sh", "-c", "cat /built-by-run; echo $STAGE"], network_mode="none", remove=True
        )
    finally:
        client.close()
    assert ran.decode().split() == ["from-run", "docker"]
    again = flyte_deploy(root, "deploy", "img.py", "env", "--output", "json", env=env)
    assert "already in registry" in again.stderr and not json.loads(again.stdout)["environments"][0]["image_built"]


@pytest.mark.servers
def test_an_image_no_builder_can_build_is_refused_before_anything_is_registered(registry, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(PROJECTS, root, ignore=shutil.ignore_patterns("layouts", "__pycache__"))
    result = flyte_deploy(
        root, "deploy", "images.py", "uv_env", "pip_env", env={"FLYTE_IMAGE_REGISTRY": f"{registry.address}/x"}
    )
    assert result.returncode == ExitCode.IMAGE_FAILED, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: environment images-uv: image ") and "layer UVProject" in last
    assert "flyte-deploy's builders have no such layer" in last and "--image images-uv=URI" in last
    assert not (root / ".flyte-deploy" / "environments").exists()
    override = flyte_deploy(
        root,
        "deploy",
        "images.py",
        "uv_env",
        "--image",
        "images-uv=docker.io/acme/uv:1",
        "--output",
        "json",
        env={"FLYTE_IMAGE_REGISTRY": f"{registry.address}/x"},
    )
    assert override.returncode == 0, override.stderr
    assert json.loads(override.stdout)["environments"][0]["image"] == "docker.io/acme/uv:1"


def test_an_image_override_reaches_the_spec_and_an_unknown_name_is_an_error(tmp_path, invoke, monkeypatch):
    shutil.copy(PROJECTS / "basics.py", tmp_path / "basics.py")
    monkeypatch.chdir(tmp_path)
    ok = invoke(
        "deploy", "basics.py", "top_env", "--image", "basics-middle=ghcr.io/acme/mid:2", "--dry-run", "--output", "json"
    )
    assert ok.exit_code == 0, ok.stderr
    assert {e["name"]: e["image"] for e in ok.json()["environments"]}["basics-middle"] == "ghcr.io/acme/mid:2"
    bad = invoke("deploy", "basics.py", "top_env", "--image", "nosuch=ghcr.io/acme/x:1", "--dry-run")
    assert bad.exit_code == ExitCode.USAGE_ERROR
    assert "no environment or image of this deploy is named 'nosuch'" in bad.stderr


def test_the_bundle_never_holds_the_flyte_sdk_even_under_the_root(tmp_path):
    flyte_dir = Path(flyte.__file__).resolve().parent
    files = loaded_module_files(["flyte", "flyte._task"], flyte_dir.parent)
    assert files == {}


def test_the_version_is_the_same_for_the_same_content_anywhere_and_changes_with_it(tmp_path):
    versions = []
    for name in ("a", "b/deeper"):
        root = tmp_path / name
        shutil.copytree(PROJECTS, root, ignore=shutil.ignore_patterns("layouts", "__pycache__"))
        result = flyte_deploy(root, "deploy", "basics.py", "top_env", "--dry-run", "--output", "json")
        assert result.returncode == 0, result.stderr
        versions.append(json.loads(result.stdout)["version"])
    assert versions[0] == versions[1]
    edited = tmp_path / "b" / "deeper" / "basics.py"
    edited.write_text(edited.read_text().replace("return x + y", "return y + x"))
    changed = flyte_deploy(tmp_path / "b" / "deeper", "deploy", "basics.py", "top_env", "--dry-run", "--output", "json")
    assert json.loads(changed.stdout)["version"] != versions[0]


def test_each_deploy_serializes_with_its_own_image_overrides(tmp_path, monkeypatch):
    """One process, two deploys of one version with different ``--image`` overrides: each
    spec carries its own deploy's image (nothing of the first deploy's SDK context is reused)."""
    import flyte_deploy as fd

    shutil.copy(PROJECTS / "basics.py", tmp_path / "basics.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import basics

    images = []
    for uri in ("ghcr.io/acme/mid:1", "ghcr.io/acme/mid:2"):
        result = fd.deploy(basics.top_env, version="v1", dry_run=True, root_dir=tmp_path, images={"basics-middle": uri})
        images.append({t.spec.task_template.container.image for t in result.tasks if t.environment == "basics-middle"})
    assert images == [{"ghcr.io/acme/mid:1"}, {"ghcr.io/acme/mid:2"}]

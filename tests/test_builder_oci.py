"""The daemonless ``oci`` builder against a real registry: what it pushes is pulled back
with skopeo and checked digest by digest; unchanged specs are skipped; the same spec gives
the same digest; every failure is one line and pushes nothing."""

from __future__ import annotations

import pytest

from flyte_deploy import Image, ImageBuildError, TaskEnvironment
from flyte_deploy.api import open_session
from flyte_deploy.builders.python import RUNTIME_DIR, SITE_PACKAGES
from flyte_deploy.builders.registry import ImageNotFound, RegistryAuthError, RegistryUnreachable
from tests.fixtures.base_image import BASE_TAG
from tests.fixtures.processes import free_port
from tests.imaging import pull_back, task_project

pytestmark = pytest.mark.servers


def build(root, registry_address, image, *, options=None, environment="prep"):
    """Build through the ``build_image`` hook with ``image.builder = oci``."""
    opts = {"image.builder": "oci", "image.registry": registry_address, **(options or {})}
    with open_session(root, options=opts) as session:
        env = TaskEnvironment(name=environment, image=image)
        return session.hook.build_image(session=session, environment=env, image=image.resolved(registry_address))


@pytest.fixture
def project(tmp_path):
    return task_project(tmp_path / "project")


def test_debian_base_image_with_packages_runtime_and_code(base_registry, project, tmp_path):
    addr = base_registry.address
    image = Image.from_debian_base().with_pip_packages("six").with_source_folder(project).with_name("oci/full")
    ref = build(project, addr, image, options={"image.base_registry": addr})
    assert ref.built and ref.builder == "oci" and ref.uri == f"{addr}/oci/full:{image.tag}"

    pulled = pull_back(ref.uri, tmp_path / "pulled")
    assert pulled.manifest_digest == ref.digest
    base = pull_back(f"{addr}/library/python:{BASE_TAG}", tmp_path / "base")
    assert pulled.manifest["layers"][0] == base.manifest["layers"][0]  # the base layer, reused as is
    assert pulled.manifest["annotations"] == {
        "org.opencontainers.image.base.name": "python:3.11-slim-bookworm",
        "org.opencontainers.image.base.digest": base.manifest_digest,
    }
    assert len(pulled.manifest["layers"]) == 4  # base, python packages, runtime, code
    assert f"{SITE_PACKAGES.lstrip('/')}/six.py" in pulled.layer_files(1)
    runtime = pulled.layer_files(2)
    assert f"{RUNTIME_DIR.lstrip('/')}/flyte_deploy/__init__.py" in runtime
    assert any(name.endswith(".dist-info/METADATA") for name in runtime)
    assert pulled.read(3, "root/tasks.py") == (project / "tasks.py").read_bytes()
    config = pulled.config["config"]
    assert f"PYTHONPATH={RUNTIME_DIR}:{SITE_PACKAGES}" in config["Env"]
    assert config["WorkingDir"] == "/root"
    assert config["Labels"]["dev.flyte-deploy.spec"] == image.content_hash
    assert [h["created_by"] for h in pulled.config["history"][-3:]] == [
        f"flyte-deploy oci builder: python packages at {SITE_PACKAGES}",
        f"flyte-deploy oci builder: flyte-deploy runtime at {RUNTIME_DIR}",
        "flyte-deploy oci builder: source folder at /root",
    ]

    again = build(project, addr, image, options={"image.base_registry": addr})
    assert (again.built, again.note, again.digest) == (False, "already in registry", ref.digest)

    # the same spec under another name assembles to byte-identical manifests
    twin = build(project, addr, image.with_name("oci/twin"), options={"image.base_registry": addr})
    assert twin.built and twin.digest == ref.digest


def test_base_from_an_oci_layout(registry, base_image_layout, project, tmp_path):
    image = (
        Image.from_base(f"oci:{base_image_layout}:{BASE_TAG}")
        .with_source_folder(project, "app")
        .with_env_vars({"MODE": "layout"})
        .with_name("oci/layout")
    )
    ref = build(project, registry.address, image)
    pulled = pull_back(ref.uri, tmp_path / "pulled")
    assert pulled.manifest_digest == ref.digest
    assert len(pulled.manifest["layers"]) == 2
    assert "root/app/tasks.py" in pulled.layer_files(1)
    assert "MODE=layout" in pulled.config["config"]["Env"]
    assert not any(e.startswith("PYTHONPATH=") for e in pulled.config["config"]["Env"])  # no runtime asked for


def test_push_to_an_authenticated_registry(base_registry, auth_registry, project, tmp_path):
    image = Image.from_debian_base().with_source_folder(project).with_name("oci/authed")
    options = {
        "image.base_registry": base_registry.address,
        "image.registry_username": auth_registry.username,
        "image.registry_password": auth_registry.password,
    }
    ref = build(project, auth_registry.address, image, options=options)
    pulled = pull_back(ref.uri, tmp_path / "pulled", creds=auth_registry.creds)
    assert pulled.manifest_digest == ref.digest

    wrong = {**options, "image.registry_password": "not-the-password"}
    with pytest.raises(RegistryAuthError) as info:
        build(project, auth_registry.address, image.with_name("oci/refused"), options=wrong)
    assert str(info.value) == f"registry {auth_registry.address} refused authentication (user 'flyte')"
    assert "oci/refused" not in auth_registry.catalog()


def test_specs_needing_run_steps_are_refused(registry, project):
    image = Image.from_debian_base().with_apt_packages("curl").with_name("oci/apt")
    with pytest.raises(ImageBuildError, match=r"needs RUN steps \(apt packages\).*image.builder = \"docker\""):
        build(project, registry.address, image)
    assert "oci/apt" not in registry.catalog()


def test_missing_base_image(registry, project):
    image = Image.from_base(f"{registry.address}/missing/base:1").with_env_vars({"A": "1"}).with_name("oci/nobase")
    with pytest.raises(ImageNotFound) as info:
        build(project, registry.address, image)
    assert str(info.value) == (f"base image {registry.address}/missing/base:1 not found in registry {registry.address}")
    assert "oci/nobase" not in registry.catalog()


def test_unreachable_registry(project):
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnreachable, match=f"^registry {address} is unreachable"):
        build(project, address, Image.from_debian_base().with_name("oci/nowhere"))


def test_failing_pip_step_shows_its_log_tail(base_registry, project):
    image = Image.from_debian_base().with_pip_packages("six==0.0.0.999").with_name("oci/badpip")
    with pytest.raises(ImageBuildError) as info:
        build(project, base_registry.address, image, options={"image.base_registry": base_registry.address})
    first, *tail = str(info.value).splitlines()
    assert first == "image oci/badpip: step 'pip install' failed (exit 1)"
    assert tail and all(line.startswith("  | ") for line in tail)
    assert any("six==0.0.0.999" in line for line in tail)
    assert "oci/badpip" not in base_registry.catalog()


def test_token_auth_registry_with_cross_repository_mounts(token_registry, base_image_layout, project, tmp_path):
    from tests.fixtures.base_image import BASE_REPOSITORY, push_layout

    addr = token_registry.address
    push_layout(base_image_layout, f"{addr}/{BASE_REPOSITORY}:{BASE_TAG}", creds=token_registry.creds)
    image = Image.from_debian_base().with_source_folder(project).with_name("oci/token")
    options = {
        "image.base_registry": addr,
        "image.registry_username": token_registry.username,
        "image.registry_password": token_registry.password,
    }
    ref = build(project, addr, image, options=options)
    assert pull_back(ref.uri, tmp_path / "pulled", creds=token_registry.creds).manifest_digest == ref.digest
    # the base layer was mounted from library/python, with a token for both repositories
    assert any(
        sorted(r["scope"]) == [f"repository:{BASE_REPOSITORY}:pull", "repository:oci/token:pull,push"]
        for r in token_registry.issuer.requests
    )

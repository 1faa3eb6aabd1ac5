"""The ``docker`` builder against a real dockerd (Debian docker.io, no bridge, no iptables)
and a real registry: built images are pulled back and checked by digest, and run (network
none) to import the task module; failures name the failing step with its log tail."""

from __future__ import annotations

import base64
import json

import pytest

from flyte_deploy import Image, ImageBuildError, TaskEnvironment
from flyte_deploy.api import open_session
from flyte_deploy.builders.registry import ImageNotFound
from tests.fixtures.base_image import BASE_REPOSITORY, BASE_TAG
from tests.imaging import pull_back, task_project

pytestmark = pytest.mark.servers

CHECK = (
    "import tasks, six, flyte_deploy, os; "
    "print(tasks.double(21), six.__name__, os.environ['GREETING'], open('/built-by-run').read().strip(), "
    "os.getcwd())"
)


@pytest.fixture
def docker_env(dockerd, monkeypatch, tmp_path):
    """DOCKER_HOST pointing at the test daemon and an empty docker config."""
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    return dockerd


def build(root, registry_address, image, *, options=None, builder="docker"):
    opts = {"image.builder": builder, "image.registry": registry_address, **(options or {})}
    with open_session(root, options=opts) as session:
        env = TaskEnvironment(name="prep", image=image)
        return session.hook.build_image(session=session, environment=env, image=image.resolved(registry_address))


def run(dockerd, uri, code):
    client = dockerd.client()
    try:
        client.images.pull(uri)
        return client.containers.run(uri, ["python", "-c", code], network_mode="none", remove=True).decode()
    finally:
        client.close()


def test_generated_dockerfile_build_push_and_run(docker_env, base_registry, tmp_path, capsys):
    project = task_project(tmp_path / "project")
    addr = base_registry.address
    image = (
        Image.from_debian_base()
        .with_pip_packages("six")
        .with_env_vars({"GREETING": "hello"})
        .with_commands("echo from-run > /built-by-run")
        .with_source_folder(project)
        .with_name("docker/full")
    )
    ref = build(project, addr, image, options={"image.base_registry": addr})
    assert ref.built and ref.builder == "docker" and ref.uri == f"{addr}/docker/full:{image.tag}"
    assert f"image prep: built {ref.uri} (buildkit builder), pushing" in capsys.readouterr().err
    assert pull_back(ref.uri, tmp_path / "pulled").manifest_digest == ref.digest
    assert run(docker_env, ref.uri, CHECK).split() == ["42", "six", "hello", "from-run", "/root"]

    again = build(project, addr, image, options={"image.base_registry": addr})
    assert (again.built, again.note, again.digest) == (False, "already in registry", ref.digest)


def test_users_dockerfile(docker_env, base_registry, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.py").write_text("GREETING = 'custom'\n")
    (context / "Dockerfile").write_text(
        f"FROM {base_registry.address}/{BASE_REPOSITORY}:{BASE_TAG}\n"
        "WORKDIR /app\nCOPY hello.py /app/\nRUN echo built > /built-by-run\n"
    )
    image = Image.from_dockerfile(context / "Dockerfile", name="docker/custom")
    ref = build(context, base_registry.address, image)
    assert ref.built and pull_back(ref.uri, tmp_path / "pulled").manifest_digest == ref.digest
    code = "import hello, os; print(hello.GREETING, open('/built-by-run').read().strip(), os.getcwd())"
    assert run(docker_env, ref.uri, code).split() == ["custom", "built", "/app"]


@pytest.mark.parametrize(
    "buildkit, cause",
    [
        (True, "exit code: 3"),  # BuildKit: "executor failed running [/bin/sh -c ...]: exit code: 3"
        (False, "The command '/bin/sh -c echo about-to-fail && exit 3' returned a non-zero code: 3"),
    ],
    ids=["buildkit", "classic"],
)
def test_failing_step_is_named_with_its_log_tail(docker_env, base_registry, tmp_path, buildkit, cause):
    image = (
        Image.from_base(f"{base_registry.address}/{BASE_REPOSITORY}:{BASE_TAG}")
        .with_commands("echo about-to-fail && exit 3")
        .with_name("docker/failing")
    )
    with pytest.raises(ImageBuildError) as info:
        build(tmp_path, base_registry.address, image, options={"image.docker_buildkit": buildkit})
    first, *tail = str(info.value).splitlines()
    assert first.startswith("image for environment 'prep': step 'RUN echo about-to-fail && exit 3' failed: ")
    assert first.endswith(cause)
    assert any("about-to-fail" in line for line in tail) and all(line.startswith("  | ") for line in tail)
    assert "docker/failing" not in base_registry.catalog()


def test_missing_base_image(docker_env, registry, tmp_path):
    image = Image.from_base(f"{registry.address}/missing/base:1").with_commands("true").with_name("docker/nobase")
    with pytest.raises(ImageNotFound) as info:
        build(tmp_path, registry.address, image)
    assert str(info.value) == f"base image {registry.address}/missing/base:1 not found in registry {registry.address}"
    assert "docker/nobase" not in registry.catalog()


def test_push_with_credentials_from_the_docker_config(docker_env, base_registry, auth_registry, tmp_path):
    token = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "config.json").write_text(json.dumps({"auths": {auth_registry.address: {"auth": token}}}))
    image = (
        Image.from_base(f"{base_registry.address}/{BASE_REPOSITORY}:{BASE_TAG}")
        .with_env_vars({"WHO": "authed"})
        .with_name("docker/authed")
    )
    ref = build(tmp_path, auth_registry.address, image)
    assert ref.built
    assert pull_back(ref.uri, tmp_path / "pulled", creds=auth_registry.creds).manifest_digest == ref.digest


def test_push_refused_without_credentials(docker_env, base_registry, auth_registry, tmp_path):
    image = (
        Image.from_base(f"{base_registry.address}/{BASE_REPOSITORY}:{BASE_TAG}")
        .with_env_vars({"WHO": "nobody"})
        .with_name("docker/refused")
    )
    with pytest.raises(ImageBuildError, match="requires credentials and none are configured"):
        build(tmp_path, auth_registry.address, image)


def test_image_from_the_oci_builder_runs_under_docker(docker_env, base_registry, tmp_path):
    project = task_project(tmp_path / "project")
    addr = base_registry.address
    image = (
        Image.from_debian_base()
        .with_pip_packages("six")
        .with_env_vars({"GREETING": "oci"})
        .with_source_folder(project)
        .with_name("docker/from-oci")
    )
    ref = build(project, addr, image, options={"image.base_registry": addr}, builder="oci")
    code = CHECK.replace(", open('/built-by-run').read().strip()", "")
    assert run(docker_env, ref.uri, code).split() == ["42", "six", "oci", "/root"]


@pytest.mark.parametrize("builder", ["docker", "oci"])
def test_a_deployed_task_runs_in_its_image(docker_env, base_registry, tmp_path, builder):
    """Deploy with each built-in builder, then run the stored task template's own command and
    args inside the pushed image (network none): the runtime in the image fetches the bundle,
    loads the task and writes its outputs."""
    import os
    import subprocess
    import sys

    from flyteidl2.task import common_pb2

    from flyte_deploy.builtin.local_backend import load_task_spec
    from flyte_deploy.builtin.serialize import INPUT_PLACEHOLDER, OUTPUT_PLACEHOLDER
    from flyte_deploy.interface import literal_to_json, named_literals
    from flyte_deploy.local_run import build_inputs
    from flyte_deploy.runtime import INPUTS_FILE, OUTPUTS_FILE

    project = task_project(tmp_path / "project")
    addr = base_registry.address
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLYTE_DEPLOY_IMAGE_BUILDER": builder,
        "FLYTE_DEPLOY_IMAGE_REGISTRY": f"{addr}/run-{builder}",
        "FLYTE_DEPLOY_IMAGE_BASE_REGISTRY": addr,
    }
    deployed = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", "deploy", "tasks.py", "prep_env", "-q"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deployed.returncode == 0, deployed.stderr
    spec, _ = load_task_spec((project / ".flyte-deploy").as_uri(), "prep.double")
    container = spec.task_template.container
    assert container.image.startswith(f"{addr}/run-{builder}/flyte-deploy:")

    io_dir = tmp_path / "io"
    (io_dir / "outputs").mkdir(parents=True)
    (io_dir / INPUTS_FILE).write_bytes(
        common_pb2.Inputs(literals=named_literals(build_inputs(spec, {"x": "21"}))).SerializeToString()
    )
    args = [
        a.replace(INPUT_PLACEHOLDER, f"file:///io/{INPUTS_FILE}").replace(OUTPUT_PLACEHOLDER, "file:///io/outputs")
        for a in container.args
    ]
    client = docker_env.client()
    try:
        client.images.pull(container.image)
        client.containers.run(
            container.image,
            list(container.command) + args,
            network_mode="none",
            remove=True,
            volumes={
                str(io_dir): {"bind": "/io", "mode": "rw"},
                str(project / ".flyte-deploy"): {"bind": str(project / ".flyte-deploy"), "mode": "ro"},
            },
        )
    finally:
        client.close()
    outputs = common_pb2.Outputs()
    outputs.ParseFromString((io_dir / "outputs" / OUTPUTS_FILE).read_bytes())
    assert {n.name: literal_to_json(n.value) for n in outputs.literals} == {"o0": 42}

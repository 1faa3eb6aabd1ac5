"""The TaskTemplate around the interface: identifier, container (image, command, args),
resources and per-task overrides, env vars, secrets by reference, retries, timeout, cache,
interruptible, documentation; protobuf round trips; secret values never written anywhere."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flyteidl2.core import identifier_pb2, security_pb2, tasks_pb2
from flyteidl2.task import task_definition_pb2, task_service_pb2

import flyte_deploy as fd
from flyte_deploy.builtin.local_backend import load_task_spec
from flyte_deploy.builtin.serialize import RUNTIME_COMMAND, resources, security_context, serialize
from flyte_deploy.errors import SerializationError
from flyte_deploy.image import Image
from flyte_deploy.types import DeployPlan, DeployRequest

SRC = Path(fd.__file__).resolve().parent.parent
BUNDLE = "s3://bucket/bundles/0123abcd.tar.gz"

train_env = fd.TaskEnvironment(
    name="training",
    resources=fd.Resources(cpu=(1, 2), memory="4Gi", disk="20Gi"),
    env_vars={"LOG_LEVEL": "info", "REGION": "eu"},
    secrets=[fd.Secret(key="wandb-api-key", as_env_var="WANDB_API_KEY"), fd.Secret(key="token", group="hub")],
    description="Model training",
)


@train_env.task
def defaults_only(x: int) -> int:
    """Double a number.

    The long description explains more,
    over several lines."""
    return 2 * x


@train_env.task(
    resources=fd.Resources(memory=("8Gi", "16Gi"), gpu="A100:2"),
    env_vars={"REGION": "us"},
    secrets=["extra"],
    retries=3,
    timeout=datetime.timedelta(minutes=30),
    interruptible=True,
    cache="auto",
    docs="Overridden description.",
)
def overridden(x: int) -> int:
    return x


@train_env.task(cache=fd.Cache(behavior="override", version="v7", serialize=True))
def pinned_cache(x: int) -> int:
    return x


@train_env.task(cache=fd.Cache(behavior="override"))
def override_without_version(x: int) -> int:
    return x


@train_env.task(resources=fd.Resources(memory="lots"))
def bad_memory(x: int) -> int:
    return x


def plan_for(root: Path, bundle_uri: str | None = BUNDLE) -> DeployPlan:
    return DeployPlan(
        request=DeployRequest(mode="objects", objects=(train_env,)),
        root_dir=root,
        copy_style="loaded_modules",
        scratch_dir=root,
        environments=(train_env,),
        images={"training": Image.from_base("registry.local:5000/train:abc")},
        version="v42",
        bundle_uri=bundle_uri,
    )


def spec_of(task: fd.Task, root: Path, **kwargs) -> task_definition_pb2.TaskSpec:
    return serialize(task, train_env, plan_for(root, **kwargs), "proj", "dev").spec


def resource_map(entries) -> dict[str, str]:
    return {tasks_pb2.Resources.ResourceName.Name(e.name): e.value for e in entries}


def test_identifier_type_and_environment(tmp_path: Path) -> None:
    spec = spec_of(defaults_only, tmp_path)
    template = spec.task_template
    assert template.id == identifier_pb2.Identifier(
        resource_type=identifier_pb2.TASK, project="proj", domain="dev", name="training.defaults_only", version="v42"
    )
    assert template.type == "python"
    assert spec.short_name == "defaults_only"
    assert spec.environment.name == "training" and spec.environment.description == "Model training"


def test_container_names_image_bundle_module_and_function(tmp_path: Path) -> None:
    container = spec_of(defaults_only, tmp_path).task_template.container
    assert container.image == "registry.local:5000/train:abc"
    assert list(container.command) == list(RUNTIME_COMMAND)
    assert list(container.args) == [
        "--inputs",
        "{{.input}}",
        "--outputs-path",
        "{{.outputPrefix}}",
        "--version",
        "v42",
        "--tgz",
        BUNDLE,
        "--dest",
        ".",
        "--module",
        __name__,
        "--function",
        "defaults_only",
    ]
    assert spec_of(defaults_only, tmp_path).task_template.metadata.code_bundle_uri == BUNDLE
    # copy style none: no bundle to fetch, the module comes from the image
    assert "--tgz" not in spec_of(defaults_only, tmp_path, bundle_uri=None).task_template.container.args


def test_module_is_the_path_under_the_root_dir() -> None:
    root = Path(__file__).resolve().parent.parent
    args = list(spec_of(defaults_only, root).task_template.container.args)
    assert args[args.index("--module") + 1] == "tests.test_serialize_template"


def test_environment_resources_env_and_secrets(tmp_path: Path) -> None:
    template = spec_of(defaults_only, tmp_path).task_template
    resources = template.container.resources
    assert resource_map(resources.requests) == {"CPU": "1", "MEMORY": "4Gi", "EPHEMERAL_STORAGE": "20Gi"}
    assert resource_map(resources.limits) == {"CPU": "2"}
    assert {kv.key: kv.value for kv in template.container.env} == {"LOG_LEVEL": "info", "REGION": "eu"}
    assert list(template.security_context.secrets) == [
        security_pb2.Secret(
            key="wandb-api-key", env_var="WANDB_API_KEY", mount_requirement=security_pb2.Secret.ENV_VAR
        ),
        security_pb2.Secret(
            group="hub", key="token", env_var="HUB_TOKEN", mount_requirement=security_pb2.Secret.ENV_VAR
        ),
    ]
    assert not template.HasField("extended_resources")


def test_task_overrides_merge_over_the_environment(tmp_path: Path) -> None:
    template = spec_of(overridden, tmp_path).task_template
    resources = template.container.resources
    assert resource_map(resources.requests) == {"CPU": "1", "MEMORY": "8Gi", "GPU": "2", "EPHEMERAL_STORAGE": "20Gi"}
    assert resource_map(resources.limits) == {"CPU": "2", "MEMORY": "16Gi"}
    assert template.extended_resources.gpu_accelerator.device == "a100"
    assert {kv.key: kv.value for kv in template.container.env} == {"LOG_LEVEL": "info", "REGION": "us"}
    assert [s.key for s in template.security_context.secrets] == ["wandb-api-key", "token", "extra"]
    assert template.security_context.secrets[2].env_var == "EXTRA"


def test_retries_timeout_interruptible_and_cache(tmp_path: Path) -> None:
    meta = spec_of(overridden, tmp_path).task_template.metadata
    assert meta.retries.retries == 3
    assert meta.timeout.ToTimedelta() == datetime.timedelta(minutes=30)
    assert meta.interruptible is True
    assert meta.discoverable is True and len(meta.discovery_version) == 64
    plain = spec_of(defaults_only, tmp_path).task_template.metadata
    assert plain.retries.retries == 0 and not plain.HasField("timeout") and plain.interruptible is False
    assert plain.discoverable is False and plain.discovery_version == ""
    pinned = spec_of(pinned_cache, tmp_path).task_template.metadata
    assert pinned.discovery_version == "v7" and pinned.cache_serializable is True
    with pytest.raises(SerializationError, match="task training.override_without_version: .*needs a version"):
        spec_of(override_without_version, tmp_path)


@pytest.mark.parametrize(
    "gpu,count,device",
    [(2, "2", None), ("A100:2", "2", "a100"), ("L4", "1", "l4"), ("nvidia-tesla-t4:1", "1", "nvidia-tesla-t4")],
)
def test_gpu_count_and_accelerator(gpu, count, device) -> None:
    proto, extended = resources(defaults_only, fd.Resources(gpu=gpu))
    assert resource_map(proto.requests) == {"GPU": count} and not proto.limits
    assert (extended.gpu_accelerator.device if extended else None) == device


def test_user_named_secret_variable_is_kept_as_written(tmp_path: Path) -> None:
    env = fd.TaskEnvironment(name="lower", secrets=[fd.Secret(key="k", as_env_var="my_token")])
    assert security_context(fd.Task(defaults_only.func, env)).secrets[0].env_var == "my_token"
    bad = fd.TaskEnvironment(name="bad", secrets=[fd.Secret(key="k", as_env_var="MY-TOKEN")])
    with pytest.raises(SerializationError, match="secret 'k' maps to environment variable 'MY-TOKEN'"):
        security_context(fd.Task(defaults_only.func, bad))


def test_bad_resource_quantity_names_the_task(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match=r"task training.bad_memory: resource memory='lots'"):
        spec_of(bad_memory, tmp_path)


def test_documentation_from_docstring_or_docs(tmp_path: Path) -> None:
    docs = spec_of(defaults_only, tmp_path).documentation
    assert docs.short_description == "Double a number."
    assert docs.long_description.startswith("Double a number.\n\nThe long description")
    assert spec_of(overridden, tmp_path).documentation.short_description == "Overridden description."


def test_protobuf_round_trip(tmp_path: Path) -> None:
    """The spec survives serialization to bytes and back, alone and inside the request the
    Flyte control plane accepts (``DeployTaskRequest``)."""
    spec = spec_of(overridden, tmp_path)
    wire = spec.SerializeToString(deterministic=True)
    parsed = task_definition_pb2.TaskSpec()
    parsed.ParseFromString(wire)
    assert parsed == spec
    assert parsed.SerializeToString(deterministic=True) == wire
    request = task_service_pb2.DeployTaskRequest(
        task_id=task_definition_pb2.TaskIdentifier(
            project="proj", domain="dev", name=spec.task_template.id.name, version="v42"
        ),
        spec=spec,
    )
    back = task_service_pb2.DeployTaskRequest.FromString(request.SerializeToString())
    assert back.spec == spec and back.spec.task_template.container.args == spec.task_template.container.args


SECRET_VALUE = "s3cr3t-value-that-must-never-appear-0451"


def test_secret_values_never_leak(tmp_path: Path) -> None:
    """With the secret's value in the deploying process's environment, the deploy writes it
    nowhere: not in the stored specs, the bundle, the environment record or the output."""
    (tmp_path / "flow.py").write_text(
        textwrap.dedent("""
        import flyte_deploy as fd
        env = fd.TaskEnvironment(name="secretive", secrets=[fd.Secret(key="api-key", as_env_var="API_KEY")])

        @env.task
        def use(x: int) -> int:
            import os
            return x + len(os.environ.get("API_KEY", ""))
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "API_KEY": SECRET_VALUE}
    proc = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", "deploy", "flow.py", "env", "--output", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert SECRET_VALUE not in proc.stdout + proc.stderr
    store = tmp_path / ".flyte-deploy"
    written = [p for p in store.rglob("*") if p.is_file()]
    assert any(p.name == "deployments.db" for p in written) and any(p.name.endswith(".tar.gz") for p in written)
    for path in written:
        assert SECRET_VALUE.encode() not in path.read_bytes(), path
    spec, _ = load_task_spec(store.as_uri(), "secretive.use")
    secret = spec.task_template.security_context.secrets[0]
    assert (secret.key, secret.env_var) == ("api-key", "API_KEY")
    assert json.loads(proc.stdout)["environments"][0]["name"] == "secretive"

"""Built-in ``serialize_task``: one task into a flyteidl2 ``TaskSpec`` (a ``TaskTemplate``
plus default inputs, short name, environment and documentation).

The container runs ``python -m flyte_deploy.runtime`` with the bundle URI, module and
function, so the template says exactly how a runtime loads the task from the bundle; the
``{{.input}}`` and ``{{.outputPrefix}}`` placeholders are filled by whoever runs it (the
control plane, or ``flyte-deploy run``). See docs/serialization.md for every field.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from flyteidl2.core import identifier_pb2, security_pb2, tasks_pb2
from flyteidl2.task import environment_pb2, task_definition_pb2
from google.protobuf import duration_pb2

from ..errors import SerializationError
from ..hookspecs import hookimpl
from ..importing import module_name_for
from ..interface import InterfaceError, type_name, typed_interface
from ..sdk import Resources, Task, TaskEnvironment
from ..session import DeploySession
from ..types import DeployPlan, SerializedTask

TASK_TYPE = "python"
RUNTIME_COMMAND = ("python", "-m", "flyte_deploy.runtime")
INPUT_PLACEHOLDER = "{{.input}}"
OUTPUT_PLACEHOLDER = "{{.outputPrefix}}"
SHORT_DESCRIPTION_MAX = 255
LONG_DESCRIPTION_MAX = 2048

RESOURCE_NAMES = {
    "cpu": tasks_pb2.Resources.CPU,
    "memory": tasks_pb2.Resources.MEMORY,
    "gpu": tasks_pb2.Resources.GPU,
    "disk": tasks_pb2.Resources.EPHEMERAL_STORAGE,
}
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _runtime_version() -> str:
    try:
        return package_version("flyte-deploy")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def task_module(task: Task, root_dir: Path) -> str:
    """The module the runtime imports: the task file's path relative to the root dir (that is
    where the bundle puts it), else the function's ``__module__``. The task must be a
    module-level attribute, or no runtime could find it."""
    source = Path(task.source_file).resolve()
    module = task.module
    if source.is_file() and source.is_relative_to(root_dir):
        module, _ = module_name_for(source, root_dir)
    loaded = sys.modules.get(task.module)
    if loaded is not None and getattr(loaded, task.function_name, None) is not task:
        raise SerializationError(
            f"task {task.name} ({task.source_file}): {task.function_name} is not a"
            f" module-level name of {module}, so a runtime cannot load it"
        )
    return module


def container_args(task: Task, plan: DeployPlan) -> list[str]:
    """Arguments of the runtime entrypoint (see ``flyte_deploy.runtime``)."""
    args = ["--inputs", INPUT_PLACEHOLDER, "--outputs-path", OUTPUT_PLACEHOLDER, "--version", str(plan.version)]
    if plan.bundle_uri:
        args += ["--tgz", plan.bundle_uri, "--dest", "."]
    return args + ["--module", task_module(task, plan.root_dir), "--function", task.function_name]


def _quantity(task: Task, name: str, value: Any) -> str:
    text = str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not _QUANTITY.match(text):
        raise SerializationError(
            f'task {task.name}: resource {name}={value!r} is not a quantity (e.g. 2, 0.5, "500m", "4Gi")'
        )
    return text


def resources(
    task: Task, resources: Resources
) -> tuple[tasks_pb2.Resources | None, tasks_pb2.ExtendedResources | None]:
    """Requests and limits: a single value is a request, a ``(request, limit)`` pair both
    (as the Flyte SDK does); a GPU ``"A100:2"`` is 2 GPUs of accelerator device ``a100``,
    ``"A100"`` one of them."""
    requests, limits, device = [], [], None
    for name, enum_value in RESOURCE_NAMES.items():
        value = getattr(resources, name)
        if value is None:
            continue
        request, limit = value if isinstance(value, tuple) and len(value) == 2 else (value, None)
        if isinstance(value, tuple) and len(value) != 2:
            raise SerializationError(
                f"task {task.name}: resource {name} must be a value or a (request, limit) pair, got {value!r}"
            )
        if name == "gpu" and isinstance(request, str) and not _QUANTITY.match(request):
            device, _, count = request.partition(":")
            device, request = device.strip().lower().replace(" ", "-").replace("_", "-"), count or "1"
        if request is not None:
            requests.append(tasks_pb2.Resources.ResourceEntry(name=enum_value, value=_quantity(task, name, request)))
        if limit is not None:
            limits.append(tasks_pb2.Resources.ResourceEntry(name=enum_value, value=_quantity(task, name, limit)))
    proto = tasks_pb2.Resources(requests=requests, limits=limits) if requests or limits else None
    extended = tasks_pb2.ExtendedResources(gpu_accelerator=tasks_pb2.GPUAccelerator(device=device)) if device else None
    return proto, extended


def security_context(task: Task) -> security_pb2.SecurityContext | None:
    """Secrets by reference (group, key, environment variable), never a value. Without
    ``as_env_var`` the variable is ``GROUP_KEY`` upper-cased, as in the Flyte SDK."""
    secrets = []
    for secret in task.effective_secrets:
        env_var = (
            secret.as_env_var
            or (f"{secret.group}_{secret.key}" if secret.group else secret.key).replace("-", "_").upper()
        )
        if not _ENV_VAR.match(env_var):
            raise SerializationError(
                f"task {task.name}: secret {secret.key!r} maps to environment variable"
                f" {env_var!r}, which is not a valid name; set as_env_var"
            )
        secrets.append(
            security_pb2.Secret(
                group=secret.group or "", key=secret.key, env_var=env_var, mount_requirement=security_pb2.Secret.ENV_VAR
            )
        )
    return security_pb2.SecurityContext(secrets=secrets) if secrets else None


def cache_version(task: Task) -> str:
    """The discovery version: the user's ``Cache(version=...)``, else a hash of the function's
    source, so editing the function invalidates its cache."""
    assert task.cache is not None
    if task.cache.version:
        return task.cache.version
    if task.cache.behavior == "override":
        raise SerializationError(f"task {task.name}: Cache(behavior='override') needs a version")
    try:
        source = inspect.getsource(task.func)
    except OSError:
        source = task.func.__code__.co_code.hex()
    return hashlib.sha256(source.encode()).hexdigest()


def metadata(task: Task, plan: DeployPlan) -> tasks_pb2.TaskMetadata:
    meta = tasks_pb2.TaskMetadata(
        runtime=tasks_pb2.RuntimeMetadata(
            type=tasks_pb2.RuntimeMetadata.OTHER, version=_runtime_version(), flavor="python"
        ),
        retries={"retries": task.retries},
        interruptible=bool(task.interruptible),
        code_bundle_uri=plan.bundle_uri or "",
    )
    if task.timeout is not None:
        meta.timeout.CopyFrom(
            duration_pb2.Duration(seconds=int(task.timeout.total_seconds()), nanos=task.timeout.microseconds * 1000)
        )
    if task.cache is not None and task.cache.behavior != "disable":
        meta.discoverable = True
        meta.discovery_version = cache_version(task)
        meta.cache_serializable = task.cache.serialize
    return meta


def documentation(task: Task) -> task_definition_pb2.DocumentationEntity:
    """Short description: the docstring's first line; long: the whole docstring."""
    doc = task.docs or inspect.getdoc(task.func) or ""
    short = doc.strip().split("\n", 1)[0].strip()
    return task_definition_pb2.DocumentationEntity(
        short_description=short[:SHORT_DESCRIPTION_MAX], long_description=doc.strip()[:LONG_DESCRIPTION_MAX]
    )


def serialize(task: Task, environment: TaskEnvironment, plan: DeployPlan, project: str, domain: str) -> SerializedTask:
    """The ``SerializedTask`` of ``task``; ``SerializationError`` naming the task, the parameter
    and the type when the interface has no Flyte form."""
    try:
        interface, default_inputs = typed_interface(task.func)
    except InterfaceError as exc:
        file, line = task.source_file, task.func.__code__.co_firstlineno
        what = "return type" if exc.parameter == "return" else f"parameter {exc.parameter!r}"
        shown = f" ({type_name(exc.type)})" if exc.type not in (None, inspect.Parameter.empty) else ""
        raise SerializationError(
            f"{file}:{line}: task {task.name}: {what}{shown} cannot be serialized: {exc}"
        ) from None
    proto_resources, extended = resources(task, task.effective_resources)
    container = tasks_pb2.Container(
        image=plan.images[environment.name].uri,
        command=list(RUNTIME_COMMAND),
        args=container_args(task, plan),
        env=[{"key": k, "value": v} for k, v in task.effective_env_vars.items()],
    )
    if proto_resources is not None:
        container.resources.CopyFrom(proto_resources)
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            resource_type=identifier_pb2.TASK, project=project, domain=domain, name=task.name, version=str(plan.version)
        ),
        type=TASK_TYPE,
        metadata=metadata(task, plan),
        interface=interface,
        container=container,
    )
    security = security_context(task)
    if security is not None:
        template.security_context.CopyFrom(security)
    if extended is not None:
        template.extended_resources.CopyFrom(extended)
    spec = task_definition_pb2.TaskSpec(
        task_template=template,
        default_inputs=default_inputs,
        short_name=task.short_name,
        environment=environment_pb2.Environment(name=environment.name, description=environment.description or ""),
        documentation=documentation(task),
    )
    return SerializedTask(environment=environment.name, name=task.name, spec=spec)


@hookimpl(trylast=True)
def serialize_task(
    session: DeploySession, environment: TaskEnvironment, task: Task, plan: DeployPlan
) -> SerializedTask | None:
    """Our own SDK's tasks only; an adapter serializes its SDK's."""
    if not isinstance(task, Task) or not isinstance(environment, TaskEnvironment):
        return None
    return serialize(task, environment, plan, str(session.config.get("project")), str(session.config.get("domain")))

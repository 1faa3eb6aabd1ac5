"""A flyte task's ``TaskSpec``, from the SDK's own public serializer.

``flyte.extras.serialize(task, SerializationContext(...))`` is given our version, project,
domain and org, our bundle (``CodeBundle(tgz=<bundle URI>, destination=".")``), the image
URIs our image phase resolved for every flyte environment of the plan (the SDK's image
cache, carried to the runtime by ``--image-cache``) and the root dir (the resolver's module
names are relative to it). What ``flyte deploy`` adds around that serializer (the
``_F_SYS_PATH`` env var, the environment's description, docstring descriptions, triggers)
comes from ``sdk_internals``; the source link is ours (``attach_source_link``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from ...errors import SerializationError
from ...types import DeployPlan, SerializedTask
from . import sdk_internals

if TYPE_CHECKING:
    from .views import FlyteEnvironment, FlyteTask

#: the version identity() serializes with; the real one is derived from it
IDENTITY_VERSION = "identity"

_contexts: dict[tuple[int, str, str | None], Any] = {}


def _is_uri(image: Any) -> bool:
    """A string image other than ``"auto"``: the SDK leaves those out of its image cache."""
    return isinstance(image, str) and image != "auto"


def serialization_context(plan: DeployPlan, project: str, domain: str, org: str) -> Any:
    """The SDK's ``SerializationContext`` for every flyte task of ``plan`` (made once per plan)."""
    key = (id(plan), str(plan.version), plan.bundle_uri)
    context = _contexts.get(key)
    if context is None:
        from flyte.models import CodeBundle, SerializationContext

        lookup = {env.name: plan.images[env.name].uri for env in plan.environments
                  if getattr(env, "sdk", None) == "flyte" and not _is_uri(env.native.image)}
        bundle = (CodeBundle(tgz=plan.bundle_uri, destination=".", computed_version=str(plan.version))
                  if plan.bundle_uri else None)
        context = SerializationContext(version=str(plan.version), project=project, domain=domain, org=org or None,
                                       code_bundle=bundle, image_cache=sdk_internals.image_cache(lookup),
                                       root_dir=plan.root_dir)
        _contexts.clear()
        _contexts[key] = context
    return context


def _spec(task: FlyteTask, context: Any, root_dir: Path) -> Any:
    import flyte.extras

    try:
        native = sdk_internals.with_local_sys_paths(task.native, root_dir)
        spec = flyte.extras.serialize(native, context)
        sdk_internals.add_deploy_documentation(spec, task.native)
    except SerializationError:
        raise
    except Exception as exc:  # noqa: BLE001 - the SDK raises ValueError, TypeError, its own errors...
        raise SerializationError(f"{task.source_file}:{task.line}: task {task.name}: the flyte SDK cannot"
                                 f" serialize it: {type(exc).__name__}: {exc}") from None
    return spec


def serialize(task: FlyteTask, plan: DeployPlan, project: str, domain: str, org: str) -> SerializedTask:
    """The ``SerializedTask`` of the flyte task ``task``, triggers included."""
    spec = _spec(task, serialization_context(plan, project, domain, org), plan.root_dir)
    return SerializedTask(environment=task.environment.name, name=task.name, spec=spec,
                          triggers=_triggers(task, spec))


def _triggers(task: FlyteTask, spec: Any) -> tuple[Any, ...]:
    try:
        return tuple(sdk_internals.task_triggers(task.native, spec))
    except Exception as exc:  # noqa: BLE001 - as above: any SDK failure is the task's
        raise SerializationError(f"{task.source_file}:{task.line}: task {task.name}: its triggers cannot be"
                                 f" serialized: {type(exc).__name__}: {exc}") from None


def identity(environment: FlyteEnvironment, root_dir: Path) -> dict[str, Any]:
    """What a deployed version of ``environment`` depends on besides the bundle and the image
    URIs: every task's spec as the SDK serializes it, with a placeholder version and no
    bundle (both of which the version decides) and relative module paths only, so the same
    checkout anywhere gives the same identity."""
    from flyte.models import SerializationContext

    context = SerializationContext(version=IDENTITY_VERSION, root_dir=root_dir)
    tasks = {}
    for name, task in sorted(environment.tasks.items()):
        spec = _spec(task, context, root_dir)
        tasks[name] = json_format.MessageToDict(spec)
        tasks[name]["triggers"] = [json_format.MessageToDict(t) for t in _triggers(task, spec)]
    return {"sdk": "flyte", "flyte": sdk_internals.sdk_version(), "name": environment.name,
            "depends_on": sorted(d.name for d in environment.depends_on), "tasks": tasks}


__all__ = ["identity", "serialization_context", "serialize"]

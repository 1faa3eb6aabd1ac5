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

import dataclasses
import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import SerializationError
from ...session import DeploySession, StashKey
from ...types import DeployPlan, SerializedTask
from . import sdk_internals
from .views import FlyteEnvironment

if TYPE_CHECKING:
    from .views import FlyteTask

#: the SDK's SerializationContext of the session's plan, made at its first flyte task or app
context_key: StashKey[tuple[DeployPlan, Any]] = StashKey()


def _is_uri(image: Any) -> bool:
    """A string image other than ``"auto"``: the SDK leaves those out of its image cache."""
    return isinstance(image, str) and image != "auto"


def serialization_context(session: DeploySession, plan: DeployPlan, project: str, domain: str, org: str) -> Any:
    """The SDK's ``SerializationContext`` for every flyte task and app of ``plan``: made once
    per plan (every task and app is serialized after the version, bundle URI and images are
    fixed) and kept in the session, never across deploys."""
    made = session.stash.get(context_key)
    context = made[1] if made is not None and made[0] is plan else None
    if context is None:
        from flyte.models import CodeBundle, SerializationContext

        lookup = {
            env.name: plan.images[env.name].uri
            for env in plan.environments
            if isinstance(env, FlyteEnvironment) and not _is_uri(env.native.image)
        }
        bundle = (
            CodeBundle(tgz=plan.bundle_uri, destination=".", computed_version=str(plan.version))
            if plan.bundle_uri
            else None
        )
        context = SerializationContext(
            version=str(plan.version),
            project=project,
            domain=domain,
            org=org or None,
            code_bundle=bundle,
            image_cache=sdk_internals.image_cache(lookup),
            root_dir=plan.root_dir,
        )
        session.stash[context_key] = (plan, context)
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
        raise SerializationError(
            f"{task.source_file}:{task.line}: task {task.name}: the flyte SDK cannot"
            f" serialize it: {type(exc).__name__}: {exc}"
        ) from None
    return spec


def serialize(session: DeploySession, task: FlyteTask, plan: DeployPlan) -> SerializedTask:
    """The ``SerializedTask`` of the flyte task ``task``, triggers included."""
    config = session.config
    project, domain, org = str(config.get("project")), str(config.get("domain")), str(config.get("org") or "")
    spec = _spec(task, serialization_context(session, plan, project, domain, org), plan.root_dir)
    return SerializedTask(environment=task.environment.name, name=task.name, spec=spec, triggers=_triggers(task, spec))


def _triggers(task: FlyteTask, spec: Any) -> tuple[Any, ...]:
    try:
        return tuple(sdk_internals.task_triggers(task.native, spec))
    except Exception as exc:  # noqa: BLE001 - as above: any SDK failure is the task's
        raise SerializationError(
            f"{task.source_file}:{task.line}: task {task.name}: its triggers cannot be"
            f" serialized: {type(exc).__name__}: {exc}"
        ) from None


#: fields of the SDK's environment and task objects that the version does not hash directly:
#: the image (its URI is hashed), links back to other objects (their names are), the
#: function and its interface (their source is)
_NOT_HASHED = frozenset(
    {
        "image",
        "depends_on",
        "parent_env",
        "func",
        "interface",
        "_tasks",
        "_declaring_file",
        "ref",
        "_call_as_synchronous",
        "_caller_frame",
    }
)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def settings(obj: Any, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """The dataclass fields of ``obj`` (an SDK environment, app or task) as their reprs,
    without memory addresses, except those not hashed directly and ``exclude``."""
    return {
        f.name: _ADDRESS.sub("", repr(getattr(obj, f.name, None)))
        for f in dataclasses.fields(obj)
        if f.name not in _NOT_HASHED and f.name not in exclude
    }


def identity(environment: FlyteEnvironment, root_dir: Path) -> dict[str, Any]:
    """What a deployed version of ``environment`` depends on besides the bundle and the image
    URIs: the settings of the environment and of every task (the SDK's own objects' fields),
    each task's module path relative to the root dir, its function's source (decorators
    included) and its interface, and the import roots the runtime re-adds. No absolute path
    and no address enters, so the same checkout anywhere gives the same identity;
    serializing every task twice would double
    the cost of a deploy."""
    tasks = {}
    for name, task in sorted(environment.tasks.items()):
        try:
            source = inspect.getsource(task.func)
        except OSError:
            source = task.func.__code__.co_code.hex()
        tasks[name] = {
            "settings": settings(task.native),
            "source": source,
            "module": _relative(task, root_dir),
            "interface": _ADDRESS.sub("", repr(task.native.interface)),
        }
    return {
        "sdk": "flyte",
        "flyte": sdk_internals.sdk_version(),
        "settings": settings(environment.native),
        "depends_on": sorted(d.name for d in environment.depends_on),
        "tasks": tasks,
        "sys_paths": sdk_internals.local_sys_paths(root_dir),
    }


def _relative(task: FlyteTask, root_dir: Path) -> str:
    try:
        return Path(task.source_file).resolve().relative_to(root_dir.resolve()).as_posix()
    except ValueError:
        return task.module


__all__ = ["identity", "serialization_context", "serialize", "settings"]

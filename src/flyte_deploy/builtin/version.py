"""Built-in ``compute_version``: a 32-hex-digit sha256 prefix over the bundle's content
digest (of the uncompressed tar stream, so the zlib build plays no part), the image URI of
every planned environment, every environment's settings and tasks, and the flyte-deploy
release (whose serialization the version names). Any change in code, image or settings
gives a new version; no change gives the same one, on any machine and in any discovery
order. 32 lowercase hex digits always follow the version rule (flyte_deploy.versions),
which the lifecycle checks for whatever ``compute_version`` returns.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from ..environments import Environment
from ..hookspecs import hookimpl
from ..sdk import Task, TaskEnvironment
from ..session import DeploySession
from ..types import DeployPlan

#: bumped when what goes into the hash changes meaning
SCHEME = "flyte-deploy-version/2"  # 2: the bundle is named by its content digest


def _tool_release() -> str:
    try:
        return metadata.version("flyte-deploy")
    except metadata.PackageNotFoundError:
        return "unknown"


def _signature_text(func: Any) -> str:
    """``str(inspect.signature(func))``, also when a default holds an int past Python's
    4,300-digit ``str`` limit (lifted for this one call), so the version never fails on it
    and the serializer gets to name the parameter."""
    signature = inspect.signature(func)
    try:
        return str(signature)
    except ValueError:
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            return str(signature)
        finally:
            sys.set_int_max_str_digits(limit)


def _task_identity(task: Task) -> dict[str, Any]:
    return {
        "name": task.name,
        "short_name": task.short_name,
        "module": task.module,
        "function": task.function_name,
        "signature": _signature_text(task.func),
        "async": task.is_async,
        "retries": task.retries,
        "timeout": task.timeout.total_seconds() if task.timeout else None,
        "cache": repr(task.cache),
        "interruptible": task.interruptible,
        "resources": repr(task.effective_resources),
        "env": task.effective_env_vars,
        "secrets": [repr(s) for s in task.effective_secrets],
        "docs": task.docs or task.func.__doc__,
    }


def environment_identity(env: Environment, root_dir: Path) -> Mapping[str, Any]:
    """The settings of ``env`` that a deployed version depends on, as JSON-able data: what
    an adapter's environment says (its ``identity(root_dir)``), else our own SDK's settings."""
    identity = getattr(env, "identity", None)
    if identity is not None:
        return identity(root_dir)
    assert isinstance(env, TaskEnvironment)
    return {
        "name": env.name,
        "description": env.description,
        "interruptible": env.interruptible,
        "cache": repr(env.cache),
        "resources": repr(env.resources),
        "env": env.env_vars,
        "secrets": [repr(s) for s in env.secrets],
        "depends_on": sorted(d.name for d in env.depends_on),
        "tasks": [_task_identity(t) for _, t in sorted(env.tasks.items())],
    }


def version_inputs(plan: DeployPlan) -> dict[str, Any]:
    """Everything the derived version hashes, as JSON-able data."""
    return {
        "scheme": SCHEME,
        "flyte_deploy": _tool_release(),
        "bundle": plan.bundle.digest if plan.bundle else None,
        "images": {name: plan.images[name].uri for name in sorted(plan.images)},
        "environments": [
            environment_identity(e, plan.root_dir) for e in sorted(plan.environments, key=lambda e: e.name)
        ],
    }


def derive_version(plan: DeployPlan) -> str:
    data = json.dumps(version_inputs(plan), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:32]


@hookimpl(trylast=True)
def compute_version(session: DeploySession, plan: DeployPlan) -> str:
    return derive_version(plan)

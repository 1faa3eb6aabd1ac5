"""Built-in ``compute_version``: a 32-hex-digit hash of the bundle digest, the image URIs
and the environments' settings, so any change in code, image or settings gives a new
version and no change gives the same one."""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any

from ..hookspecs import hookimpl
from ..sdk import Task, TaskEnvironment
from ..session import DeploySession
from ..types import DeployPlan


def _task_identity(task: Task) -> dict[str, Any]:
    return {
        "name": task.name, "module": task.module, "signature": str(inspect.signature(task.func)),
        "retries": task.retries, "timeout": task.timeout.total_seconds() if task.timeout else None,
        "cache": repr(task.cache), "interruptible": task.interruptible,
        "resources": repr(task.effective_resources), "env": task.effective_env_vars,
        "secrets": [repr(s) for s in task.effective_secrets], "docs": task.docs or task.func.__doc__,
    }


def environment_identity(env: TaskEnvironment) -> dict[str, Any]:
    """The settings of ``env`` that a deployed version depends on, as JSON-able data."""
    return {
        "name": env.name, "depends_on": sorted(d.name for d in env.depends_on),
        "tasks": [_task_identity(t) for _, t in sorted(env.tasks.items())],
    }


def derive_version(plan: DeployPlan) -> str:
    digest = hashlib.sha256()
    digest.update((plan.bundle.digest if plan.bundle and plan.bundle.digest else "-").encode())
    for name in sorted(plan.images):
        digest.update(f"{name}={plan.images[name].uri}".encode())
    envs = [environment_identity(e) for e in sorted(plan.environments, key=lambda e: e.name)]
    digest.update(json.dumps(envs, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


@hookimpl(trylast=True)
def compute_version(session: DeploySession, plan: DeployPlan) -> str:
    return derive_version(plan)

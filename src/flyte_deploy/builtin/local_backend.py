"""Built-in embedded backend (``backend = "local"``): a deployment store at an fsspec URL
(default ``<root>/.flyte-deploy``), no server needed.

Layout: ``environments/<env>/<version>/environment.json`` (image, bundle, tasks) and
``environments/<env>/<version>/<task>.pb`` (the serialized ``TaskSpec``). Versions are
immutable: the same version with the same spec is ``unchanged``, a different spec is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from flyteidl2.task import task_definition_pb2

from ..config import Config
from ..environments import Environment
from ..errors import RegistrationError, RunError
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..storage import filesystem, join
from ..types import Backend, DeployPlan, Listing, Registration, SerializedTask, same_registration

BACKEND = "local"


def register(store_url: str, environment: Environment, tasks: Sequence[SerializedTask],
             plan: DeployPlan) -> list[Registration]:
    """Write each task spec (refusing changed specs under an existing version), then the
    environment record."""
    version = str(plan.version)
    fs, base = filesystem(join(store_url, "environments", environment.name, version))
    blobs = {t.name: t.spec.SerializeToString(deterministic=True) for t in tasks}
    statuses: dict[str, str] = {}
    for task in tasks:
        path = f"{base}/{task.name.split('.', 1)[1]}.pb"
        if fs.exists(path):
            existing = task_definition_pb2.TaskSpec()
            existing.ParseFromString(fs.cat_file(path))
            if not same_registration(existing, task.spec):
                raise RegistrationError(f"task {task.name} version {version} is already deployed with a different"
                                        " spec; versions are immutable: pass a new --version")
            statuses[task.name] = "unchanged"
        else:
            statuses[task.name] = "created"
    for task in tasks:
        if statuses[task.name] == "created":
            fs.pipe_file(f"{base}/{task.name.split('.', 1)[1]}.pb", blobs[task.name])
    record = {
        "environment": environment.name, "version": version,
        "project": tasks[0].spec.task_template.id.project if tasks else None,
        "domain": tasks[0].spec.task_template.id.domain if tasks else None,
        "image": plan.images[environment.name].uri, "bundle": plan.bundle_uri,
        "copy_style": plan.copy_style, "depends_on": [d.name for d in environment.depends_on],
        "tasks": [{"name": t.name, "source_link": t.source_link or None} for t in tasks],
    }
    fs.pipe_file(f"{base}/environment.json", json.dumps(record, indent=2, sort_keys=True).encode())
    return [Registration(task=t.name, version=version, status=statuses[t.name]) for t in tasks]  # type: ignore[arg-type]


def list_deployments(store_url: str) -> list[dict[str, Any]]:
    """Every environment record in the store, sorted by environment then version."""
    fs, base = filesystem(join(store_url, "environments"))
    if not fs.exists(base):
        return []
    records = []
    for path in sorted(fs.glob(f"{base}/*/*/environment.json")):
        record = json.loads(fs.cat_file(path))
        record["modified"] = str(fs.info(path).get("mtime") or fs.info(path).get("created") or "")
        records.append(record)
    return records


def load_task_spec(store_url: str, task_name: str, version: str | None = None, *, project: str | None = None,
                   domain: str | None = None) -> tuple[task_definition_pb2.TaskSpec, dict]:
    """The stored spec of ``env.task`` (newest deployed version when none is given, only
    deployments to ``project``/``domain`` when given) and its environment record."""
    env_name, _, short = task_name.partition(".")
    records = [r for r in list_deployments(store_url) if r["environment"] == env_name]
    if version is not None:
        records = [r for r in records if r["version"] == version]
    records = [r for r in records if any(t["name"] == task_name for t in r["tasks"])
               and project in (None, r["project"]) and domain in (None, r["domain"])]
    if not records:
        scope = "/".join(part for part in (project, domain) if part)
        raise RegistrationError(f"task {task_name}{' version ' + version if version else ''} is not deployed"
                                f"{' to ' + scope if scope else ''} in {store_url}")
    record = max(records, key=lambda r: float(r["modified"] or 0)) if version is None else records[0]
    fs, base = filesystem(join(store_url, "environments", env_name, record["version"], f"{short}.pb"))
    spec = task_definition_pb2.TaskSpec()
    spec.ParseFromString(fs.cat_file(base))
    return spec, record


def task_spec(config: Config, task_name: str, version: str | None) -> task_definition_pb2.TaskSpec:
    """The stored spec ``run`` executes; a task or version not deployed is a ``RunError``."""
    try:
        spec, _ = load_task_spec(config.store_url, task_name, version, project=config.options.get("project"),
                                 domain=config.options.get("domain"))
    except RegistrationError as exc:
        raise RunError(str(exc)) from None
    return spec


def listing(config: Config) -> Listing:
    """The store's environment records, for ``ls``."""
    records = list_deployments(config.store_url)
    rows = [(r["environment"], r["version"],
             "\n".join(t["name"] + (f"\n  {t['source_link']}" if t.get("source_link") else "") for t in r["tasks"]),
             r["image"], r["bundle"] or "none") for r in records]
    return Listing(f"in {config.store_url}", records, ("environment", "version", "tasks", "image", "bundle"), rows)


def register_in_store(session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask],
                      plan: DeployPlan) -> list[Registration]:
    """The backend's ``register``: into the store at ``session.config.store_url``."""
    return register(session.config.store_url, environment, tasks, plan)


@hookimpl
def register_backends() -> list[Backend]:
    return [Backend(BACKEND, register_in_store, task_spec=task_spec, listing=listing,
                    description="the embedded store under the project")]

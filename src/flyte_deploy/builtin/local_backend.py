"""Built-in embedded backend (``backend = "local"``): the SQLite store of record in the
store directory (default ``<root>/.flyte-deploy``, see flyte_deploy.store), no server
needed.

* ``deploy_start`` checks, writing nothing, that the store is a local directory holding a
  sound database of this schema (or nothing yet, or an old file layout it can migrate), so
  a deploy into an unusable store fails before anything is built;
* the backend's ``register`` (per task environment) and ``register_app`` (per app), whichever
  is called first in a deploy, commit every task and app of the plan in one transaction;
  the later calls return their part of the result. A task version already holding a
  different spec, or an app revision holding this version with a different spec, refuses
  the whole deploy (versions are immutable); an app at another version gets a new revision
  (``updated``);
* ``task_spec`` (for ``run``), ``app_spec`` (the latest revision of an app, for ``serve``)
  and ``listing`` (for ``ls``) read the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flyteidl2.task import task_definition_pb2

from ..config import Config
from ..diffing import local_app_history, local_deployed_apps, local_deployed_tasks, local_task_history
from ..environments import Environment
from ..errors import RegistrationError, RunError
from ..hookspecs import hookimpl
from ..session import DeploySession, StashKey
from ..store import AppRecord, Store, TaskRecord
from ..types import Backend, DeployPlan, DeployResult, Listing, Registration, SerializedApp, SerializedTask

BACKEND = "local"

#: this deploy's registrations by (kind, task or app name), set by its first registration
registered_key = StashKey[dict[tuple[str, str], Registration]]()


def _code_of(plan: DeployPlan, environment: str) -> dict[str, Any]:
    """The fields of a record of ``environment``'s code: its environment, image and bundle."""
    return {
        "environment": environment,
        "image": plan.images[environment].uri,
        "bundle_uri": plan.bundle_uri,
        "bundle_digest": plan.bundle.digest if plan.bundle else None,
    }


def task_records(plan: DeployPlan) -> list[TaskRecord]:
    """What the store records for each task of ``plan``, keyed by its spec's identifier."""
    records = []
    for env in plan.environments:
        for task in plan.tasks_of(env.name):
            task_id = task.spec.task_template.id
            records.append(
                TaskRecord(
                    project=task_id.project,
                    domain=task_id.domain,
                    name=task.name,
                    version=task_id.version,
                    **_code_of(plan, env.name),
                    copy_style=plan.copy_style,
                    depends_on=tuple(d.name for d in env.depends_on),
                    source_link=task.source_link or None,
                    spec=task.spec.SerializeToString(deterministic=True),
                )
            )
    return records


def app_records(plan: DeployPlan) -> list[AppRecord]:
    """What the store records for each app of ``plan``, keyed by its identifier."""
    return [
        AppRecord(
            project=app.spec.metadata.id.project,
            domain=app.spec.metadata.id.domain,
            name=app.name,
            version=app.version,
            **_code_of(plan, app.environment),
            source_link=app.source_link or None,
            spec=app.spec.SerializeToString(deterministic=True),
        )
        for app in plan.apps
    ]


def register(store_url: str, plan: DeployPlan) -> dict[tuple[str, str], Registration]:
    """Register every task and app of ``plan`` in one transaction; the outcome by (kind,
    name)."""
    tasks, apps = task_records(plan), app_records(plan)
    statuses = Store.at(store_url).register(tasks, apps)
    done: dict[tuple[str, str], Registration] = {}
    for t in tasks:
        done["task", t.name] = Registration(task=t.name, version=t.version, status=statuses[t.key])
    for a in apps:
        done["app", a.name] = Registration(task=a.name, version=a.version, status=statuses[a.key], kind="app")
    return done


def _registered(session: DeploySession, plan: DeployPlan) -> dict[tuple[str, str], Registration]:
    """This deploy's registrations: the whole plan committed at the first call."""
    if registered_key not in session.stash:
        session.stash[registered_key] = register(session.config.store_url, plan)
    return session.stash[registered_key]


def list_deployments(store_url: str, project: str | None = None, domain: str | None = None) -> list[dict[str, Any]]:
    """One entry per (project, domain, environment, version), oldest deployed first within
    an environment: its image, bundle, tasks, ``deployed_at`` (the latest of its tasks') and
    ``latest`` (every task of it is the version ``run`` picks); an app environment's entry
    is its app's latest revision (``app``: name, revision, source link; no tasks)."""
    store = Store.at(store_url)
    entries: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for a in store.find_apps(project=project, domain=domain):
        entries[a.project, a.domain, a.environment, a.version] = {
            "project": a.project,
            "domain": a.domain,
            "environment": a.environment,
            "version": a.version,
            "deployed_at": a.deployed_at,
            "latest": True,
            "image": a.image,
            "bundle": a.bundle_uri,
            "bundle_digest": a.bundle_digest,
            "app": {"name": a.name, "revision": a.revision, "source_link": a.source_link},
            "tasks": [],
        }
    for r in store.find(project=project, domain=domain):
        entry = entries.setdefault(
            (r.project, r.domain, r.environment, r.version),
            {
                "project": r.project,
                "domain": r.domain,
                "environment": r.environment,
                "version": r.version,
                "deployed_at": r.deployed_at,
                "latest": True,
                "image": r.image,
                "bundle": r.bundle_uri,
                "bundle_digest": r.bundle_digest,
                "copy_style": r.copy_style,
                "depends_on": list(r.depends_on),
                "app": None,
                "tasks": [],
            },
        )
        entry["tasks"].append(
            {"name": r.name, "source_link": r.source_link, "deployed_at": r.deployed_at, "latest": r.latest}
        )
        entry["deployed_at"] = max(entry["deployed_at"], r.deployed_at)
        entry["latest"] = entry["latest"] and r.latest
    return sorted(entries.values(), key=lambda e: (e["project"], e["domain"], e["environment"], e["deployed_at"]))


def load_task_spec(
    store_url: str, task_name: str, version: str | None = None, *, project: str | None = None, domain: str | None = None
) -> tuple[task_definition_pb2.TaskSpec, TaskRecord]:
    """The stored spec of ``task_name`` at ``version`` (None: the latest deployed) in
    ``project``/``domain`` (None: wherever it is, if that is one place), and its record; a
    ``RegistrationError`` saying where it is deployed when it is not there, or when it is in
    several projects or domains and none was named."""
    store = Store.at(store_url)
    found = store.find(
        name=task_name, version=version, project=project, domain=domain, latest_only=version is None, with_spec=True
    )
    scopes = sorted({f"{r.project}/{r.domain}" for r in found})
    if len(scopes) == 1:
        return found[0].task_spec(), found[0]
    what = f"task {task_name}{' version ' + version if version else ''}"
    if scopes:
        raise RegistrationError(
            f"{what} is deployed to {', '.join(scopes)} in {store.path}: pass --project and --domain to choose"
        )
    scope = "/".join(part for part in (project, domain) if part)
    known = sorted({f"{r.version} in {r.project}/{r.domain}" for r in store.find(name=task_name)})
    shown = ", ".join(known[:5]) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
    raise RegistrationError(
        f"{what} is not deployed{' to ' + scope if scope else ''} in {store.path}"
        + (f" (deployed: {shown})" if known else "")
    )


def configured_scope(config: Config) -> tuple[str | None, str | None]:
    """The project and domain ``run`` looks in: the configured ones, as deploy writes them
    (None for one left at its default: wherever the task is, if that is one place)."""
    project, domain = (
        None if config.source_of(key) == "default" else str(config.get(key)) for key in ("project", "domain")
    )
    return project, domain


def task_spec(config: Config, task_name: str, version: str | None) -> task_definition_pb2.TaskSpec:
    """The stored spec ``run`` executes (``configured_scope``); a task or version that is
    not there is a ``RunError`` saying where it is deployed."""
    project, domain = configured_scope(config)
    try:
        spec, _ = load_task_spec(config.store_url, task_name, version, project=project, domain=domain)
    except RegistrationError as exc:
        raise RunError(str(exc)) from None
    return spec


def _run_picks(entry: dict[str, Any]) -> str:
    """The ``run picks`` cell of an ``ls`` row: ``yes``, ``k of n tasks``, or ``-`` for an app."""
    if entry.get("app"):
        return "-"
    picked = sum(t["latest"] for t in entry["tasks"])
    return "yes" if entry["latest"] else f"{picked} of {len(entry['tasks'])} tasks" if picked else ""


def _listed_tasks(entry: dict[str, Any]) -> str:
    """The tasks cell of an ``ls`` row: each task with its source link, or the app."""
    app = entry.get("app")
    if app:
        return f"app {app['name']} (revision {app['revision']})" + (
            f"\n  {app['source_link']}" if app["source_link"] else ""
        )
    return "\n".join(t["name"] + (f"\n  {t['source_link']}" if t.get("source_link") else "") for t in entry["tasks"])


def listing(config: Config) -> Listing:
    """The store's deployments for ``ls``, filtered by ``--project``/``--domain`` when given."""
    project, domain = config.options.get("project"), config.options.get("domain")
    records = list_deployments(config.store_url, project=project, domain=domain)
    scope = "/".join(part for part in (project, domain) if part)
    rows = []
    for r in records:
        rows.append(
            (
                f"{r['project']}/{r['domain']}",
                r["environment"],
                r["version"],
                r["deployed_at"].replace("T", " ")[:19],
                _run_picks(r),
                _listed_tasks(r),
                r["image"],
                f"sha256 {r['bundle_digest'][:12]}" if r["bundle_digest"] else r["bundle"] or "none",
            )
        )
    return Listing(
        f"in {Store.at(config.store_url).path}" + (f" for {scope}" if scope else ""),
        records,
        ("project/domain", "environment", "version", "deployed (UTC)", "run picks", "tasks", "image", "bundle"),
        rows,
    )


def register_in_store(
    session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask], plan: DeployPlan
) -> list[Registration]:
    """The backend's ``register``: the whole plan in one transaction on the first
    registration of a deploy (``register``), then ``tasks``' part of the outcome."""
    done = _registered(session, plan)
    return [done["task", t.name] for t in tasks]


def register_app_in_store(
    session: DeploySession, environment: Environment, app: SerializedApp, plan: DeployPlan
) -> Registration:
    """The backend's ``register_app``: as ``register_in_store``, ``app``'s part."""
    return _registered(session, plan)["app", app.name]


def app_spec(config: Config, name: str) -> SerializedApp:
    """The latest revision of the app ``name`` in the configured scope (``configured_scope``);
    a ``RunError`` (as ``task_spec``) saying where it is deployed when it is not there, or when it is
    in several projects or domains and none was named."""
    store = Store.at(config.store_url)
    project, domain = configured_scope(config)
    found = store.find_apps(project=project, domain=domain, name=name, with_spec=True)
    if len(found) == 1:
        return SerializedApp(environment=found[0].environment, spec=found[0].app())
    scopes = sorted(f"{r.project}/{r.domain}" for r in (found or store.find_apps(name=name)))
    if found:
        raise RunError(
            f"app {name} is deployed to {', '.join(scopes)} in {store.path}: pass --project and --domain to choose"
        )
    where = "/".join(part for part in (project, domain) if part)
    raise RunError(
        f"app {name} is not deployed{' to ' + where if where else ''} in {store.path}"
        + (f" (deployed to {', '.join(scopes)})" if scopes else "")
    )


@hookimpl
def register_backends() -> list[Backend]:
    return [
        Backend(
            BACKEND,
            register_in_store,
            task_spec=task_spec,
            listing=listing,
            register_app=register_app_in_store,
            app_spec=app_spec,
            description="the embedded SQLite store under the project",
            deployed_tasks=local_deployed_tasks,
            task_history=local_task_history,
            deployed_apps=local_deployed_apps,
            app_history=local_app_history,
        )
    ]


@hookimpl
def deploy_start(session: DeploySession, plan: DeployPlan) -> None:
    if session.backend.name == BACKEND:
        Store.at(session.config.store_url).check()


@hookimpl
def deploy_finish(session: DeploySession, result: DeployResult | None, error: BaseException | None) -> None:
    session.stash.pop(registered_key, None)

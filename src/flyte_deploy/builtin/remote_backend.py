"""Built-in remote backend (``backend = "remote"``): registers each serialized ``TaskSpec``
with a Flyte control plane through ``TaskService.DeployTask`` and each serialized app
through ``AppService.Create``/``Update`` over Connect, and offers ``run`` the specs it holds,
``serve`` its apps and ``ls`` its tasks (with their versions) and apps.

Contract (docs/remote.md):

* the connection settings are checked in ``deploy_start``, before anything is built;
  bundles must go to an explicit ``storage`` URL the cluster can read, so nothing is
  written to the local store;
* before the first registration every task of the plan is looked up (``GetTaskDetails``):
  a version already deployed with the same spec is ``unchanged`` and not sent again, one
  deployed with a different spec refuses the whole deploy before anything is registered
  (versions are immutable);
* up to ``remote.concurrency`` (default 16) look-ups and registrations are in flight at
  once; if a registration fails, no further one starts, the ones in flight finish, and the
  ``RegistrationError`` names the tasks registered and the ones not registered; running the
  same command again registers the rest;
* apps are looked up (``AppService.Get``) right after the tasks, before anything is
  registered: an app is one mutable record, and the deploy version is its
  ``APP_VERSION_LABEL`` label. No app: ``Create`` (``created``); the same version with the
  same spec: nothing sent (``unchanged``); the same version with another spec: the deploy
  is refused, naming the app and the fields that differ; another version: ``Update`` to
  the next revision (``updated``). An app created or updated by someone else meanwhile is
  looked up and decided again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..config import Config
from ..diffing import remote_app_history, remote_deployed_apps, remote_deployed_tasks, remote_task_history
from ..environments import Environment
from ..errors import ControlPlaneError, RegistrationError, RunError, UsageError
from ..hookspecs import hookimpl
from ..session import DeploySession, StashKey
from ..task_specs import remote_task_spec
from ..types import (
    APP_VERSION_LABEL,
    Backend,
    DeployPlan,
    DeployResult,
    Listing,
    Registration,
    SerializedApp,
    SerializedTask,
    same_app_registration,
    same_registration,
    without_app_revision,
    without_source_link,
)

if TYPE_CHECKING:  # the Connect client stack is imported only when this backend is used
    from flyteidl2.app import app_definition_pb2
    from flyteidl2.task import task_definition_pb2

    from ..remote import AppServiceConnection, RemoteSettings, TaskServiceConnection

BACKEND = "remote"
RERUN_HINT = "run the same command again to register the rest"
#: how often an app changed by someone else during the deploy is looked up and decided again
APP_ATTEMPTS = 3


@dataclass
class RemoteDeploy:
    """Per-deploy state: the connections and what the control plane already has."""

    connection: TaskServiceConnection
    #: task name -> "new" or "unchanged", from the look-up before the first registration
    status: dict[str, str] = field(default_factory=dict)
    #: the AppService on the same HTTP client (None: the plan has no apps)
    apps: AppServiceConnection | None = None
    #: app name -> the app the control plane held at the look-up (None: no such app)
    deployed_apps: dict[str, app_definition_pb2.App | None] = field(default_factory=dict)


remote_deploy_key: StashKey[RemoteDeploy] = StashKey()


def check_settings(session: DeploySession, plan: DeployPlan) -> RemoteSettings:
    """Validate the remote configuration; bundles need an explicit ``storage`` URL (before
    the bundle is built, every copy style but ``none`` makes one; ``none`` makes one when
    environments include files)."""
    from ..remote import RemoteSettings

    settings = RemoteSettings.from_config(session.config)
    bundled = plan.copy_style != "none" if plan.bundle is None else plan.bundle.digest is not None
    if bundled and not session.config.get("storage"):
        raise UsageError(
            "the remote backend needs `storage`, an fsspec URL the cluster can read bundles from"
            " (e.g. s3://bucket/flyte-deploy): set storage in config.yaml, FLYTE_DEPLOY_STORAGE"
            " or [tool.flyte-deploy]"
        )
    return settings


def look_up(connection: TaskServiceConnection, tasks: Sequence[SerializedTask]) -> dict[str, str]:
    """Compare every task with what the control plane holds under its version (up to
    ``remote.concurrency`` look-ups at once); refuse (naming each task and the fields that
    differ) if any version exists with another spec."""
    with ThreadPoolExecutor(max_workers=connection.settings.concurrency) as pool:
        existing = list(pool.map(lambda task: connection.get_spec(connection.task_id(task.spec)), tasks))
    status: dict[str, str] = {}
    conflicts: list[str] = []
    for task, spec in zip(tasks, existing, strict=True):
        if spec is None:
            status[task.name] = "new"
        elif same_registration(spec, task.spec):
            status[task.name] = "unchanged"
        else:
            conflicts.append(_conflict(task, spec))
    if conflicts:
        raise RegistrationError(f"{'; '.join(conflicts)}; versions are immutable: pass a new --version")
    return status


def _conflict(task: SerializedTask, existing: task_definition_pb2.TaskSpec) -> str:
    from ..diffing import spec_conflict

    version = task.spec.task_template.id.version
    return spec_conflict("task", task.name, version, without_source_link(existing), without_source_link(task.spec))


def register_one(connection: TaskServiceConnection, task: SerializedTask) -> Registration:
    """``DeployTask`` for one task; a version deployed meanwhile with another spec is refused."""
    version = task.spec.task_template.id.version
    try:
        outcome = connection.deploy(task.spec, task.triggers)
    except ControlPlaneError as exc:
        raise RegistrationError(f"registering {task.name} version {version} failed: {exc}", hint=RERUN_HINT) from None
    if outcome == "exists":  # deployed meanwhile: same spec is fine, another is refused
        existing = connection.get_spec(connection.task_id(task.spec))
        if existing is not None and not same_registration(existing, task.spec):
            raise RegistrationError(f"{_conflict(task, existing)}; versions are immutable: pass a new --version")
    return Registration(task=task.name, version=version, status="created" if outcome == "created" else "unchanged")


def register(state: RemoteDeploy, tasks: Sequence[SerializedTask]) -> list[Registration]:
    """Register ``tasks``, up to ``remote.concurrency`` ``DeployTask`` calls at once. After a
    failure no further call starts and the ones in flight are awaited, so the
    ``RegistrationError`` (the first failure in task order) names exactly the tasks
    registered and the ones not registered, in task order."""
    connection = state.connection
    done: dict[str, Registration] = {}
    failures: dict[str, BaseException] = {}
    new = []
    for task in tasks:
        if state.status.get(task.name) == "unchanged":
            done[task.name] = Registration(
                task=task.name, version=task.spec.task_template.id.version, status="unchanged"
            )
        else:
            new.append(task)
    stop = threading.Event()  # set by the first failure: no call starts after it

    def attempt(task: SerializedTask) -> Registration | None:
        if stop.is_set():
            return None
        try:
            return register_one(connection, task)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=connection.settings.concurrency) as pool:
        futures = {pool.submit(attempt, task): task for task in new}
        for future in as_completed(futures):
            name = futures[future].name
            try:
                registration = future.result()
            except Exception as exc:  # noqa: BLE001 - recorded, the first one in task order is raised below
                failures[name] = exc
                continue
            if registration is not None:
                done[name] = registration
    if failures:
        first = next(failures[t.name] for t in tasks if t.name in failures)
        registered = [t.name for t in tasks if t.name in done]
        pending = [t.name for t in tasks if t.name not in done]
        if not isinstance(first, RegistrationError):
            raise first
        raise RegistrationError(first.message, registered=registered, not_registered=pending, hint=first.hint) from None
    return [done[t.name] for t in tasks]


def deploy_state(session: DeploySession, plan: DeployPlan) -> RemoteDeploy:
    """The deploy's connections, opened on the first registration of a deploy, when every
    task and then every app of the plan is looked up (a conflict refuses the deploy before
    anything is registered)."""
    state = session.stash.get(remote_deploy_key)
    if state is not None:
        return state
    from ..remote import AppServiceConnection, TaskServiceConnection, read_token

    settings = check_settings(session, plan)
    connection = TaskServiceConnection(settings, read_token(settings, session.config.environ))
    state = session.stash[remote_deploy_key] = RemoteDeploy(connection)
    try:
        state.status = look_up(connection, plan.tasks)
    except ControlPlaneError as exc:
        raise RegistrationError(f"looking up the tasks failed: {exc}", hint=RERUN_HINT) from None
    if plan.apps:
        state.apps = AppServiceConnection.sharing(connection)
        try:
            state.deployed_apps = look_up_apps(state.apps, plan.apps)
        except ControlPlaneError as exc:
            raise RegistrationError(f"looking up the apps failed: {exc}", hint=RERUN_HINT) from None
    return state


def register_on_control_plane(
    session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask], plan: DeployPlan
) -> list[Registration]:
    """The backend's ``register``: registers ``tasks`` (``deploy_state`` looks the plan up first)."""
    return register(deploy_state(session, plan), tasks)


# -- apps ---------------------------------------------------------------------------------


def as_replacement(existing: app_definition_pb2.App, app: app_definition_pb2.App) -> app_definition_pb2.App:
    """``app`` as the ``Update`` of ``existing`` (what ``flyte.remote.App.replace`` sends): its
    identifier, revision, creator and status, and its ingress when ``app`` sets none."""
    replacement = type(app)()
    replacement.CopyFrom(app)
    replacement.metadata.id.CopyFrom(existing.metadata.id)
    replacement.metadata.revision = existing.metadata.revision
    replacement.spec.creator.CopyFrom(existing.spec.creator)
    if not app.spec.HasField("ingress"):
        replacement.spec.ingress.CopyFrom(existing.spec.ingress)
    replacement.status.CopyFrom(existing.status)
    return replacement


def app_action(
    existing: app_definition_pb2.App | None, app: SerializedApp
) -> Literal["create", "unchanged", "update", "refuse"]:
    """The rule for one app, given what the control plane holds: ``create`` (nothing),
    ``unchanged`` (this version with this spec), ``update`` (another version) or
    ``refuse`` (this version with another spec)."""
    if existing is None:
        return "create"
    if existing.metadata.labels.get(APP_VERSION_LABEL, "") != app.version:
        return "update"
    return "unchanged" if same_app_registration(existing, as_replacement(existing, app.spec)) else "refuse"


def _app_conflict(existing: app_definition_pb2.App, app: SerializedApp) -> str:
    from ..diffing import spec_conflict

    planned = without_app_revision(as_replacement(existing, app.spec))
    return spec_conflict("app", app.name, app.version, without_app_revision(existing), planned)


def _refusal(conflicts: Sequence[str]) -> RegistrationError:
    return RegistrationError(f"{'; '.join(conflicts)}; an app's version holds one spec: pass a new --version")


def look_up_apps(
    connection: AppServiceConnection, apps: Sequence[SerializedApp]
) -> dict[str, app_definition_pb2.App | None]:
    """What the control plane holds for every app (up to ``remote.concurrency`` look-ups at
    once); refuse (naming each app and the fields that differ) if any holds this version
    with another spec."""
    with ThreadPoolExecutor(max_workers=connection.settings.concurrency) as pool:
        existing = list(pool.map(lambda app: connection.get(_app_id(connection, app)), apps))
    conflicts = [
        _app_conflict(held, app)
        for app, held in zip(apps, existing, strict=True)
        if held is not None and app_action(held, app) == "refuse"
    ]
    if conflicts:
        raise _refusal(conflicts)
    return dict(zip((a.name for a in apps), existing, strict=True))


def _app_id(connection: AppServiceConnection, app: SerializedApp) -> app_definition_pb2.Identifier:
    app_id = app.spec.metadata.id
    return connection.app_id(app.name, app_id.project, app_id.domain)


def register_one_app(
    connection: AppServiceConnection, app: SerializedApp, existing: app_definition_pb2.App | None
) -> Registration:
    """Create, leave or update one app (``app_action``) given what the control plane held;
    if it changed meanwhile (``Create`` finds one, ``Update`` a newer revision) it is looked
    up and decided again, up to ``APP_ATTEMPTS`` times."""
    try:
        for _ in range(APP_ATTEMPTS):
            action = app_action(existing, app)
            if action == "refuse":
                assert existing is not None  # only what exists is refused
                raise _refusal([_app_conflict(existing, app)])
            if action == "unchanged":
                return Registration(task=app.name, version=app.version, status="unchanged", kind="app")
            if action == "create":
                stored = connection.create(app.spec)
            else:
                assert existing is not None  # app_action updates only what exists
                stored = connection.update(
                    as_replacement(existing, app.spec), reason=f"flyte-deploy version {app.version}"
                )
            if stored is not None:
                done: Literal["created", "updated"] = "created" if action == "create" else "updated"
                return Registration(task=app.name, version=app.version, status=done, kind="app")
            existing = connection.get(_app_id(connection, app))
    except ControlPlaneError as exc:
        raise RegistrationError(
            f"registering app {app.name} version {app.version} failed: {exc}", hint=RERUN_HINT
        ) from None
    raise RegistrationError(
        f"app {app.name} changed on the control plane {APP_ATTEMPTS} times while version {app.version}"
        " was being registered",
        hint=RERUN_HINT,
    )


def register_app_on_control_plane(
    session: DeploySession, environment: Environment, app: SerializedApp, plan: DeployPlan
) -> Registration:
    """The backend's ``register_app``: creates, leaves or updates ``app`` (``register_one_app``)
    given what the look-up of the plan (``deploy_state``) found."""
    state = deploy_state(session, plan)
    assert state.apps is not None  # the plan has this app
    return register_one_app(state.apps, app, state.deployed_apps.get(app.name))


def app_spec(config: Config, name: str) -> SerializedApp:
    """The app ``name`` the control plane holds in the configured project and domain, for
    ``serve``; a ``RunError`` when there is none."""
    from ..remote import AppServiceConnection, RemoteSettings, read_token

    settings = RemoteSettings.from_config(config)
    with AppServiceConnection(settings, read_token(settings, config.environ)) as connection:
        app = connection.get(connection.app_id(name))
    if app is None:
        raise RunError(
            f"app {name} is not deployed on the control plane at {settings.address}"
            f" ({settings.project}/{settings.domain})"
        )
    return SerializedApp(environment=name, spec=app)


def listing(config: Config) -> Listing:
    """The tasks of the configured project and domain with their versions, then its apps
    with their version, revision and status, for ``ls``."""
    from ..remote import AppServiceConnection, RemoteSettings, TaskServiceConnection, read_token

    settings = RemoteSettings.from_config(config)
    with TaskServiceConnection(settings, read_token(settings, config.environ)) as connection:
        records = []
        for task in sorted(connection.list_tasks(settings.project, settings.domain), key=lambda t: t.task_id.name):
            versions = connection.list_versions(task.task_id)
            records.append(
                {
                    "kind": "task",
                    "task": task.task_id.name,
                    "environment": task.metadata.environment_name or None,
                    "project": task.task_id.project,
                    "domain": task.task_id.domain,
                    "latest": task.task_id.version,
                    "versions": [{"version": v.version, "deployed_at": _timestamp(v, "deployed_at")} for v in versions],
                }
            )
        with AppServiceConnection.sharing(connection) as apps:
            deployed = apps.list_apps(settings.project, settings.domain)
    records += [_app_record(app) for app in sorted(deployed, key=lambda a: a.metadata.id.name)]
    rows = [
        (
            r["task"],
            r["environment"] or "-",
            r["latest"],
            "\n".join(f"{v['version']}  {v['deployed_at'] or ''}".rstrip() for v in r["versions"]),
        )
        if r["kind"] == "task"
        else (
            f"{r['app']} (app)",
            r["environment"],
            r["latest"] or "-",
            f"revision {r['revision']}  {r['status']}  {r['updated_at'] or ''}".rstrip(),
        )
        for r in records
    ]
    return Listing(
        f"on {settings.address} ({settings.project}/{settings.domain})",
        records,
        ("task / app", "environment", "latest", "versions / revision"),
        rows,
    )


def _app_record(app: app_definition_pb2.App) -> dict[str, Any]:
    from flyteidl2.app import app_definition_pb2

    conditions = app.status.conditions
    status = (
        app_definition_pb2.Status.DeploymentStatus.Name(conditions[-1].deployment_status)
        .removeprefix("DEPLOYMENT_STATUS_")
        .lower()
        if conditions
        else "unspecified"
    )
    return {
        "kind": "app",
        "app": app.metadata.id.name,
        "environment": app.metadata.id.name,
        "project": app.metadata.id.project,
        "domain": app.metadata.id.domain,
        "latest": app.metadata.labels.get(APP_VERSION_LABEL) or None,
        "revision": app.metadata.revision,
        "status": status,
        "url": app.status.ingress.public_url or None,
        "updated_at": _timestamp(app.status, "last_updated_at"),
    }


def _timestamp(message: Any, name: str) -> str | None:
    return getattr(message, name).ToJsonString() if message.HasField(name) else None


@hookimpl
def register_backends() -> list[Backend]:
    return [
        Backend(
            BACKEND,
            register_on_control_plane,
            task_spec=remote_task_spec,
            listing=listing,
            register_app=register_app_on_control_plane,
            app_spec=app_spec,
            description="a Flyte control plane (TaskService and AppService over Connect)",
            deployed_tasks=remote_deployed_tasks,
            task_history=remote_task_history,
            deployed_apps=remote_deployed_apps,
            app_history=remote_app_history,
        )
    ]


@hookimpl
def deploy_start(session: DeploySession, plan: DeployPlan) -> None:
    if session.backend.name == BACKEND:
        check_settings(session, plan)


@hookimpl
def deploy_finish(session: DeploySession, result: DeployResult | None, error: BaseException | None) -> None:
    state = session.stash.pop(remote_deploy_key, None)
    if state is not None:
        state.connection.close()
        if state.apps is not None:
            state.apps.close()

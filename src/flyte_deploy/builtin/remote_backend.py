"""Built-in remote backend (``backend = "remote"``): registers each serialized ``TaskSpec``
with a Flyte control plane through ``TaskService.DeployTask`` over Connect, and offers
``run`` the specs it holds and ``ls`` its tasks and versions.

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
  same command again registers the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Config
from ..diffing import remote_deployed_tasks, remote_task_history
from ..environments import Environment
from ..errors import ControlPlaneError, RegistrationError, UsageError
from ..hookspecs import hookimpl
from ..session import DeploySession, StashKey
from ..task_specs import remote_task_spec
from ..types import (
    Backend,
    DeployPlan,
    DeployResult,
    Listing,
    Registration,
    SerializedTask,
    same_registration,
    without_source_link,
)

if TYPE_CHECKING:  # the Connect client stack is imported only when this backend is used
    from flyteidl2.task import task_definition_pb2

    from ..remote import RemoteSettings, TaskServiceConnection

BACKEND = "remote"
RERUN_HINT = "run the same command again to register the rest"


@dataclass
class RemoteDeploy:
    """Per-deploy state: the connection and what the control plane already has."""

    connection: TaskServiceConnection
    #: task name -> "new" or "unchanged", from the look-up before the first registration
    status: dict[str, str] = field(default_factory=dict)


remote_deploy_key: StashKey[RemoteDeploy] = StashKey()


def check_settings(session: DeploySession, plan: DeployPlan) -> RemoteSettings:
    """Validate the remote configuration; bundles need an explicit ``storage`` URL."""
    from ..remote import RemoteSettings

    settings = RemoteSettings.from_config(session.config)
    if plan.copy_style != "none" and not session.config.get("storage"):
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
    from ..diffing import spec_differences

    fields = spec_differences(without_source_link(existing), without_source_link(task.spec))
    shown = ", ".join(fields[:4]) + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")
    version = task.spec.task_template.id.version
    return f"task {task.name} version {version} is already deployed with a different spec (differs in {shown})"


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


def register_on_control_plane(
    session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask], plan: DeployPlan
) -> list[Registration]:
    """The backend's ``register``: connects and looks every task of the plan up on the
    first call of a deploy, then registers ``tasks``."""
    state = session.stash.get(remote_deploy_key)
    if state is None:
        from ..remote import TaskServiceConnection, read_token

        settings = check_settings(session, plan)
        connection = TaskServiceConnection(settings, read_token(settings, session.config.environ))
        state = session.stash[remote_deploy_key] = RemoteDeploy(connection)
        try:
            state.status = look_up(connection, plan.tasks)
        except ControlPlaneError as exc:
            raise RegistrationError(f"looking up the tasks failed: {exc}", hint=RERUN_HINT) from None
    return register(state, tasks)


def listing(config: Config) -> Listing:
    """The tasks of the configured project and domain with their versions, for ``ls``."""
    from ..remote import RemoteSettings, TaskServiceConnection, read_token

    settings = RemoteSettings.from_config(config)
    with TaskServiceConnection(settings, read_token(settings, config.environ)) as connection:
        records = []
        for task in sorted(connection.list_tasks(settings.project, settings.domain), key=lambda t: t.task_id.name):
            versions = connection.list_versions(task.task_id)
            records.append(
                {
                    "task": task.task_id.name,
                    "environment": task.metadata.environment_name or None,
                    "project": task.task_id.project,
                    "domain": task.task_id.domain,
                    "latest": task.task_id.version,
                    "versions": [
                        {
                            "version": v.version,
                            "deployed_at": v.deployed_at.ToJsonString() if v.HasField("deployed_at") else None,
                        }
                        for v in versions
                    ],
                }
            )
    rows = [
        (
            r["task"],
            r["environment"] or "-",
            r["latest"],
            "\n".join(f"{v['version']}  {v['deployed_at'] or ''}".rstrip() for v in r["versions"]),
        )
        for r in records
    ]
    return Listing(
        f"on {settings.address} ({settings.project}/{settings.domain})",
        records,
        ("task", "environment", "latest", "versions"),
        rows,
    )


@hookimpl
def register_backends() -> list[Backend]:
    return [
        Backend(
            BACKEND,
            register_on_control_plane,
            task_spec=remote_task_spec,
            listing=listing,
            description="a Flyte control plane (TaskService over Connect)",
            deployed_tasks=remote_deployed_tasks,
            task_history=remote_task_history,
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

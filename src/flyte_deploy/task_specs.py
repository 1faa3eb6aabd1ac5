"""Where ``flyte-deploy run`` finds the ``TaskSpec`` to run: the backend selected for the
command, by the same rules as ``deploy`` (``--backend``, else ``remote`` when the project
configures an endpoint, else ``local``), through its ``task_spec`` operation.

* ``local``: the local backend's store (``--store``), in the project and domain configured
  as for deploy (``--project``, ``task.project``, ...; when neither is configured, wherever
  the task is deployed, if that is one project and domain): ``--version``, or the latest,
  the version with the most recent ``deployed_at`` (its first registration; ties go to the
  later commit, see docs/store.md);
* ``remote``: the control plane's ``TaskService``: ``GetTaskDetails`` for ``--version``, or
  for the latest version, which is the one ``ListVersions`` reports with the most recent
  ``deployed_at`` (ties go to the greater version string; a version without ``deployed_at``
  ranks below every version with one). The local store is neither read nor written.

A task or version that is not deployed is a ``RunError`` naming the task, the version and
where it looked; a control plane that cannot be reached or refuses the request is a
``ControlPlaneError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flyteidl2.task import task_definition_pb2

from .config import Config
from .errors import RunError, UsageError
from .types import Backend
from .versions import check_version


def find_task_spec(
    backend: Backend, config: Config, task_name: str, version: str | None
) -> task_definition_pb2.TaskSpec:
    """The deployed spec of ``task_name`` (``ENV.TASK``) at ``version`` (None: the latest)."""
    if version is not None:
        check_version(version, "--version")
    if backend.task_spec is None:
        raise UsageError(
            f"backend {backend.name!r} ({config.source_of('backend')}) cannot run tasks: it offers no task specs"
        )
    return backend.task_spec(config, task_name, version)


def remote_task_spec(config: Config, task_name: str, version: str | None) -> task_definition_pb2.TaskSpec:
    """The spec the control plane holds for ``task_name`` in the configured project and
    domain, with the same settings, TLS and token as a remote deploy."""
    from .remote import RemoteSettings, TaskServiceConnection, read_token

    if config.options.get("store") is not None:
        raise UsageError(
            "--store names the local backend's store; the remote backend runs what the control"
            " plane holds (pass --backend local to run from the store)"
        )

    settings = RemoteSettings.from_config(config)
    task_id = task_definition_pb2.TaskIdentifier(
        org=settings.org, project=settings.project, domain=settings.domain, name=task_name, version=version or ""
    )
    where = f"on the control plane at {settings.address} ({settings.project}/{settings.domain})"
    with TaskServiceConnection(settings, read_token(settings, config.environ)) as connection:
        if version is None:
            rows = connection.list_versions(task_id)
            if not rows:
                raise RunError(f"task {task_name} is not deployed {where}")
            task_id.version = latest_version(rows)
        spec = connection.get_spec(task_id)
        if spec is None:
            known = ", ".join(row.version for row in connection.list_versions(task_id)) or "none"
            raise RunError(
                f"task {task_name} version {task_id.version} is not deployed {where} (deployed versions: {known})"
            )
    return spec


def version_rank(row: Any) -> tuple[bool, int, int, str]:
    """The order of ``ListVersions`` rows, latest last (module docstring for ties and rows
    without a time): the one rule ``run``, ``diff`` and ``history`` share."""
    stamped = row.HasField("deployed_at")
    return stamped, row.deployed_at.seconds, row.deployed_at.nanos, row.version


def latest_version(versions: Sequence[Any]) -> str:
    """The version with the most recent ``deployed_at`` of ``ListVersions`` rows."""
    return max(versions, key=version_rank).version

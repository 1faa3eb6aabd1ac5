"""What the store holds: one ``TaskRecord`` per task version, one ``AppRecord`` per app
revision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flyteidl2.app import app_definition_pb2
from flyteidl2.task import task_definition_pb2

Status = Literal["created", "unchanged"]
#: what registering an app did: ``updated`` is a new revision of an app at another version
AppStatus = Literal["created", "unchanged", "updated"]


@dataclass(frozen=True)
class DeployedRecord:
    """What the store holds of every deployed task or app: where (project, domain), what
    (name, version, environment) and which code (image, bundle)."""

    project: str
    domain: str
    name: str
    version: str
    environment: str
    image: str
    bundle_uri: str | None
    bundle_digest: str | None


@dataclass(frozen=True)
class TaskRecord(DeployedRecord):
    """One registered task version, keyed by ``(project, domain, name, version)``.

    ``spec`` is the deterministic serialization of the ``TaskSpec``; ``deployed_at`` (UTC,
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``) is set by the store when the version is first committed,
    and ``latest`` says whether it is the version ``run`` picks for the task in its project
    and domain (both are filled in only for records read back from the store)."""

    copy_style: str
    depends_on: tuple[str, ...]
    source_link: str | None
    spec: bytes = b""
    deployed_at: str = ""
    latest: bool = False

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.project, self.domain, self.name, self.version

    def task_spec(self) -> task_definition_pb2.TaskSpec:
        return task_definition_pb2.TaskSpec.FromString(self.spec)


@dataclass(frozen=True)
class AppRecord(DeployedRecord):
    """One revision of an app, keyed by ``(project, domain, name)`` and its ``revision``
    (1, 2, ... in deploy order); ``version`` is the deploy version it runs.

    ``spec`` is the deterministic serialization of the ``app.App`` (its
    ``metadata.revision`` set to ``revision``); ``deployed_at`` and ``revision`` are set by
    the store when the revision is committed."""

    source_link: str | None
    spec: bytes = b""
    deployed_at: str = ""
    revision: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return self.project, self.domain, self.name

    def app(self) -> app_definition_pb2.App:
        return app_definition_pb2.App.FromString(self.spec)

"""Typed, frozen results that hooks return. The lifecycle checks every hook result
against these types at the boundary and names the plugin that returned something else."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from flyteidl2.app.app_definition_pb2 import App
    from flyteidl2.task.task_definition_pb2 import TaskSpec, TaskTrigger

    from .config import Config
    from .environments import Environment
    from .image import Image
    from .session import DeploySession

CopyStyle = Literal["loaded_modules", "all", "none"]
COPY_STYLES: tuple[str, ...] = ("loaded_modules", "all", "none")


@dataclass(frozen=True)
class DeployRequest:
    """What the user asked to deploy: files/dirs and which environments.

    ``mode`` is ``"file"`` (``path`` + ``env_names``), ``"all"`` (every env in ``path``),
    ``"recursive"`` (every env in every .py under ``path``) or ``"objects"`` (``objects``
    given directly, from the Python API).
    """

    mode: Literal["file", "all", "recursive", "objects"]
    path: Path | None = None
    env_names: tuple[str, ...] = ()
    objects: tuple[object, ...] = ()


@dataclass(frozen=True)
class Discovery:
    """Result of ``discover_environments``.

    ``environments``: every TaskEnvironment found, ``selected``: those the user asked for,
    ``loaded_modules``: names of the modules discovery imported (input to bundling).
    """

    environments: tuple[Environment, ...]
    selected: tuple[Environment, ...]
    loaded_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bundle:
    """A built code bundle. ``path`` is the local archive (None for copy style none, and in
    a dry run whose bundle the signature cache knew; the verified stored object when the
    cache knew it and it is in local storage);
    ``digest`` the content digest, the sha256 of the uncompressed tar stream, which names the
    bundle and feeds the version whatever compressor wrote it; ``archive_digest`` and
    ``size`` the sha256 and size of the compressed bytes at ``path`` (integrity checks);
    ``files`` the archive member names, sorted."""

    copy_style: str
    digest: str | None = None
    path: Path | None = None
    size: int = 0
    files: tuple[str, ...] = ()
    archive_digest: str | None = None

    @property
    def filename(self) -> str | None:
        """The content-addressed storage name, ``<digest>.tar.gz``."""
        return f"{self.digest}.tar.gz" if self.digest else None

    @property
    def summary(self) -> str:
        if not self.digest:
            return f"no bundle (copy style {self.copy_style})"
        return f"{len(self.files)} file(s), {self.size:,} bytes, sha256 {self.digest[:12]} ({self.copy_style})"


@dataclass(frozen=True)
class ImageRef:
    """An image for one environment. ``uri`` is what tasks run; ``built`` says whether
    this deploy built or pushed it; ``digest`` is the manifest digest when known;
    ``note`` explains a skip ("already in registry", "prebuilt", ...)."""

    environment: str
    uri: str
    builder: str
    built: bool = False
    digest: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ImageBuilder:
    """A named image builder offered by ``register_image_builders``.

    ``build(session, environment_name, image)`` makes ``image.uri`` exist in its registry
    and returns an ``ImageRef``; ``available()`` says whether it can run here (e.g. a
    daemon answers); ``auto_priority`` orders builders for ``image.builder = "auto"``
    (lowest first; ``None`` means never chosen automatically). ``plugin`` is set to the
    name of the plugin that offered it.
    """

    name: str
    build: Callable[..., ImageRef]
    available: Callable[[], bool] = lambda: True
    description: str = ""
    auto_priority: int | None = None
    plugin: str = ""


@dataclass(frozen=True)
class SerializedTask:
    """One task as the backend receives it: a flyteidl2 ``TaskSpec``, and the
    ``TaskTrigger`` messages registered with it (``DeployTaskRequest.triggers``)."""

    environment: str
    name: str
    spec: TaskSpec
    triggers: tuple[TaskTrigger, ...] = ()

    @property
    def source_link(self) -> str:
        return self.spec.documentation.source_code.link


def without_source_link(spec: TaskSpec) -> TaskSpec:
    """A copy of ``spec`` without its source link: what makes two registrations of one
    version the same. The link follows the git commit, which changes with commits that
    do not touch the bundled code (same bundle, same version), so it must not make an
    identical redeploy look like a changed spec."""
    copy = type(spec)()
    copy.CopyFrom(spec)
    copy.documentation.source_code.Clear()
    return copy


def same_registration(existing: TaskSpec, new: TaskSpec) -> bool:
    """True when ``new`` may be registered under a version ``existing`` already holds."""
    return without_source_link(existing) == without_source_link(new)


@dataclass(frozen=True)
class SerializedApp:
    """One app as the backend receives it: a flyteidl2 ``app.App`` (``metadata`` with its
    identifier, bundle URI and source link; ``spec`` with container, scaling, ingress,
    security context...). ``environment`` is the app environment's name, which is also the
    app's name. The deploy version is carried in the container command (``fserve --version``)
    and in the ``flyte-deploy/version`` label (``APP_VERSION_LABEL``)."""

    environment: str
    spec: App

    @property
    def name(self) -> str:
        return self.spec.metadata.id.name

    @property
    def version(self) -> str:
        return self.spec.metadata.labels.get(APP_VERSION_LABEL, "")

    @property
    def source_link(self) -> str:
        return self.spec.metadata.source_code.link


#: the label of an app's metadata holding the flyte-deploy version it was deployed with
APP_VERSION_LABEL = "flyte-deploy/version"


def without_app_revision(app: App) -> App:
    """A copy of ``app`` without what the control plane or the git commit changes between two
    registrations of one version: its revision, its status and its source link. Two
    registrations of one version are the same app when these copies are equal."""
    copy = type(app)()
    copy.CopyFrom(app)
    copy.metadata.revision = 0
    copy.metadata.source_code.Clear()
    copy.ClearField("status")
    return copy


def same_app_registration(existing: App, new: App) -> bool:
    """True when ``new`` may be registered under the version ``existing`` already holds."""
    return without_app_revision(existing) == without_app_revision(new)


@dataclass(frozen=True)
class SourceLink:
    """A browsable link to the task's source line, and who made it."""

    url: str
    provider: str


@dataclass(frozen=True)
class Violation:
    """One policy violation: ``rule`` id, ``subject`` (environment or task) and message."""

    rule: str
    subject: str
    message: str
    plugin: str = ""

    def __str__(self) -> str:
        by = f" [{self.plugin}]" if self.plugin else ""
        return f"{self.rule}: {self.subject}: {self.message}{by}"


@dataclass(frozen=True)
class Registration:
    """What the backend did with one task or app (``kind``): ``task`` is the task's (or the
    app's) name; ``status`` is ``created``, ``unchanged`` (this version, same spec, was
    there) or, for an app only, ``updated`` (the app existed at another version and now runs
    this one: a new revision)."""

    task: str
    version: str
    status: Literal["created", "unchanged", "updated"]
    kind: Literal["task", "app"] = "task"


@dataclass(frozen=True)
class Listing:
    """What a backend holds, for ``flyte-deploy ls``: ``where`` it looked (``"in <url>"``,
    ``"on <host> (project/domain)"``), the JSON ``records`` and the same as table ``rows``
    under ``columns``."""

    where: str
    records: list[dict[str, Any]]
    columns: tuple[str, ...]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class DeployedTask:
    """One deployed version of a task, as a backend reports it for ``diff`` and ``history``:
    its ``spec``, when it was first deployed (``deployed_at``, UTC; ``None`` when the backend
    does not say), the content digest of its code bundle (``None`` without one) and its
    source link (``""`` without one)."""

    name: str
    environment: str
    version: str
    spec: TaskSpec
    deployed_at: datetime | None
    bundle_digest: str | None
    source_link: str


@dataclass(frozen=True)
class DeployedApp:
    """One revision of an app, as a backend reports it for ``diff`` and ``history``: the
    deploy ``version`` it runs (``APP_VERSION_LABEL``), its ``revision`` (1, 2, ...), its
    ``spec``, when the revision was deployed (UTC; ``None`` when the backend does not say),
    the content digest of its code bundle (``None`` without one) and its source link (``""``
    without one)."""

    name: str
    version: str
    revision: int
    spec: App
    deployed_at: datetime | None
    bundle_digest: str | None
    source_link: str


@dataclass(frozen=True)
class Backend:
    """A deploy target offered by ``register_backends`` and selected by name (``backend``).

    ``register(session, environment, tasks, plan)`` registers one environment's serialized
    tasks and returns one ``Registration`` per task (or raises ``RegistrationError``).
    ``task_spec(config, "ENV.TASK", version)`` returns the deployed ``TaskSpec`` for ``run``
    (``None``: the backend cannot run tasks); ``listing(config)`` returns a ``Listing`` for
    ``ls`` (``None``: it cannot list). ``register_app(session, environment, app, plan)``
    registers one serialized app and returns its ``Registration`` (``None``: the backend
    cannot hold apps, and a plan with an app is refused before anything is built);
    ``app_spec(config, name)`` returns the deployed ``SerializedApp`` for ``serve``.
    ``plugin`` is set to the name of the plugin that offered it.
    ``deployed_tasks(config, environment_names)`` returns, by task name, the latest deployed
    version of every task of those environments in the configured project and domain (for
    ``diff``); ``task_history(config, "ENV.TASK")`` every deployed version of one task, oldest
    first (for ``history``; an empty list when it was never deployed). ``None``: the backend
    cannot tell. ``deployed_apps(config, app_names)`` returns, by name, the current revision
    of each of those apps the configured project and domain hold (an app not there is
    absent), and ``app_history(config, name)`` every revision of one app the backend still
    knows, oldest first (an empty list when it was never deployed); ``None``: the backend
    cannot tell which apps it holds.
    """

    name: str
    register: Callable[[DeploySession, Environment, Sequence[SerializedTask], DeployPlan], list[Registration]]
    task_spec: Callable[[Config, str, str | None], TaskSpec] | None = None
    listing: Callable[[Config], Listing] | None = None
    register_app: Callable[[DeploySession, Environment, SerializedApp, DeployPlan], Registration] | None = None
    app_spec: Callable[[Config, str], SerializedApp] | None = None
    description: str = ""
    plugin: str = ""
    deployed_tasks: Callable[[Config, Sequence[str]], Mapping[str, DeployedTask]] | None = None
    task_history: Callable[[Config, str], Sequence[DeployedTask]] | None = None
    deployed_apps: Callable[[Config, Sequence[str]], Mapping[str, DeployedApp]] | None = None
    app_history: Callable[[Config, str], Sequence[DeployedApp]] | None = None

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What it can do besides registering tasks: ``list``, ``run``, ``apps``, ``serve``,
        ``diff``, ``history``."""
        offered = (
            ("list", self.listing),
            ("run", self.task_spec),
            ("apps", self.register_app),
            ("serve", self.app_spec),
            ("diff", self.deployed_tasks),
            ("history", self.task_history),
        )
        return tuple(name for name, able in offered if able)


@dataclass(frozen=True)
class PhaseReport:
    """How one lifecycle phase went, passed to ``phase_finished``: ``phase`` (the hook
    name), ``outcome`` (``passed`` or ``failed``), wall time in seconds, a one-line
    ``detail`` of its result and, when it failed, the ``error``."""

    phase: str
    outcome: Literal["passed", "failed"]
    duration: float
    detail: str = ""
    error: BaseException | None = None


@dataclass
class DeployPlan:
    """Everything a deploy will do, filled phase by phase; policy plugins see it whole
    (after serialization, before any upload, push or registration)."""

    request: DeployRequest
    root_dir: Path
    copy_style: str
    scratch_dir: Path
    discovery: Discovery | None = None
    environments: tuple[Environment, ...] = ()
    bundle: Bundle | None = None
    bundle_uri: str | None = None
    images: dict[str, Image] = field(default_factory=dict)
    version: str | None = None
    tasks: list[SerializedTask] = field(default_factory=list)
    apps: list[SerializedApp] = field(default_factory=list)

    def tasks_of(self, environment: str) -> list[SerializedTask]:
        return [t for t in self.tasks if t.environment == environment]

    def app_of(self, environment: str) -> SerializedApp | None:
        return next((a for a in self.apps if a.environment == environment), None)


@dataclass(frozen=True)
class DeployResult:
    """The outcome of a deploy, as shown by the summary table and ``--output json``."""

    version: str
    backend: str
    dry_run: bool
    environments: tuple[str, ...]
    tasks: tuple[SerializedTask, ...]
    images: tuple[ImageRef, ...]
    bundle: Bundle | None
    bundle_uri: str | None
    registrations: tuple[Registration, ...] = ()
    apps: tuple[SerializedApp, ...] = ()

    def to_json(self) -> dict[str, Any]:
        images = {i.environment: i for i in self.images}
        return {
            "version": self.version,
            "backend": self.backend,
            "dry_run": self.dry_run,
            "bundle": None
            if self.bundle is None
            else {
                "copy_style": self.bundle.copy_style,
                "digest": self.bundle.digest,
                "archive_digest": self.bundle.archive_digest,
                "size": self.bundle.size,
                "files": len(self.bundle.files),
                "uri": self.bundle_uri,
            },
            "environments": [
                {
                    "name": env,
                    "image": images[env].uri if env in images else None,
                    "image_built": images[env].built if env in images else False,
                    "tasks": [
                        {"name": t.name, "source_link": t.source_link or None}
                        for t in self.tasks
                        if t.environment == env
                    ],
                    "app": next(
                        (
                            {"name": a.name, "source_link": a.source_link or None}
                            for a in self.apps
                            if a.environment == env
                        ),
                        None,
                    ),
                }
                for env in self.environments
            ],
            "registrations": [
                {"task": r.task, "version": r.version, "status": r.status, "kind": r.kind} for r in self.registrations
            ],
        }

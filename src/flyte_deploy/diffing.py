"""What a deploy would change (``flyte-deploy diff``) and what was deployed (``history``).

The diff runs the lifecycle as ``check`` does (a dry run up to and including
``check_plan``: nothing uploaded, built or registered), reads the backend's latest deployed
version of every task of the plan's environments (``Backend.deployed_tasks``) and compares
each planned ``TaskSpec`` with it:

* ``new``: the task was never deployed in the configured project and domain;
* ``unchanged``: the same spec once the deploy version (in the identifier and the
  container's ``--version``) and the source link are set aside;
* ``changed``: the ``FieldChange`` of each field that differs, by a meaningful name
  (``FIELDS``: image, resources, interface, default inputs, env vars, secrets, bundle
  digest, retries, timeout, cache, ...), with its protobuf paths and both values;
* ``removed``: deployed in an environment of the plan, and no longer in it.

Then every ``check_diff`` hook polices the diff. ``spec_differences`` is the one rule for
the protobuf paths in which two specs differ (also used by the backends' conflict errors).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .errors import UsageError
from .types import DeployedTask, DeployRequest, SerializedTask, Violation, without_source_link

if TYPE_CHECKING:
    from flyteidl2.task.task_definition_pb2 import TaskSpec
    from google.protobuf.message import Message

    from .config import Config
    from .remote import TaskServiceConnection
    from .session import DeploySession

R = TypeVar("R")
Status = Literal["new", "unchanged", "changed", "removed"]
STATUSES: tuple[Status, ...] = ("new", "changed", "removed", "unchanged")

#: container arguments whose value is compared on its own (None: set aside, the version)
_ARG_FIELDS = {"--version": None, "--tgz": "bundle", "--image-cache": "image lookup"}
#: a bundle's storage name: ``<sha256 of its tar stream>.tar.gz``
_BUNDLE_NAME = re.compile(r"(?:^|/)([0-9a-f]{64})\.tar\.gz$")


# -- comparing two specs --------------------------------------------------------------------


def spec_differences(old: Message, new: Message, prefix: str = "") -> list[str]:
    """Dotted paths of the fields that differ between two messages of one type."""
    paths: list[str] = []
    names = sorted({f.name for f, _ in old.ListFields()} | {f.name for f, _ in new.ListFields()})
    for name in names:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        descriptor = old.DESCRIPTOR.fields_by_name[name]
        message_type = descriptor.message_type
        if message_type is not None and not _is_repeated(descriptor) and not message_type.GetOptions().map_entry:
            paths += spec_differences(a, b, f"{prefix}{name}.") or [f"{prefix}{name}"]
        else:
            paths.append(f"{prefix}{name}")
    return paths


def spec_conflict(kind: str, name: str, version: str, deployed: Message, planned: Message, where: str = "") -> str:
    """The refusal of ``version`` of task or app (``kind``) ``name``, deployed (``where``:
    `` in P/D``) with another spec than the planned one: it names the first four fields that
    differ (``spec_differences``) and how many more."""
    fields = spec_differences(deployed, planned)
    shown = ", ".join(fields[:4]) + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")
    return f"{kind} {name} version {version} is already deployed with a different spec{where} (differs in {shown})"


def _is_repeated(descriptor: Any) -> bool:
    flag = getattr(descriptor, "is_repeated", None)
    return bool(flag) if flag is not None else descriptor.label == descriptor.LABEL_REPEATED


def _arg(spec: TaskSpec, flag: str) -> str:
    """The value following ``flag`` in the container's arguments (``""`` without one)."""
    args = list(spec.task_template.container.args)
    return args[args.index(flag) + 1] if flag in args[:-1] else ""


def bundle_uri(spec: TaskSpec) -> str:
    """The code bundle a task runs: the container's ``--tgz`` argument, else the metadata's
    ``code_bundle_uri`` (``""`` without a bundle)."""
    return _arg(spec, "--tgz") or spec.task_template.metadata.code_bundle_uri


def bundle_digest(spec: TaskSpec) -> str | None:
    """The content digest naming the task's bundle (``<digest>.tar.gz``), or None."""
    found = _BUNDLE_NAME.search(bundle_uri(spec))
    return found.group(1) if found else None


def comparable(spec: TaskSpec) -> TaskSpec:
    """A copy of ``spec`` without what differs between two deploys of one task that change
    nothing it runs: the version (identifier, ``--version``) and the source link; and
    without the bundle and the image lookup, which are compared on their own."""
    copy = without_source_link(spec)
    copy.task_template.id.version = ""
    copy.task_template.metadata.code_bundle_uri = ""
    args = copy.task_template.container.args
    for index in range(len(args) - 1):
        if args[index] in _ARG_FIELDS:
            args[index + 1] = ""
    return copy


@dataclass(frozen=True)
class SpecField:
    """A meaningful name for the protobuf paths under ``prefixes``, and how its value reads."""

    name: str
    prefixes: tuple[str, ...]
    show: Callable[[TaskSpec], str]

    def covers(self, path: str) -> bool:
        return any(path == p or path.startswith(p + ".") for p in self.prefixes)


def _type_name(literal_type: Any) -> str:
    kind = literal_type.WhichOneof("type")
    if kind == "simple":
        simple = type(literal_type).DESCRIPTOR.fields_by_name["simple"].enum_type
        return str(simple.values_by_number[literal_type.simple].name)
    if kind == "collection_type":
        return f"list[{_type_name(literal_type.collection_type)}]"
    if kind == "map_value_type":
        return f"dict[str, {_type_name(literal_type.map_value_type)}]"
    if kind == "union_type":
        return " | ".join(_type_name(v) for v in literal_type.union_type.variants)
    return kind or "none"


def _variables(variables: Any) -> str:
    entries = variables.variables
    pairs = entries.items() if hasattr(entries, "items") else ((e.key, e.value) for e in entries)
    return ", ".join(f"{name}: {_type_name(var.type)}" for name, var in sorted(pairs))


def _one_line(message: Message) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(message, as_one_line=True)


def _literal(literal: Any) -> str:
    if literal.HasField("scalar") and literal.scalar.HasField("primitive"):
        primitive = literal.scalar.primitive
        return str(getattr(primitive, primitive.WhichOneof("value") or "integer"))
    return _one_line(literal)


def _resources(spec: TaskSpec) -> str:
    from flyteidl2.core import tasks_pb2

    names = tasks_pb2.Resources.ResourceName
    resources = spec.task_template.container.resources
    parts = [
        f"{label} " + " ".join(f"{names.Name(e.name).lower()}={e.value}" for e in entries)
        for label, entries in (("requests", resources.requests), ("limits", resources.limits))
        if entries
    ]
    device = spec.task_template.extended_resources.gpu_accelerator.device
    return "; ".join(parts + ([f"gpu {device}"] if device else [])) or "none"


def _cache(spec: TaskSpec) -> str:
    meta = spec.task_template.metadata
    if not meta.discoverable:
        return "off"
    extra = ", serialized" if meta.cache_serializable else ""
    ignored = f", ignoring {', '.join(meta.cache_ignore_input_vars)}" if meta.cache_ignore_input_vars else ""
    return f"on (version {meta.discovery_version}{extra}{ignored})"


def _timeout(spec: TaskSpec) -> str:
    meta = spec.task_template.metadata
    return meta.timeout.ToJsonString() if meta.HasField("timeout") else "none"


def _secrets(spec: TaskSpec) -> str:
    shown = [
        f"{s.group + '/' if s.group else ''}{s.key}" + (f" as {s.env_var}" if s.env_var else "")
        for s in spec.task_template.security_context.secrets
    ]
    return ", ".join(shown) or "none"


def _command(spec: TaskSpec) -> str:
    container = comparable(spec).task_template.container
    return " ".join([*container.command, *(a for a in container.args if a)])


#: the fields a diff names, in the order it lists them; a path none covers is shown as is
FIELDS: tuple[SpecField, ...] = (
    SpecField("image", ("task_template.container.image",), lambda s: s.task_template.container.image),
    SpecField("resources", ("task_template.container.resources", "task_template.extended_resources"), _resources),
    SpecField(
        "interface",
        ("task_template.interface",),
        lambda s: (
            f"({_variables(s.task_template.interface.inputs)}) -> ({_variables(s.task_template.interface.outputs)})"
        ),
    ),
    SpecField(
        "default inputs",
        ("default_inputs",),
        lambda s: ", ".join(f"{p.name}={_literal(p.parameter.default)}" for p in s.default_inputs) or "none",
    ),
    SpecField(
        "env vars",
        ("task_template.container.env",),
        lambda s: ", ".join(f"{e.key}={e.value}" for e in s.task_template.container.env) or "none",
    ),
    SpecField("secrets", ("task_template.security_context",), _secrets),
    SpecField("retries", ("task_template.metadata.retries",), lambda s: str(s.task_template.metadata.retries.retries)),
    SpecField("timeout", ("task_template.metadata.timeout",), _timeout),
    SpecField(
        "cache",
        tuple(
            f"task_template.metadata.{name}"
            for name in ("discoverable", "discovery_version", "cache_serializable", "cache_ignore_input_vars")
        ),
        _cache,
    ),
    SpecField(
        "interruptible",
        ("task_template.metadata.interruptible",),
        lambda s: str(s.task_template.metadata.interruptible).lower(),
    ),
    SpecField("command", ("task_template.container.command", "task_template.container.args"), _command),
    SpecField(
        "pod template",
        ("task_template.k8s_pod", "task_template.metadata.pod_template_name"),
        lambda s: s.task_template.metadata.pod_template_name or _one_line(s.task_template.k8s_pod) or "none",
    ),
    SpecField(
        "runtime",
        ("task_template.metadata.runtime",),
        lambda s: f"{s.task_template.metadata.runtime.flavor} {s.task_template.metadata.runtime.version}",
    ),
    SpecField(
        "documentation",
        ("documentation",),
        lambda s: s.documentation.short_description or "none",
    ),
    SpecField("short name", ("short_name",), lambda s: s.short_name),
    SpecField("environment", ("environment",), lambda s: s.environment.name),
)


@dataclass(frozen=True)
class FieldChange:
    """One changed field of a task: its name (``FIELDS``, ``bundle digest``, ``bundle
    location``, ``image lookup``, or a protobuf path no field covers), the protobuf paths
    that differ, and the deployed and planned values as text."""

    field: str
    paths: tuple[str, ...]
    before: str
    after: str

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "paths": list(self.paths), "before": self.before, "after": self.after}


def changes(deployed: TaskSpec, planned: TaskSpec) -> tuple[FieldChange, ...]:
    """The fields in which ``planned`` differs from ``deployed`` (module docstring)."""
    found: list[FieldChange] = []
    args = ("task_template.container.args",)
    old_digest, new_digest = bundle_digest(deployed), bundle_digest(planned)
    if old_digest != new_digest:
        found.append(FieldChange("bundle digest", args, old_digest or "none", new_digest or "none"))
    elif bundle_uri(deployed) != bundle_uri(planned):
        found.append(FieldChange("bundle location", args, bundle_uri(deployed), bundle_uri(planned)))
    paths = spec_differences(comparable(deployed), comparable(planned))
    for spec_field in FIELDS:
        covered = tuple(p for p in paths if spec_field.covers(p))
        if covered:
            before, after = spec_field.show(deployed), spec_field.show(planned)
            if before == after:  # the difference is in a detail its rendering leaves out
                before, after = _raw(deployed, covered), _raw(planned, covered)
            found.append(FieldChange(spec_field.name, covered, before, after))
    if _arg(deployed, "--image-cache") != _arg(planned, "--image-cache"):
        found.append(FieldChange("image lookup", args, _image_lookup(deployed), _image_lookup(planned)))
    found += [
        FieldChange(p, (p,), _raw(deployed, [p]), _raw(planned, [p]))
        for p in paths
        if not any(f.covers(p) for f in FIELDS)
    ]
    return tuple(found)


def _raw(spec: TaskSpec, paths: Sequence[str]) -> str:
    """``path=value`` of each of ``paths`` in ``spec`` (messages on one line)."""
    shown = []
    for path in paths:
        value: Any = spec
        for name in path.split("."):
            value = getattr(value, name)
        text = _one_line(value) if hasattr(value, "ListFields") else str(value)
        shown.append(f"{path}={text}")
    return "; ".join(shown)


def _image_lookup(spec: TaskSpec) -> str:
    """The flyte SDK's ``--image-cache`` (a gzipped, base64 JSON of every environment's image)."""
    import base64
    import gzip
    import json

    value = _arg(spec, "--image-cache")
    try:
        lookup = json.loads(gzip.decompress(base64.b64decode(value)))["image_lookup"]
    except (ValueError, KeyError, TypeError, OSError):
        return value or "none"
    return ", ".join(f"{env}={uri}" for env, uri in sorted(lookup.items()))


# -- a diff -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffEntry:
    """One task of a diff: its ``status``, the latest deployed version (None when ``new``),
    the planned version (None when ``removed``) and, when ``changed``, its changes."""

    name: str
    environment: str
    status: Status
    deployed_version: str | None
    planned_version: str | None
    changes: tuple[FieldChange, ...] = ()
    kind: Literal["task"] = "task"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "environment": self.environment,
            "status": self.status,
            "deployed_version": self.deployed_version,
            "planned_version": self.planned_version,
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True)
class Diff:
    """What deploying the plan would change on ``backend`` in ``project``/``domain``:
    one entry per planned or removed task, in plan order, the removed ones last."""

    backend: str
    project: str
    domain: str
    version: str
    entries: tuple[DiffEntry, ...]
    violations: tuple[Violation, ...] = ()

    @property
    def pending(self) -> bool:
        """True when deploying would change anything."""
        return any(e.status != "unchanged" for e in self.entries)

    def count(self, status: Status) -> int:
        return sum(1 for e in self.entries if e.status == status)

    @property
    def summary(self) -> str:
        return ", ".join(f"{self.count(s)} {s}" for s in STATUSES)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "project": self.project,
            "domain": self.domain,
            "version": self.version,
            "pending": self.pending,
            "summary": {s: self.count(s) for s in STATUSES},
            "tasks": [e.to_json() for e in self.entries],
            "violations": [
                {"rule": v.rule, "subject": v.subject, "message": v.message, "plugin": v.plugin}
                for v in self.violations
            ],
        }


def diff_tasks(planned: Sequence[SerializedTask], deployed: Mapping[str, DeployedTask]) -> tuple[DiffEntry, ...]:
    """Each planned task against its latest deployed version (``deployed``: those of the
    plan's environments, by name), then the deployed tasks the plan no longer has."""
    entries = []
    for task in planned:
        version = task.spec.task_template.id.version
        old = deployed.get(task.name)
        if old is None:
            entries.append(DiffEntry(task.name, task.environment, "new", None, version))
            continue
        found = changes(old.spec, task.spec)
        entries.append(
            DiffEntry(task.name, task.environment, "changed" if found else "unchanged", old.version, version, found)
        )
    names = {t.name for t in planned}
    entries += [
        DiffEntry(old.name, old.environment, "removed", old.version, None)
        for name, old in sorted(deployed.items())
        if name not in names
    ]
    return tuple(entries)


def run_diff(
    session: DeploySession,
    request: DeployRequest,
    *,
    version: str | None = None,
    copy_style: str | None = None,
    image_overrides: Mapping[str, str] | None = None,
) -> Diff:
    """Plan as ``check`` does (``session.dry_run`` must be set), read the backend and compare;
    the ``check_diff`` violations are in ``Diff.violations``."""
    from .lifecycle import deploy

    if not session.dry_run:
        raise UsageError("a diff plans a dry run: open the session with dry_run=True")
    backend = session.backend
    if backend.deployed_tasks is None:
        raise UsageError(
            f"backend {backend.name!r} ({session.config.source_of('backend')}) cannot tell what it holds,"
            " so it cannot diff"
        )
    result = deploy(session, request, version=version, copy_style=copy_style, image_overrides=image_overrides)
    deployed = backend.deployed_tasks(session.config, result.environments)
    project, domain = scope(session.config)
    diff = Diff(backend.name, project, domain, result.version, diff_tasks(result.tasks, deployed))
    return replace(diff, violations=tuple(session.calls.check_diff(session, diff)))


def task_history(session: DeploySession, task_name: str) -> Sequence[DeployedTask]:
    """Every deployed version of ``task_name`` (``ENV.TASK``) on the session's backend, first
    deployed first; a task never deployed is a ``UsageError`` saying where it looked."""
    if "." not in task_name:
        raise UsageError(f"name the task as ENV.TASK, got {task_name!r}")
    backend = session.backend
    if backend.task_history is None:
        raise UsageError(
            f"backend {backend.name!r} ({session.config.source_of('backend')}) keeps no history it can show"
        )
    versions = backend.task_history(session.config, task_name)
    if not versions:
        project, domain = scope(session.config)
        raise UsageError(f"task {task_name} was never deployed to {project}/{domain} on backend {backend.name!r}")
    return versions


def scope(config: Config) -> tuple[str, str]:
    """The project and domain a deploy with ``config`` registers in (defaults included)."""
    return str(config.get("project")), str(config.get("domain"))


# -- the built-in backends' reads -----------------------------------------------------------


def _stored_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _from_record(record: Any) -> DeployedTask:
    return DeployedTask(
        name=record.name,
        environment=record.environment,
        version=record.version,
        spec=record.task_spec(),
        deployed_at=_stored_time(record.deployed_at),
        bundle_digest=record.bundle_digest,
        source_link=record.source_link or "",
    )


def local_deployed_tasks(config: Config, environments: Sequence[str]) -> dict[str, DeployedTask]:
    """The local backend's ``deployed_tasks``: read from the store, writing nothing."""
    from .store import Store
    from .store.database import latest_of_environments

    project, domain = scope(config)
    records = latest_of_environments(Store.at(config.store_url), project, domain, environments)
    return {r.name: _from_record(r) for r in records}


def local_task_history(config: Config, task_name: str) -> list[DeployedTask]:
    """The local backend's ``task_history``: read from the store, writing nothing."""
    from .store import Store
    from .store.database import task_versions

    project, domain = scope(config)
    return [_from_record(r) for r in task_versions(Store.at(config.store_url), project, domain, task_name)]


def _deployed_version(connection: TaskServiceConnection, name: str, row: Any) -> DeployedTask | None:
    """One ``ListVersions`` row of task ``name`` with its spec (``GetTaskDetails``), or None
    when the version is gone meanwhile."""
    from flyteidl2.task.task_definition_pb2 import TaskIdentifier

    settings = connection.settings
    spec = connection.get_spec(
        TaskIdentifier(
            org=settings.org, project=settings.project, domain=settings.domain, name=name, version=row.version
        )
    )
    if spec is None:
        return None
    return DeployedTask(
        name=name,
        environment=spec.environment.name,
        version=row.version,
        spec=spec,
        deployed_at=row.deployed_at.ToDatetime(tzinfo=UTC) if row.HasField("deployed_at") else None,
        bundle_digest=bundle_digest(spec),
        source_link=spec.documentation.source_code.link,
    )


def _ranked_versions(connection: TaskServiceConnection, name: str) -> list[Any]:
    """The ``ListVersions`` rows of task ``name``, first deployed first, in the order
    ``task_specs.version_rank`` defines (the latest, the one ``run`` picks, last)."""
    from flyteidl2.task.task_definition_pb2 import TaskIdentifier

    from .task_specs import version_rank

    settings = connection.settings
    task_id = TaskIdentifier(org=settings.org, project=settings.project, domain=settings.domain, name=name)
    return sorted(connection.list_versions(task_id), key=version_rank)


def remote_deployed_tasks(config: Config, environments: Sequence[str]) -> dict[str, DeployedTask]:
    """The remote backend's ``deployed_tasks``: ``ListTasks``, then the latest version of
    each task of ``environments``, ``remote.concurrency`` tasks at once."""
    wanted = set(environments)

    def latest(connection: TaskServiceConnection, name: str) -> DeployedTask | None:
        rows = _ranked_versions(connection, name)
        return _deployed_version(connection, name, rows[-1]) if rows else None

    with _connect(config) as connection:
        settings = connection.settings
        names = sorted(
            task.task_id.name
            for task in connection.list_tasks(settings.project, settings.domain)
            if (task.metadata.environment_name or task.task_id.name.partition(".")[0]) in wanted
        )
        found = _concurrently(connection, lambda name: latest(connection, name), names)
    return {t.name: t for t in found if t is not None}


def remote_task_history(config: Config, task_name: str) -> list[DeployedTask]:
    """The remote backend's ``task_history``: ``ListVersions``, then each version's spec."""
    with _connect(config) as connection:
        rows = _ranked_versions(connection, task_name)
        found = _concurrently(connection, lambda row: _deployed_version(connection, task_name, row), rows)
    return [t for t in found if t is not None]


def _connect(config: Config) -> TaskServiceConnection:
    from .remote import RemoteSettings, TaskServiceConnection, read_token

    settings = RemoteSettings.from_config(config)
    return TaskServiceConnection(settings, read_token(settings, config.environ))


def _concurrently(connection: TaskServiceConnection, call: Callable[[Any], R], items: Sequence[Any]) -> list[R]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=connection.settings.concurrency) as pool:
        return list(pool.map(call, items))


__all__ = [
    "FIELDS",
    "Diff",
    "DiffEntry",
    "FieldChange",
    "bundle_digest",
    "changes",
    "diff_tasks",
    "run_diff",
    "spec_differences",
    "task_history",
]

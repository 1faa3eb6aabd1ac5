"""What a deploy would change (``flyte-deploy diff``) and what was deployed (``history``).

The diff runs the lifecycle as ``check`` does (a dry run up to and including
``check_plan``: nothing uploaded, built or registered), reads what the backend holds for
the plan (``Backend.deployed_tasks``: the latest deployed version of every task of the
plan's environments; ``Backend.deployed_apps``: the current revision of each planned app)
and compares each planned ``TaskSpec`` or ``app.App`` with it:

* ``new``: the task or app was never deployed in the configured project and domain;
* ``unchanged``: the same spec once what two deploys of one spec differ in is set aside:
  the deploy version (a task's identifier, an app's ``flyte-deploy/version`` label, the
  container's ``--version``), the source link and, for an app, its revision, status and
  what the control plane fills in (creator, org);
* ``changed``: the ``FieldChange`` of each field that differs, by a meaningful name
  (``FIELDS`` for tasks: image, resources, interface, default inputs, env vars, secrets,
  bundle digest, retries, timeout, cache, ...; ``APP_FIELDS`` for apps: image, resources,
  scaling, port, env vars, secrets, requires auth, ingress, timeouts, parameters, command,
  ...), with its protobuf paths and both values;
* ``removed`` (tasks only): deployed in an environment of the plan, and no longer in it.
  An app environment always plans its app, so an app is never removed by a plan.

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
from .types import (
    APP_VERSION_LABEL,
    DeployedApp,
    DeployedTask,
    DeployRequest,
    SerializedApp,
    SerializedTask,
    Violation,
    without_app_revision,
    without_source_link,
)

if TYPE_CHECKING:
    from flyteidl2.app.app_definition_pb2 import App
    from flyteidl2.task.task_definition_pb2 import TaskSpec
    from google.protobuf.message import Message

    from .config import Config
    from .remote import AppServiceConnection, ConnectConnection, TaskServiceConnection
    from .session import DeploySession

R = TypeVar("R")
Status = Literal["new", "unchanged", "changed", "removed"]
STATUSES: tuple[Status, ...] = ("new", "changed", "removed", "unchanged")

#: the container argument naming the code bundle; ``--version`` is set aside
_BUNDLE_FLAG, _VERSION_FLAG = "--tgz", "--version"
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


def _at(message: Any, path: str) -> Any:
    """The value at dotted ``path`` of ``message``."""
    for name in path.split("."):
        message = getattr(message, name)
    return message


@dataclass(frozen=True)
class SpecField:
    """A meaningful name for the protobuf paths under ``prefixes``, and how its value reads;
    ``flag``: a container argument whose value belongs to this field (compared on its own,
    not as part of the command)."""

    name: str
    prefixes: tuple[str, ...]
    show: Callable[[Any], str]
    flag: str = ""

    def covers(self, path: str) -> bool:
        return any(path == p or path.startswith(p + ".") for p in self.prefixes)


@dataclass(frozen=True)
class Shape:
    """Where one kind of spec (a task's ``TaskSpec``, an app's ``app.App``) keeps what a diff
    reads: the dotted paths of its ``container`` and of its metadata's ``bundle_field``, its
    named ``fields``, and ``set_aside``: a copy without what two deploys of one spec differ
    in besides the container's flags (version, source link, ...)."""

    kind: Literal["task", "app"]
    container: str
    bundle_field: str
    fields: tuple[SpecField, ...]
    set_aside: Callable[[Any], Any]


def _flag(spec: Message, shape: Shape, flag: str) -> tuple[str, str]:
    """The value following ``flag`` in the container's command or arguments and the path of
    the one holding it (``("", "")`` without one)."""
    container = _at(spec, shape.container)
    for part in ("command", "args"):
        values = list(getattr(container, part))
        if flag in values[:-1]:
            return values[values.index(flag) + 1], f"{shape.container}.{part}"
    return "", ""


def bundle_uri(spec: Message, shape: Shape | None = None) -> str:
    """The code bundle a task or app runs: the container's ``--tgz`` argument, else the
    metadata's ``code_bundle_uri`` (``""`` without a bundle)."""
    shape = shape or TASK
    return _flag(spec, shape, _BUNDLE_FLAG)[0] or str(_at(spec, shape.bundle_field))


def bundle_digest(spec: Message, shape: Shape | None = None) -> str | None:
    """The content digest naming the bundle (``<digest>.tar.gz``), or None."""
    found = _BUNDLE_NAME.search(bundle_uri(spec, shape))
    return found.group(1) if found else None


def comparable(spec: Message, shape: Shape | None = None) -> Message:
    """A copy of ``spec`` without what differs between two deploys that change nothing it
    runs (``Shape.set_aside``, the ``--version`` argument) and without what is compared on
    its own: the bundle and the value of each field's flag."""
    shape = shape or TASK
    copy = shape.set_aside(spec)
    parent, _, name = shape.bundle_field.rpartition(".")
    setattr(_at(copy, parent), name, "")
    flags = {_VERSION_FLAG, _BUNDLE_FLAG} | {f.flag for f in shape.fields if f.flag}
    container = _at(copy, shape.container)
    for values in (container.command, container.args):
        for index in range(len(values) - 1):
            if values[index] in flags:
                values[index + 1] = ""
    return copy


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


def _resources(container: Any, extended: Any) -> str:
    from flyteidl2.core import tasks_pb2

    names = tasks_pb2.Resources.ResourceName
    parts = [
        f"{label} " + " ".join(f"{names.Name(e.name).lower()}={e.value}" for e in entries)
        for label, entries in (("requests", container.resources.requests), ("limits", container.resources.limits))
        if entries
    ]
    device = extended.gpu_accelerator.device
    return "; ".join(parts + ([f"gpu {device}"] if device else [])) or "none"


def _cache(spec: TaskSpec) -> str:
    meta = spec.task_template.metadata
    if not meta.discoverable:
        return "off"
    extra = ", serialized" if meta.cache_serializable else ""
    ignored = f", ignoring {', '.join(meta.cache_ignore_input_vars)}" if meta.cache_ignore_input_vars else ""
    return f"on (version {meta.discovery_version}{extra}{ignored})"


def _duration(message: Any, name: str) -> str:
    return getattr(message, name).ToJsonString() if message.HasField(name) else "none"


def _secrets(secrets: Sequence[Any]) -> str:
    shown = [f"{s.group + '/' if s.group else ''}{s.key}" + (f" as {s.env_var}" if s.env_var else "") for s in secrets]
    return ", ".join(shown) or "none"


def _env(container: Any) -> str:
    return ", ".join(f"{e.key}={e.value}" for e in container.env) or "none"


def _command(spec: Message, shape: Shape) -> str:
    container = _at(comparable(spec, shape), shape.container)
    return " ".join([*container.command, *(a for a in container.args if a)])


def _image_lookup(spec: Message, shape: Shape) -> str:
    """The flyte SDK's ``--image-cache`` (a gzipped, base64 JSON of every environment's image)."""
    value = _flag(spec, shape, "--image-cache")[0]
    try:
        lookup = _unpacked(value)["image_lookup"]
    except (ValueError, KeyError, TypeError, OSError):
        return value or "none"
    return ", ".join(f"{env}={uri}" for env, uri in sorted(lookup.items()))


def _unpacked(value: str) -> Any:
    """The JSON of a flyte SDK container argument (gzipped, base64)."""
    import base64
    import gzip
    import json

    return json.loads(gzip.decompress(base64.b64decode(value)))


#: the fields a task diff names, in the order it lists them; a path none covers is shown as is
FIELDS: tuple[SpecField, ...] = (
    SpecField("image", ("task_template.container.image",), lambda s: s.task_template.container.image),
    SpecField(
        "resources",
        ("task_template.container.resources", "task_template.extended_resources"),
        lambda s: _resources(s.task_template.container, s.task_template.extended_resources),
    ),
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
    SpecField("env vars", ("task_template.container.env",), lambda s: _env(s.task_template.container)),
    SpecField(
        "secrets", ("task_template.security_context",), lambda s: _secrets(s.task_template.security_context.secrets)
    ),
    SpecField("retries", ("task_template.metadata.retries",), lambda s: str(s.task_template.metadata.retries.retries)),
    SpecField("timeout", ("task_template.metadata.timeout",), lambda s: _duration(s.task_template.metadata, "timeout")),
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
    SpecField(
        "command", ("task_template.container.command", "task_template.container.args"), lambda s: _command(s, TASK)
    ),
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
    SpecField("image lookup", (), lambda s: _image_lookup(s, TASK), flag="--image-cache"),
)


def _scaling(app: App) -> str:
    scaling = app.spec.autoscaling
    parts = [f"replicas {scaling.replicas.min}-{scaling.replicas.max}"]
    if scaling.HasField("scaledown_period"):
        parts.append(f"scaledown after {scaling.scaledown_period.ToJsonString()}")
    metric = scaling.scaling_metric.WhichOneof("metric")
    if metric:
        parts.append(f"{metric.replace('_', ' ')} {getattr(scaling.scaling_metric, metric).target_value}")
    return ", ".join(parts)


def _ingress(app: App) -> str:
    ingress = app.spec.ingress
    parts = [f"subdomain {ingress.subdomain}"] if ingress.subdomain else []
    parts += [f"custom domain {ingress.cname}"] if ingress.cname else []
    return ", ".join(parts + (["private"] if ingress.private else [])) or "default"


def _parameters(app: App) -> str:
    """The app's parameters: the flyte SDK's ``--parameters`` (with the env var each is
    exposed as), else its ``spec.inputs``."""
    value = _flag(app, APP, "--parameters")[0]
    try:
        shown = [
            f"{p['name']}={p.get('value')}" + (f" as {p['env_var']}" if p.get("env_var") else "")
            for p in _unpacked(value)["parameters"]
        ]
    except (ValueError, KeyError, TypeError, OSError):
        shown = [f"{i.name}={i.string_value or _one_line(i)}" for i in app.spec.inputs.items]
    return ", ".join(shown) or "none"


def _labels(app: App) -> str:
    labels = sorted((k, v) for k, v in app.metadata.labels.items() if k != APP_VERSION_LABEL)
    return ", ".join(f"{k}={v}" for k, v in labels) or "none"


#: the fields an app diff names, in the order it lists them; a path none covers is shown as is
APP_FIELDS: tuple[SpecField, ...] = (
    SpecField("image", ("spec.container.image",), lambda a: a.spec.container.image),
    SpecField(
        "resources",
        ("spec.container.resources", "spec.extended_resources"),
        lambda a: _resources(a.spec.container, a.spec.extended_resources),
    ),
    SpecField("scaling", ("spec.autoscaling",), _scaling),
    SpecField(
        "port",
        ("spec.container.ports",),
        lambda a: (
            ", ".join(f"{p.container_port}" + (f" ({p.name})" if p.name else "") for p in a.spec.container.ports)
            or "none"
        ),
    ),
    SpecField("env vars", ("spec.container.env",), lambda a: _env(a.spec.container)),
    SpecField("secrets", ("spec.security_context.secrets",), lambda a: _secrets(a.spec.security_context.secrets)),
    SpecField(
        "requires auth",
        ("spec.security_context.allow_anonymous",),
        lambda a: str(not a.spec.security_context.allow_anonymous).lower(),
    ),
    SpecField(
        "service account",
        ("spec.security_context.run_as",),
        lambda a: a.spec.security_context.run_as.k8s_service_account or _one_line(a.spec.security_context.run_as),
    ),
    SpecField("ingress", ("spec.ingress",), _ingress),
    SpecField("timeouts", ("spec.timeouts",), lambda a: f"request {_duration(a.spec.timeouts, 'request_timeout')}"),
    SpecField("parameters", ("spec.inputs",), _parameters, flag="--parameters"),
    SpecField("command", ("spec.container.command", "spec.container.args"), lambda a: _command(a, APP)),
    SpecField(
        "cluster pool",
        ("spec.cluster_pool", "spec.cluster"),
        lambda a: a.spec.cluster_pool + (f" (cluster {a.spec.cluster})" if a.spec.cluster else ""),
    ),
    SpecField(
        "links",
        ("spec.links",),
        lambda a: ", ".join(f"{link.title} {link.path}" for link in a.spec.links) or "none",
    ),
    SpecField(
        "description",
        ("spec.profile",),
        lambda a: a.spec.profile.short_description or "none",
    ),
    SpecField(
        "desired state",
        ("spec.desired_state",),
        lambda a: type(a.spec).DesiredState.Name(a.spec.desired_state).removeprefix("DESIRED_STATE_").lower(),
    ),
    SpecField(
        "runtime",
        ("spec.runtime_metadata",),
        lambda a: f"{a.spec.runtime_metadata.flavor} {a.spec.runtime_metadata.version}",
    ),
    SpecField("pod template", ("spec.pod",), lambda a: _one_line(a.spec.pod) or "none"),
    SpecField("labels", ("metadata.labels",), _labels),
    SpecField("image lookup", (), lambda a: _image_lookup(a, APP), flag="--image-cache"),
)


def _task_aside(spec: TaskSpec) -> TaskSpec:
    copy = without_source_link(spec)
    copy.task_template.id.version = ""
    return copy


def _app_aside(app: App) -> App:
    copy = without_app_revision(app)
    copy.metadata.labels.pop(APP_VERSION_LABEL, None)
    copy.metadata.id.org = ""  # the control plane's, as the creator
    copy.spec.ClearField("creator")
    return copy


TASK: Shape = Shape("task", "task_template.container", "task_template.metadata.code_bundle_uri", FIELDS, _task_aside)
APP: Shape = Shape("app", "spec.container", "metadata.code_bundle_uri", APP_FIELDS, _app_aside)


@dataclass(frozen=True)
class FieldChange:
    """One changed field of a task or app: its name (``FIELDS``/``APP_FIELDS``, ``bundle
    digest``, ``bundle location``, or a protobuf path no field covers), the protobuf paths
    that differ, and the deployed and planned values as text."""

    field: str
    paths: tuple[str, ...]
    before: str
    after: str

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "paths": list(self.paths), "before": self.before, "after": self.after}


def changes(deployed: Message, planned: Message, shape: Shape | None = None) -> tuple[FieldChange, ...]:
    """The fields in which ``planned`` differs from ``deployed``, two specs of ``shape``
    (default: tasks; module docstring)."""
    shape = shape or TASK
    found: list[FieldChange] = []
    where = (_flag(planned, shape, _BUNDLE_FLAG)[1] or _flag(deployed, shape, _BUNDLE_FLAG)[1] or shape.bundle_field,)
    old_digest, new_digest = bundle_digest(deployed, shape), bundle_digest(planned, shape)
    if old_digest != new_digest:
        found.append(FieldChange("bundle digest", where, old_digest or "none", new_digest or "none"))
    elif bundle_uri(deployed, shape) != bundle_uri(planned, shape):
        found.append(FieldChange("bundle location", where, bundle_uri(deployed, shape), bundle_uri(planned, shape)))
    paths = spec_differences(comparable(deployed, shape), comparable(planned, shape))
    for spec_field in shape.fields:
        covered = tuple(p for p in paths if spec_field.covers(p))
        if spec_field.flag:
            (old, old_path), (new, new_path) = (_flag(s, shape, spec_field.flag) for s in (deployed, planned))
            if old != new:
                covered += (new_path or old_path,)
        if covered:
            before, after = spec_field.show(deployed), spec_field.show(planned)
            if before == after:  # the difference is in a detail its rendering leaves out
                before, after = _raw(deployed, covered), _raw(planned, covered)
            found.append(FieldChange(spec_field.name, covered, before, after))
    found += [
        FieldChange(p, (p,), _raw(deployed, [p]), _raw(planned, [p]))
        for p in paths
        if not any(f.covers(p) for f in shape.fields)
    ]
    return tuple(found)


def _raw(spec: Message, paths: Sequence[str]) -> str:
    """``path=value`` of each of ``paths`` in ``spec`` (messages on one line)."""
    shown = []
    for path in paths:
        value = _at(spec, path)
        text = _one_line(value) if hasattr(value, "ListFields") else str(value)
        shown.append(f"{path}={text}")
    return "; ".join(shown)


# -- a diff -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffEntry:
    """One task or app (``kind``) of a diff: its ``status``, the deployed version (the
    latest one of a task, the current revision's of an app; None when ``new``), the planned
    version (None when ``removed``), an app's deployed ``deployed_revision`` and, when
    ``changed``, its changes."""

    name: str
    environment: str
    status: Status
    deployed_version: str | None
    planned_version: str | None
    changes: tuple[FieldChange, ...] = ()
    kind: Literal["task", "app"] = "task"
    deployed_revision: int | None = None

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
            "deployed_revision": self.deployed_revision,
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True)
class Diff:
    """What deploying the plan would change on ``backend`` in ``project``/``domain``:
    one entry per planned task and app, in deploy order, then one per removed task. The
    JSON lists them all under ``tasks``, each with its ``kind``."""

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


def diff_apps(planned: Sequence[SerializedApp], deployed: Mapping[str, DeployedApp]) -> tuple[DiffEntry, ...]:
    """Each planned app against the revision the backend holds (``deployed``, by name)."""
    entries = []
    for app in planned:
        old = deployed.get(app.name)
        if old is None:
            entries.append(DiffEntry(app.name, app.environment, "new", None, app.version, kind="app"))
            continue
        found = changes(old.spec, app.spec, APP)
        status: Status = "changed" if found else "unchanged"
        entries.append(
            DiffEntry(app.name, app.environment, status, old.version, app.version, found, "app", old.revision)
        )
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
    if result.apps and backend.deployed_apps is None:
        raise UsageError(
            f"backend {backend.name!r} ({session.config.source_of('backend')}) cannot tell which apps it holds,"
            f" so it cannot diff app {result.apps[0].name}"
        )
    tasks = diff_tasks(result.tasks, backend.deployed_tasks(session.config, result.environments))
    apps = (
        diff_apps(result.apps, backend.deployed_apps(session.config, [a.name for a in result.apps]))
        if result.apps and backend.deployed_apps is not None
        else ()
    )
    order = {name: index for index, name in enumerate(result.environments)}
    planned = sorted((e for e in (*tasks, *apps) if e.status != "removed"), key=lambda e: order[e.environment])
    entries = (*planned, *(e for e in tasks if e.status == "removed"))
    project, domain = scope(session.config)
    diff = Diff(backend.name, project, domain, result.version, entries)
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


def app_history(session: DeploySession, name: str) -> Sequence[DeployedApp]:
    """Every revision of app ``name`` the session's backend still knows, oldest first; an app
    never deployed is a ``UsageError`` saying where it looked."""
    backend = session.backend
    if backend.app_history is None:
        raise UsageError(
            f"backend {backend.name!r} ({session.config.source_of('backend')}) keeps no app history it can show"
        )
    revisions = backend.app_history(session.config, name)
    if not revisions:
        project, domain = scope(session.config)
        hint = "" if "." in name else " (a task is named ENV.TASK)"
        raise UsageError(f"app {name} was never deployed to {project}/{domain} on backend {backend.name!r}{hint}")
    return revisions


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


def _from_app_record(record: Any) -> DeployedApp:
    return DeployedApp(
        name=record.name,
        version=record.version,
        revision=record.revision,
        spec=record.app(),
        deployed_at=_stored_time(record.deployed_at),
        bundle_digest=record.bundle_digest,
        source_link=record.source_link or "",
    )


def local_deployed_apps(config: Config, names: Sequence[str]) -> dict[str, DeployedApp]:
    """The local backend's ``deployed_apps``: the latest revision of each, read from the store."""
    from .store import Store
    from .store.database import latest_apps

    project, domain = scope(config)
    return {r.name: _from_app_record(r) for r in latest_apps(Store.at(config.store_url), project, domain, names)}


def local_app_history(config: Config, name: str) -> list[DeployedApp]:
    """The local backend's ``app_history``: every revision the store keeps, read from it."""
    from .store import Store
    from .store.database import app_revisions

    project, domain = scope(config)
    return [_from_app_record(r) for r in app_revisions(Store.at(config.store_url), project, domain, name)]


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


def _from_app(app: App) -> DeployedApp:
    """What a control plane holds for an app: its current revision, deployed when that
    revision's first condition says (None without one)."""
    revision = app.metadata.revision
    stamps = [
        c.last_transition_time.ToDatetime(tzinfo=UTC)
        for c in app.status.conditions
        if c.revision == revision and c.HasField("last_transition_time")
    ]
    return DeployedApp(
        name=app.metadata.id.name,
        version=app.metadata.labels.get(APP_VERSION_LABEL, ""),
        revision=revision,
        spec=app,
        deployed_at=min(stamps) if stamps else None,
        bundle_digest=bundle_digest(app, APP),
        source_link=app.metadata.source_code.link,
    )


def remote_deployed_apps(config: Config, names: Sequence[str]) -> dict[str, DeployedApp]:
    """The remote backend's ``deployed_apps``: ``AppService.Get`` of each, ``remote.concurrency`` at once."""
    with _connect_apps(config) as connection:
        found = _concurrently(connection, lambda name: connection.get(connection.app_id(name)), names)
    return {app.metadata.id.name: _from_app(app) for app in found if app is not None}


def remote_app_history(config: Config, name: str) -> list[DeployedApp]:
    """The remote backend's ``app_history``: the current revision only (``AppService.Get``),
    since the AppService offers no listing of an app's past revisions."""
    with _connect_apps(config) as connection:
        app = connection.get(connection.app_id(name))
    return [] if app is None else [_from_app(app)]


def _connect_apps(config: Config) -> AppServiceConnection:
    from .remote import AppServiceConnection, RemoteSettings, read_token

    settings = RemoteSettings.from_config(config)
    return AppServiceConnection(settings, read_token(settings, config.environ))


def _connect(config: Config) -> TaskServiceConnection:
    from .remote import RemoteSettings, TaskServiceConnection, read_token

    settings = RemoteSettings.from_config(config)
    return TaskServiceConnection(settings, read_token(settings, config.environ))


def _concurrently(connection: ConnectConnection, call: Callable[[Any], R], items: Sequence[Any]) -> list[R]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=connection.settings.concurrency) as pool:
        return list(pool.map(call, items))


__all__ = [
    "APP",
    "APP_FIELDS",
    "FIELDS",
    "TASK",
    "Diff",
    "DiffEntry",
    "FieldChange",
    "bundle_digest",
    "app_history",
    "changes",
    "diff_apps",
    "diff_tasks",
    "run_diff",
    "spec_differences",
    "task_history",
]

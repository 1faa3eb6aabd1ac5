"""flyte-deploy-policy: an organization's deploy rules, as a flyte-deploy policy plugin.

Installed, it registers through the ``flyte_deploy.policy`` entry point group as
``org_policy``: it loads after every other plugin, cannot be disabled with ``-p no:``, and
its ``check_plan`` sees the whole plan before anything is built, uploaded or registered.

Rules (ids as reported), configured in ``[tool.flyte-deploy.plugin.org_policy]``. Flyte
apps (``plan.apps``) are policed as tasks are: their container's limits, image and
environment variables.

* ``resources.limits``: every task's and app's container sets a limit for each of
  ``require_limits`` (default ``["cpu", "memory"]``; ``[]`` turns the rule off). A single
  value in ``Resources`` is a request; ``(request, limit)`` sets the limit.
* ``image.registry``: every image a task or app runs comes from one of
  ``allowed_registries`` (``"host"`` or ``"host/path"`` prefixes; unset: any registry).
* ``env.secret``: no environment variable (environment, app, task, container or image)
  holds a secret-looking value; names in ``allowed_env_vars`` are exempt, ``secret_patterns`` adds
  regular expressions. Values are never printed.
* ``bundle.forbidden-file``: no bundled file matches ``forbidden_files`` (globs on the name
  or the relative path; default: ``.env`` files, private keys, credential files), unless it
  matches ``allowed_files`` (default: ``*.example``, ``*.sample``, ``*.template``).
* ``bundle.private-key``: no bundled file contains a PEM private key.
* ``bundle.size``: the bundle archive is at most ``max_bundle_size`` (default ``"100MB"``;
  ``false`` turns the rule off).
* ``version.pattern``: the deploy version fully matches ``version_pattern`` (unset: any).
* ``interface.frozen`` (``flyte-deploy diff``, through ``check_diff``): no deployed task of a
  domain in ``frozen_interface_domains`` (default: none) changes its interface.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyte_deploy import DeployPlan, DeploySession, SerializedTask, Task, UsageError, Violation, hookimpl
from flyte_deploy.diffing import Diff
from flyte_deploy.environments import Environment, is_app
from flyte_deploy.types import SerializedApp

__version__ = "0.1.0"

#: the ``[tool.flyte-deploy.plugin.NAME]`` table this plugin reads, however it was loaded
CONFIG_NAME = "org_policy"

DEFAULT_FORBIDDEN_FILES = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.ppk",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "*credentials*.json",
    "service-account*.json",
    "*.tfstate",
    ".aws/credentials",
    ".docker/config.json",
    ".kube/config",
)
DEFAULT_ALLOWED_FILES = ("*.example", "*.sample", "*.template")

#: value formats that are secrets whatever the variable is called
SECRET_VALUE_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("a GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
        ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
        ("a Stripe live key", r"\b[sr]k_live_[0-9A-Za-z]{16,}"),
        ("a JSON web token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        ("a private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        ("a URL with a password", r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
    )
)
#: variable names that say their value is a secret
SECRET_NAME = re.compile(
    r"(?:^|_)(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|CREDENTIALS?|(?:API|ACCESS|PRIVATE|SIGNING|SECRET)_?KEY)(?:_|$)"
)
#: values that refer to a secret rather than hold one
REFERENCE_VALUE = re.compile(r"^(?:\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{.*\}\}|/.*|\./.*|~/.*)$")
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
#: bundled files larger than this are not scanned for private keys
SCAN_LIMIT = 1 << 20

SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
LIMIT_NAMES = {"CPU": "cpu", "MEMORY": "memory", "GPU": "gpu", "EPHEMERAL_STORAGE": "disk", "STORAGE": "storage"}


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyConfig:
    """The rules' settings, from ``[tool.flyte-deploy.plugin.org_policy]``."""

    require_limits: tuple[str, ...] = ("cpu", "memory")
    allowed_registries: tuple[str, ...] | None = None
    allowed_env_vars: tuple[str, ...] = ()
    secret_patterns: tuple[re.Pattern[str], ...] = ()
    forbidden_files: tuple[str, ...] = DEFAULT_FORBIDDEN_FILES
    allowed_files: tuple[str, ...] = DEFAULT_ALLOWED_FILES
    max_bundle_size: int | None = 100 * 1000**2
    version_pattern: re.Pattern[str] | None = None
    frozen_interface_domains: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> PolicyConfig:
        """Validate ``table``; a bad or unknown setting is a ``UsageError`` naming it."""
        known = set(cls.__dataclass_fields__)
        for key in table:
            if key not in known:
                raise UsageError(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for key in (
            "require_limits",
            "allowed_registries",
            "allowed_env_vars",
            "forbidden_files",
            "allowed_files",
            "frozen_interface_domains",
        ):
            if key in table:
                values[key] = _strings(table[key], f"{where}: {key}")
        if "require_limits" in values:
            unknown = sorted(set(values["require_limits"]) - set(LIMIT_NAMES.values()))
            if unknown:
                raise UsageError(
                    f"{where}: require_limits names unknown resources {unknown}"
                    f" (known: {', '.join(LIMIT_NAMES.values())})"
                )
        if "allowed_registries" in values:
            values["allowed_registries"] = tuple(r.rstrip("/") for r in values["allowed_registries"])
        if "secret_patterns" in table:
            values["secret_patterns"] = tuple(
                _regex(p, f"{where}: secret_patterns")
                for p in _strings(table["secret_patterns"], f"{where}: secret_patterns")
            )
        if "max_bundle_size" in table:
            values["max_bundle_size"] = parse_size(table["max_bundle_size"], f"{where}: max_bundle_size")
        if "version_pattern" in table:
            if not isinstance(table["version_pattern"], str):
                raise UsageError(f"{where}: version_pattern must be a regular expression string")
            values["version_pattern"] = _regex(table["version_pattern"], f"{where}: version_pattern")
        return cls(**values)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where} must be a list of strings, got {value!r}")
    return tuple(value)


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None


def parse_size(value: Any, where: str) -> int | None:
    """Bytes from an int or a string like ``"50MB"``, ``"1.5 GiB"``; ``false`` means no limit."""
    if value is False:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value) if isinstance(value, str) else None
    if match is None or match.group(2).lower() not in SIZE_UNITS:
        raise UsageError(f'{where} must be a positive byte count or a size like "50MB" or "1GiB", got {value!r}')
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def human_size(size: int) -> str:
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def load_config(session: DeploySession) -> PolicyConfig:
    where = f"{session.config.pyproject_path or 'pyproject.toml'} [tool.flyte-deploy.plugin.{CONFIG_NAME}]"
    return PolicyConfig.from_table(session.config.plugin_config(CONFIG_NAME), where)


# -- rules -------------------------------------------------------------------------------------


def _where(task: Task, root: Path) -> str:
    path = Path(task.source_file)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(root)
    return f"{path}:{task.func.__code__.co_firstlineno}"


def _container(serialized: SerializedTask | SerializedApp) -> Any | None:
    """The container a serialized task or app runs, or None (e.g. a pod template)."""
    if isinstance(serialized, SerializedApp):
        return serialized.spec.spec.container if serialized.spec.spec.HasField("container") else None
    template = serialized.spec.task_template
    return template.container if template.HasField("container") else None


def container_limits(serialized: SerializedTask | SerializedApp) -> set[str]:
    """Names of the resources the serialized task's or app's container sets a limit for."""
    container = _container(serialized)
    if container is None:
        return set()
    names = type(container.resources).ResourceName
    return {LIMIT_NAMES.get(names.Name(e.name), names.Name(e.name).lower()) for e in container.resources.limits}


def _app_where(env: Environment, root: Path) -> str:
    file, _, line = env.location.rpartition(":")
    path = Path(file)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(root)
    return f"{path}:{line}"


def check_limits(plan: DeployPlan, config: PolicyConfig) -> Iterator[Violation]:
    """``resources.limits``: each task's and app's serialized container (what is
    registered) sets a limit for every resource in ``require_limits``. A request alone is
    not a limit: in ``Resources(cpu=1)`` the 1 is a request; ``Resources(cpu=(1, 2))`` also
    limits it."""
    if not config.require_limits:
        return
    tasks = {task.name: (env, task) for env in plan.environments for task in env.tasks.values()}
    for serialized in plan.tasks:
        limits = container_limits(serialized)
        missing = [name for name in config.require_limits if name not in limits]
        if not missing:
            continue
        env, task = tasks.get(serialized.name, (None, None))
        where = f" (defined at {_where(task, plan.root_dir)})" if task is not None else ""
        owner = f" or environment {env.name!r}" if env is not None else ""
        yield Violation(
            "resources.limits",
            serialized.name,
            f"declares no {' or '.join(missing)} limit{where}; set"
            f" resources=Resources({', '.join(f'{m}=(request, limit)' for m in missing)}) on the task{owner}",
        )
    environments = {env.name: env for env in plan.environments}
    for app in plan.apps:
        missing = [name for name in config.require_limits if name not in container_limits(app)]
        if missing:
            app_env = environments.get(app.environment)
            where = f" (defined at {_app_where(app_env, plan.root_dir)})" if app_env is not None else ""
            yield Violation(
                "resources.limits",
                app.name,
                f"app declares no {' or '.join(missing)} limit{where}; set"
                f" resources=Resources({', '.join(f'{m}=(request, limit)' for m in missing)}) on the app",
            )


def image_repository(uri: str) -> str | None:
    """``host/path`` of an image reference, Docker Hub names expanded
    (``python:3.11`` is ``docker.io/library/python``); None for a bare local name."""
    name = uri.split("@", 1)[0]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return f"{first}/{rest.rsplit(':', 1)[0]}"
    path = name.rsplit(":", 1)[0]
    return f"docker.io/{path if sep else 'library/' + path}"


def check_registries(plan: DeployPlan, config: PolicyConfig) -> Iterator[Violation]:
    """``image.registry``: each environment's (and app's) image, and each serialized task's
    or app's container image, lies under one of ``allowed_registries``."""
    if config.allowed_registries is None:
        return
    allowed = ", ".join(config.allowed_registries) or "none"
    subjects: dict[str, str] = {}
    for env_name, image in plan.images.items():
        if not image.prebuilt and not image.registry:
            yield Violation(
                "image.registry",
                env_name,
                f"image {image.uri} has no registry to be pushed to; allowed registries: {allowed}",
            )
            continue
        subjects.setdefault(image.uri, env_name)
    for serialized in (*plan.tasks, *plan.apps):
        container = _container(serialized)
        if (
            container is not None
            and container.image
            and container.image not in subjects
            and container.image not in (i.uri for i in plan.images.values())
        ):
            subjects.setdefault(container.image, serialized.name)
    for uri, subject in subjects.items():
        repository = image_repository(uri) or uri
        if not any(repository == r or repository.startswith(r + "/") for r in config.allowed_registries):
            yield Violation(
                "image.registry", subject, f"image {uri} is not from an allowed registry (allowed: {allowed})"
            )


def secret_reason(name: str, value: str, config: PolicyConfig) -> str | None:
    """Why ``name=value`` looks like a secret, or None. Never includes the value."""
    if name in config.allowed_env_vars or not value.strip():
        return None
    for label, pattern in SECRET_VALUE_FORMATS:
        if pattern.search(value):
            return f"the value looks like {label}"
    for pattern in config.secret_patterns:
        if pattern.search(value):
            return f"the value matches secret_patterns {pattern.pattern!r}"
    if SECRET_NAME.search(name.upper()) and not REFERENCE_VALUE.match(value.strip()):
        return "the name says it holds a secret and the value is a literal"
    return None


def _env_sources(plan: DeployPlan) -> Iterator[tuple[str, str, Iterable[tuple[str, str]]]]:
    """(subject, where, pairs) for every place the plan sets environment variables."""
    for env in plan.environments:
        yield env.name, "app" if is_app(env) else "environment", env.env_vars.items()
        image = plan.images.get(env.name)
        if image is not None:
            yield (
                env.name,
                "image",
                [tuple(pair) for layer in image.layers if layer.kind == "env" for pair in layer.values],
            )
        for task in env.tasks.values():
            yield task.name, "task", task.env_vars.items()
    for serialized in (*plan.tasks, *plan.apps):
        container = _container(serialized)
        if container is not None:
            yield serialized.name, "container", [(kv.key, kv.value) for kv in container.env]


def check_env_secrets(plan: DeployPlan, config: PolicyConfig) -> Iterator[Violation]:
    """``env.secret``: no environment variable holds a secret-looking literal."""
    reported: set[tuple[str, str]] = set()
    for subject, where, pairs in _env_sources(plan):
        for name, value in pairs:
            reason = secret_reason(str(name), str(value), config)
            environment = subject.split(".", 1)[0]
            if reason is None or (environment, name) in reported:
                continue
            reported.add((environment, name))
            yield Violation(
                "env.secret",
                subject,
                f"environment variable {name} (set on the {where}) holds a secret-looking value ({reason});"
                " pass secrets with Secret(key=..., as_env_var=...) instead",
            )


def _matches(path: str, patterns: Iterable[str]) -> str | None:
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        if (
            fnmatch.fnmatchcase(name, pattern)
            or fnmatch.fnmatchcase(path, pattern)
            or ("/" in pattern and fnmatch.fnmatchcase(path, f"*/{pattern}"))
        ):
            return pattern
    return None


def check_bundle(plan: DeployPlan, config: PolicyConfig) -> Iterator[Violation]:
    """``bundle.forbidden-file``, ``bundle.private-key`` and ``bundle.size``."""
    bundle = plan.bundle
    if bundle is None or not bundle.digest:
        return
    for path in bundle.files:
        pattern = _matches(path, config.forbidden_files)
        if pattern and not _matches(path, config.allowed_files):
            yield Violation(
                "bundle.forbidden-file",
                path,
                f"the code bundle contains {path} (matches forbidden pattern {pattern!r});"
                " delete it, move it out of the root dir or use another copy style",
            )
    if bundle.path is not None and Path(bundle.path).is_file():
        with tarfile.open(bundle.path, mode="r:*") as archive:
            for member in archive:
                if not member.isfile() or member.size > SCAN_LIMIT or _matches(member.name, config.forbidden_files):
                    continue
                handle = archive.extractfile(member)
                if handle is not None and PRIVATE_KEY.search(handle.read()):
                    yield Violation(
                        "bundle.private-key", member.name, f"the code bundle file {member.name} contains a private key"
                    )
    if config.max_bundle_size is not None and bundle.size > config.max_bundle_size:
        yield Violation(
            "bundle.size",
            "bundle",
            f"the code bundle is {human_size(bundle.size)} ({len(bundle.files)} files), over the"
            f" limit of {human_size(config.max_bundle_size)} (max_bundle_size)",
        )


def check_version(plan: DeployPlan, config: PolicyConfig) -> Iterator[Violation]:
    """``version.pattern``: the version fully matches ``version_pattern``."""
    if config.version_pattern is None or plan.version is None:
        return
    if not config.version_pattern.fullmatch(plan.version):
        yield Violation(
            "version.pattern",
            f"version {plan.version}",
            f"does not match version_pattern {config.version_pattern.pattern!r}; pass --version",
        )


RULES = (check_limits, check_registries, check_env_secrets, check_bundle, check_version)


@hookimpl
def check_plan(session: DeploySession, plan: DeployPlan) -> list[Violation]:
    """Every rule over the whole plan; all violations are returned together."""
    config = load_config(session)
    return [violation for rule in RULES for violation in rule(plan, config)]


@hookimpl
def check_diff(session: DeploySession, diff: Diff) -> list[Violation]:
    """``interface.frozen``: in a domain of ``frozen_interface_domains``, no deployed task
    changes its interface (its callers would break)."""
    if diff.domain not in load_config(session).frozen_interface_domains:
        return []
    return [
        Violation(
            "interface.frozen",
            entry.name,
            f"changes the interface of a task deployed to {diff.project}/{diff.domain}"
            f" from {change.before} to {change.after}; deploy it under a new task name",
        )
        for entry in diff.entries
        for change in entry.changes
        if change.field == "interface"
    ]

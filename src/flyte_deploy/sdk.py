"""The user-facing SDK objects: TaskEnvironment, Task, Resources, Secret, Cache, File, Dir.

These are plain values describing what to deploy. They hold no deploy state; the
deploy phases (see ``hookspecs``) read them. Calling a task locally runs its function.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from .environments import OWN_SDK, Include, anchored_includes
from .errors import UsageError
from .image import Image

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")


@dataclass(frozen=True)
class Resources:
    """Compute resources. Each value is a request only, or a ``(request, limit)`` tuple
    (as in the Flyte SDK; serialization validates the quantities).

    ``cpu`` in cores (``1``, ``0.5``, ``"500m"``), ``memory``/``disk`` as Kubernetes
    quantities (``"4Gi"``), ``gpu`` as a count or ``"A100:1"``.
    """

    cpu: Any = None
    memory: Any = None
    gpu: Any = None
    disk: Any = None

    def merged(self, override: Resources | None) -> Resources:
        """This value with every field that ``override`` sets replaced."""
        if override is None:
            return self
        return replace(self, **{k: v for k, v in vars(override).items() if v is not None})


@dataclass(frozen=True)
class Secret:
    """A reference to a secret held by the control plane. Never holds the value.

    ``key`` names the secret, ``group`` optionally scopes it, ``as_env_var`` names the
    environment variable it is mounted as at run time.
    """

    key: str
    group: str | None = None
    as_env_var: str | None = None

    def __post_init__(self) -> None:
        if not self.key or not isinstance(self.key, str):
            raise UsageError(f"Secret key must be a non-empty string, got {self.key!r}")


@dataclass(frozen=True)
class Cache:
    """Task result caching: ``behavior`` is ``"auto"``, ``"override"`` or ``"disable"``."""

    behavior: str = "auto"
    version: str | None = None
    serialize: bool = False

    def __post_init__(self) -> None:
        if self.behavior not in ("auto", "override", "disable"):
            raise UsageError(f"Cache behavior must be auto, override or disable, got {self.behavior!r}")


@dataclass(frozen=True)
class File:
    """A file passed to or returned by a task, by local path or fsspec URL (``s3://...``).

    A task returning a ``File`` with a local path has it uploaded next to its outputs by the
    runtime; a task receiving one reads it with ``open()``.
    """

    path: str

    def open(self, mode: str = "rb") -> Any:
        """Open the file through fsspec (works for local paths and remote URLs)."""
        import fsspec

        return fsspec.open(self.path, mode).open()


@dataclass(frozen=True)
class Dir:
    """A directory passed to or returned by a task, by local path or fsspec URL."""

    path: str

    def files(self) -> list[str]:
        """The paths of every file under the directory, sorted."""
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.path)
        return sorted(fs.find(root))


def _caller_location(depth: int = 2) -> tuple[str, int]:
    frame = inspect.currentframe()
    try:
        for _ in range(depth):
            frame = frame.f_back if frame else None
        if frame is None:
            return "<unknown>", 0
        return frame.f_code.co_filename, frame.f_lineno
    finally:
        del frame


class Task:
    """A function deployed as a Flyte task in one environment.

    Calling it runs the function locally (an ``async def`` gives a coroutine).
    """

    sdk = OWN_SDK

    def __init__(
        self,
        func: Callable[..., Any],
        environment: TaskEnvironment,
        *,
        short_name: str | None = None,
        retries: int = 0,
        timeout: timedelta | int | None = None,
        cache: Cache | str | bool | None = None,
        interruptible: bool | None = None,
        resources: Resources | None = None,
        env_vars: Mapping[str, str] | None = None,
        secrets: Sequence[Secret | str] = (),
        docs: str | None = None,
    ) -> None:
        if not callable(func) or not hasattr(func, "__code__"):
            raise UsageError(f"@{environment.name}.task must decorate a function, got {func!r}")
        if not isinstance(retries, int) or retries < 0:
            raise UsageError(
                f"task {environment.name}.{func.__name__}: retries must be a non-negative int, got {retries!r}"
            )
        self.func = func
        self.environment = environment
        self.short_name = short_name or func.__name__
        self.retries = retries
        self.timeout = timedelta(seconds=timeout) if isinstance(timeout, (int, float)) else timeout
        self.cache = _as_cache(cache)
        self.interruptible = interruptible
        self.resources = resources
        self.env_vars = dict(env_vars or {})
        self.secrets = tuple(_as_secret(s) for s in secrets)
        self.docs = docs
        self.is_async = inspect.iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    @property
    def name(self) -> str:
        """The task's deployed name, ``<environment>.<function>``."""
        return f"{self.environment.name}.{self.func.__name__}"

    @property
    def module(self) -> str:
        return self.func.__module__

    @property
    def function_name(self) -> str:
        return self.func.__name__

    @property
    def source_file(self) -> str:
        return self.func.__code__.co_filename

    @property
    def effective_resources(self) -> Resources:
        return (self.environment.resources or Resources()).merged(self.resources)

    @property
    def effective_env_vars(self) -> dict[str, str]:
        return {**self.environment.env_vars, **self.env_vars}

    @property
    def effective_secrets(self) -> tuple[Secret, ...]:
        return tuple(dict.fromkeys(self.environment.secrets + self.secrets))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


def _as_cache(value: Cache | str | bool | None) -> Cache | None:
    if value is None or value is False:
        return None
    if value is True:
        return Cache("auto")
    if isinstance(value, str):
        return Cache(value)
    if isinstance(value, Cache):
        return value
    raise UsageError(f"cache must be a Cache, a behavior string or a bool, got {value!r}")


def _as_secret(value: Secret | str) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(key=value)
    raise UsageError(f"secrets must be Secret objects or key strings, got {value!r}")


class TaskEnvironment:
    """A named group of tasks sharing an image, resources, env vars and secrets.

    ``depends_on`` lists environments whose tasks this one calls; deploying this
    environment deploys them too (dependencies first). ``include`` lists files,
    directories and glob patterns bundled with every copy style (relative ones anchored at
    the file constructing the environment; docs/bundles.md, "include").
    """

    sdk = OWN_SDK

    def __init__(
        self,
        name: str,
        *,
        image: Image | str | None = None,
        resources: Resources | None = None,
        env_vars: Mapping[str, str] | None = None,
        secrets: Sequence[Secret | str] = (),
        depends_on: Sequence[TaskEnvironment] = (),
        cache: Cache | str | bool | None = None,
        interruptible: bool = False,
        description: str | None = None,
        include: Sequence[str] = (),
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise UsageError(f"TaskEnvironment name {name!r} is invalid: use lowercase letters, digits, '-' and '_'")
        for dep in depends_on:
            if not isinstance(dep, TaskEnvironment):
                raise UsageError(f"TaskEnvironment {name!r}: depends_on holds {dep!r}, not a TaskEnvironment")
        if resources is not None and not isinstance(resources, Resources):
            raise UsageError(f"TaskEnvironment {name!r}: resources must be a Resources, got {resources!r}")
        if not isinstance(include, (list, tuple)) or not all(isinstance(entry, str) for entry in include):
            raise UsageError(f"TaskEnvironment {name!r}: include must be a sequence of path strings, got {include!r}")
        self.name = name
        self.image: Image = Image.from_base(image) if isinstance(image, str) else (image or Image.default())
        self.resources = resources
        self.env_vars = {str(k): str(v) for k, v in (env_vars or {}).items()}
        self.secrets = tuple(_as_secret(s) for s in secrets)
        self.depends_on = tuple(depends_on)
        self.cache = _as_cache(cache)
        self.interruptible = interruptible
        self.description = description
        self.include = tuple(include)
        self.tasks: dict[str, Task] = {}
        self.defined_at = _caller_location()

    def task(self, func: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Decorator registering a function as a task: ``@env.task`` or ``@env.task(retries=2)``."""

        def register(f: Callable[..., Any]) -> Task:
            task = Task(f, self, **{"cache": self.cache, "interruptible": self.interruptible, **options})
            if task.function_name in self.tasks:
                raise UsageError(f"environment {self.name!r} already has a task named {task.function_name!r}")
            self.tasks[task.function_name] = task
            return task

        return register(func) if func is not None else register

    @property
    def location(self) -> str:
        return f"{self.defined_at[0]}:{self.defined_at[1]}"

    def included_paths(self) -> tuple[Include, ...]:
        """Its ``include`` entries, anchored at the file constructing it."""
        file = self.defined_at[0]
        return anchored_includes(
            self.include, None if file.startswith("<") else file, f"{self.location}: environment {self.name}"
        )

    def __repr__(self) -> str:
        return f"<TaskEnvironment {self.name!r} tasks={list(self.tasks)}>"

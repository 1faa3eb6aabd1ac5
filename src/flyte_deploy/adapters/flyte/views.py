"""Views of ``flyte.TaskEnvironment`` objects and their tasks, and of
``flyte.app.AppEnvironment`` objects (and subclasses such as
``flyte.app.extras.FastAPIAppEnvironment``), that satisfy the core's
``environments.Environment`` and ``Task`` protocols; ``native`` is the SDK's object. An app's
view has ``is_app = True`` and no tasks (``environments.is_app``).

One SDK object has one view (``view_of``), so discovery's identity checks (an environment
found twice is one environment; two objects with one name are an error) hold for views.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...environments import Include, anchored_includes
from ...errors import DiscoveryError
from ...image import Image
from . import sdk_internals
from .images import image_spec

SDK = "flyte"

_VIEWS: dict[int, tuple[Any, FlyteEnvironment]] = {}


def is_task_environment(obj: object) -> bool:
    """Whether ``obj`` is a ``flyte.TaskEnvironment`` (or a subclass), without importing flyte
    when the user's code did not."""
    flyte = sys.modules.get("flyte")
    return flyte is not None and isinstance(obj, flyte.TaskEnvironment)


def is_app_environment(obj: object) -> bool:
    """Whether ``obj`` is a ``flyte.app.AppEnvironment`` (or a subclass), without importing
    ``flyte.app`` when the user's code did not."""
    module = sys.modules.get("flyte.app._app_environment")
    return module is not None and isinstance(obj, module.AppEnvironment)


def is_flyte_environment(obj: object) -> bool:
    """Whether the flyte adapter deploys ``obj``: a task environment or an app environment."""
    return is_task_environment(obj) or is_app_environment(obj)


def view_of(native: Any) -> FlyteEnvironment:
    """The one view of the ``flyte.TaskEnvironment`` or ``flyte.app.AppEnvironment``
    ``native`` (a ``FlyteApp`` for an app)."""
    entry = _VIEWS.get(id(native))
    if entry is None or entry[0] is not native:
        view = FlyteApp(native) if is_app_environment(native) else FlyteEnvironment(native)
        entry = _VIEWS[id(native)] = (native, view)
    return entry[1]


def _definition_line(path: str | None, name: str) -> int:
    """The first line of ``path`` naming the environment ``name`` in quotes (the SDK keeps
    only the file), else 1."""
    if not path:
        return 0
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            for number, line in enumerate(source, 1):
                if f'"{name}"' in line or f"'{name}'" in line:
                    return number
    except OSError:
        pass
    return 1


class FlyteTask:
    """A task of a flyte environment (an ``AsyncFunctionTaskTemplate`` or a plugin's subclass)."""

    sdk = SDK

    def __init__(self, native: Any, environment: FlyteEnvironment) -> None:
        self.native = native
        self.environment = environment
        self.func: Callable[..., Any] = native.func
        self.short_name: str = native.short_name
        self.env_vars: Mapping[str, str] = dict(native.env_vars or {})
        self.triggers = tuple(native.triggers)

    @property
    def name(self) -> str:
        return str(self.native.name)

    @property
    def function_name(self) -> str:
        return self.func.__name__

    @property
    def module(self) -> str:
        return self.func.__module__

    @property
    def source_file(self) -> str:
        return self.func.__code__.co_filename

    @property
    def line(self) -> int:
        return self.func.__code__.co_firstlineno

    def __repr__(self) -> str:
        return f"<flyte task {self.name}>"


class FlyteEnvironment:
    """A ``flyte.TaskEnvironment`` seen through the core's ``Environment`` protocol."""

    sdk = SDK

    def __init__(self, native: Any) -> None:
        self.native = native
        self.name: str = native.name
        self.description: str | None = native.description
        self.env_vars: Mapping[str, str] = dict(native.env_vars or {})
        secrets = native.secrets
        self.secrets = tuple(secrets if isinstance(secrets, (list, tuple)) else [secrets] if secrets else [])
        file = native._declaring_file
        self.source_file: str | None = os.path.abspath(file) if file else None
        self._line = self._declaring_line()
        self._image: Image | None = None
        self._tasks: dict[str, FlyteTask] = {}

    def _declaring_line(self) -> int:
        return _definition_line(self.source_file, self.name)

    @property
    def line(self) -> int:
        """The line defining it: naming it, or for an app the one constructing it."""
        return self._line

    @property
    def location(self) -> str:
        return f"{self.source_file or '<unknown>'}:{self._line}"

    @property
    def tasks(self) -> dict[str, FlyteTask]:
        """Tasks by function name (the SDK keys them by ``<env>.<function>``); views are
        made again only when the environment gained tasks."""
        if len(self._tasks) == len(self.native.tasks):
            return self._tasks
        tasks: dict[str, FlyteTask] = {}
        for native in self.native.tasks.values():
            if not callable(getattr(native, "func", None)) or not hasattr(native.func, "__code__"):
                raise DiscoveryError(
                    f"{self.location}: environment {self.name}: task {native.name} is a"
                    f" {type(native).__name__} without a Python function; flyte-deploy"
                    " deploys function tasks"
                )
            task = FlyteTask(native, self)
            tasks[task.function_name] = task
        self._tasks = tasks
        return tasks

    @property
    def depends_on(self) -> tuple[FlyteEnvironment, ...]:
        deps = []
        for dep in self.native.depends_on:
            if not is_flyte_environment(dep):
                raise DiscoveryError(
                    f"{self.location}: environment {self.name} depends on {dep.name!r}, a"
                    f" {type(dep).__name__}; flyte-deploy deploys task and app environments only"
                )
            deps.append(view_of(dep))
        return tuple(deps)

    @property
    def image(self) -> Image:
        """Our spec of the environment's image (see ``images``), computed once."""
        if self._image is None:
            try:
                self._image = image_spec(self.native.image)
            except Exception as exc:  # noqa: BLE001 - the SDK computes the tag: a missing requirements file, ...
                raise DiscoveryError(
                    f"{self.location}: environment {self.name}: its image: {type(exc).__name__}: {exc}"
                ) from None
        return self._image

    def included_paths(self) -> tuple[Include, ...]:
        """Its ``include`` entries, anchored at the file declaring it (the SDK's rule)."""
        return anchored_includes(
            self.native.include or (), self.source_file, f"{self.location}: environment {self.name}"
        )

    def identity(self, root_dir: Path) -> dict[str, Any]:
        """What its deployed version depends on (see ``serialize.identity``)."""
        from .serialize import identity

        return identity(self, root_dir)

    def __repr__(self) -> str:
        return f"<flyte TaskEnvironment {self.name!r} tasks={list(self.tasks)}>"


class FlyteApp(FlyteEnvironment):
    """A ``flyte.app.AppEnvironment`` (or a subclass) seen through the core's ``Environment``
    protocol: one app, no tasks; its location is the line that constructs it (the SDK's
    caller frame). ``serialize_app`` serializes it (``apps``)."""

    is_app = True

    def _declaring_line(self) -> int:
        line = sdk_internals.app_declaring_line(self.native)
        return line if line is not None else super()._declaring_line()

    @property
    def tasks(self) -> dict[str, FlyteTask]:
        return {}

    def identity(self, root_dir: Path) -> dict[str, Any]:
        """What its deployed version depends on (see ``apps.app_identity``)."""
        from .apps import app_identity

        return app_identity(self, root_dir)

    def __repr__(self) -> str:
        return f"<flyte {type(self.native).__name__} {self.name!r}>"


__all__ = [
    "FlyteApp",
    "FlyteEnvironment",
    "FlyteTask",
    "is_app_environment",
    "is_flyte_environment",
    "is_task_environment",
    "view_of",
]

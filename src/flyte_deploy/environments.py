"""What the core knows about environments and tasks, whichever SDK defined them.

The deploy phases read environments and tasks only through these two protocols. Our own
``flyte_deploy.TaskEnvironment``/``Task`` satisfy them as they are; an SDK adapter (the
built-in ``flyte`` adapter, ``flyte_deploy.adapters.flyte``) wraps the SDK's objects in view
classes that do, keeping the SDK's object in ``native``. ``sdk`` names who defined the
object (``"flyte_deploy"`` or the adapter's name): a phase that handles only one SDK's
objects (a serializer) checks it and returns ``None`` for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Protocol,
    runtime_checkable,
)

if TYPE_CHECKING:
    from .image import Image

#: the ``sdk`` of our own objects
OWN_SDK = "flyte_deploy"


@runtime_checkable
class Task(Protocol):
    """One task: ``name`` is ``"<environment>.<function>"``; ``func`` the user's function,
    defined in ``source_file`` and imported as ``module``. (Read-only members: a plain
    attribute satisfies them.)"""

    @property
    def name(self) -> str: ...
    @property
    def function_name(self) -> str: ...
    @property
    def short_name(self) -> str: ...
    @property
    def func(self) -> Callable[..., Any]: ...
    @property
    def module(self) -> str: ...
    @property
    def source_file(self) -> str: ...
    @property
    def env_vars(self) -> Mapping[str, str]: ...
    @property
    def environment(self) -> Environment: ...


@runtime_checkable
class Environment(Protocol):
    """A named group of tasks sharing an image. ``tasks`` by function name; ``depends_on``
    the environments its tasks call (deployed with it); ``image`` the spec our builders
    build; ``location`` where it is defined (``"file:line"``); ``sdk`` who defined it.

    An environment may also offer ``identity(root_dir) -> Mapping`` (JSON-able settings its
    deployed version must depend on); without one the version hashes our own SDK's
    settings (see ``builtin.version``)."""

    @property
    def name(self) -> str: ...
    @property
    def tasks(self) -> Mapping[str, Task]: ...
    @property
    def depends_on(self) -> Sequence[Environment]: ...
    @property
    def image(self) -> Image: ...
    @property
    def env_vars(self) -> Mapping[str, str]: ...
    @property
    def secrets(self) -> Sequence[Any]: ...
    @property
    def description(self) -> str | None: ...
    @property
    def location(self) -> str: ...
    @property
    def sdk(self) -> str: ...


def is_app(environment: Environment) -> bool:
    """True when ``environment`` deploys one long-running app (a server) rather than tasks.

    An app environment (the ``flyte`` adapter's view of ``flyte.app.AppEnvironment``) has
    ``is_app = True`` and no tasks; it takes part in discovery, dependency resolution, the
    bundle, the version and the image phase like any environment, and is serialized by
    ``serialize_app`` and registered by ``register_app`` instead of the task hooks. This is
    the one place the distinction is read."""
    return bool(getattr(environment, "is_app", False))


__all__ = ["OWN_SDK", "Environment", "Task", "is_app"]

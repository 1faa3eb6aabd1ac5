"""What the core knows about environments and tasks, whichever SDK defined them.

The deploy phases read environments and tasks only through these two protocols. Our own
``flyte_deploy.TaskEnvironment``/``Task`` satisfy them as they are; an SDK adapter (the
built-in ``flyte`` adapter, ``flyte_deploy.adapters.flyte``) wraps the SDK's objects in view
classes that do, keeping the SDK's object in ``native``. ``sdk`` names who defined the
object (``"flyte_deploy"`` or the adapter's name): a phase that handles only one SDK's
objects (a serializer) checks it and returns ``None`` for the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    NamedTuple,
    Protocol,
    runtime_checkable,
)

from .errors import BundleError

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
    settings (see ``builtin.version``); and ``included_paths() -> Sequence[Include]``, the
    files, directories and glob patterns bundled in addition to the copy style's files
    (``include=[...]``, anchored by ``anchored_includes``; see ``bundle.select``)."""

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


class Include(NamedTuple):
    """One ``include`` entry of an environment: ``entry`` as written, ``path`` the absolute
    path (or glob pattern) it names."""

    entry: str
    path: str


def anchored_includes(entries: Sequence[str], declaring_file: str | None, where: str) -> tuple[Include, ...]:
    """``entries`` (an environment's ``include``) as ``Include``s: a relative entry is
    anchored at the directory of ``declaring_file`` (the file constructing the environment),
    as the Flyte SDK does, an absolute one is taken as it is; ``..`` is collapsed. A relative
    entry without a declaring file is a ``BundleError`` naming ``where``."""
    found = []
    for entry in entries:
        if not os.path.isabs(entry) and not declaring_file:
            raise BundleError(
                f"{where}: include {entry!r} is relative, but the file declaring the environment is unknown"
            )
        anchor = os.path.dirname(os.path.abspath(declaring_file)) if declaring_file else os.sep
        found.append(Include(entry, os.path.normpath(os.path.join(anchor, entry))))
    return tuple(found)


def is_app(environment: Environment) -> bool:
    """True when ``environment`` deploys one long-running app (a server) rather than tasks.

    An app environment (the ``flyte`` adapter's view of ``flyte.app.AppEnvironment``) has
    ``is_app = True`` and no tasks; it takes part in discovery, dependency resolution, the
    bundle, the version and the image phase like any environment, and is serialized by
    ``serialize_app`` and registered by ``register_app`` instead of the task hooks. This is
    the one place the distinction is read."""
    return bool(getattr(environment, "is_app", False))


__all__ = ["OWN_SDK", "Environment", "Include", "Task", "anchored_includes", "is_app"]

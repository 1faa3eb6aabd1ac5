"""The deploy session handed to every phase hook: configuration, plugin manager, the
backend and image builders selected for this command, console, and a stash where plugins
keep per-deploy state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy
from rich.console import Console

from .config import Config
from .errors import scrubbed_stderr
from .hookcalls import HookCalls
from .pluginmanager import DeployPluginManager
from .selection import Selection
from .types import Backend

T = TypeVar("T")


class StashKey(Generic[T]):
    """A typed key for ``session.stash`` (one object per plugin-defined slot)."""

    __slots__ = ()


@dataclass
class DeploySession:
    """One command's state. ``dry_run`` means: build nothing remote, write nothing."""

    config: Config
    pluginmanager: DeployPluginManager
    selection: Selection
    console: Console = field(default_factory=lambda: Console(file=scrubbed_stderr()))
    dry_run: bool = False
    stash: dict[StashKey[Any], Any] = field(default_factory=dict)

    @property
    def calls(self) -> HookCalls:
        """Typed calls of every flyte-deploy hook."""
        return self.pluginmanager.calls

    @property
    def hook(self) -> pluggy.HookRelay:
        """pluggy's hook relay, for hooks plugins add with ``add_hookspecs``."""
        return self.pluginmanager.hook

    @property
    def backend(self) -> Backend:
        """The backend selected by name (``backend``) for this command."""
        return self.selection.backend

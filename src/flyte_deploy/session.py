"""The deploy session handed to every phase hook: configuration, plugin manager, console
and a stash where plugins keep per-deploy state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rich.console import Console

from .config import Config
from .pluginmanager import DeployPluginManager

T = TypeVar("T")


class StashKey(Generic[T]):
    """A typed key for ``session.stash`` (one object per plugin-defined slot)."""

    __slots__ = ()


@dataclass
class DeploySession:
    """One command's state. ``dry_run`` means: build nothing remote, write nothing."""

    config: Config
    pluginmanager: DeployPluginManager
    console: Console = field(default_factory=lambda: Console(stderr=True))
    dry_run: bool = False
    stash: dict[StashKey[Any], Any] = field(default_factory=dict)

    @property
    def hook(self) -> Any:
        return self.pluginmanager.hook

"""Backends and image builders, chosen by name once per command.

Right after ``configure`` and before discovery, every command collects the backends
(``register_backends``) and image builders (``register_image_builders``) the plugins
offer and resolves the configured ``backend`` and ``image.builder``: an unknown name is
a ``UsageError`` listing the known ones, two plugins offering one name a ``PluginError``
naming both plugins and their distributions. So a typo fails before anything is
discovered, built or uploaded, for every command alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from .errors import PluginError, UsageError
from .types import Backend, ImageBuilder

if TYPE_CHECKING:
    from .config import Config
    from .pluginmanager import DeployPluginManager

#: ``image.builder`` value that picks the available builder with the lowest ``auto_priority``
AUTO = "auto"


class Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def plugin(self) -> str: ...


N = TypeVar("N", bound=Named)


@dataclass(frozen=True)
class Selection:
    """What this command uses: the ``backend`` (one of ``backends``), and the configured
    ``image_builder`` (a key of ``image_builders``, or ``"auto"``)."""

    backends: Mapping[str, Backend]
    backend: Backend
    image_builders: Mapping[str, ImageBuilder]
    image_builder: str


def select(pm: DeployPluginManager, config: Config) -> Selection:
    """Resolve ``backend`` and ``image.builder`` against what the plugins offer."""
    backends = by_name("backend", pm.calls.register_backends(), pm)
    builders = by_name("image builder", pm.calls.register_image_builders(), pm)
    backend = _chosen("backend", config.backend, backends, config)
    builder = str(config.get("image.builder"))
    if builder != AUTO:
        _chosen("image.builder", builder, builders, config, also=(AUTO,))
    return Selection(backends, backends[backend], builders, builder)


def by_name(kind: str, offered: Sequence[N], pm: DeployPluginManager) -> dict[str, N]:
    """``offered`` by name; two with one name is a ``PluginError`` naming both plugins."""
    found: dict[str, N] = {}
    for item in offered:
        first = found.setdefault(item.name, item)
        if first is not item:
            raise PluginError(
                f"two {kind}s are named {item.name!r}: offered by {_describe(pm, first.plugin)}"
                f" and by {_describe(pm, item.plugin)}"
            )
    return found


def _describe(pm: DeployPluginManager, plugin: str) -> str:
    info = pm.infos.get(plugin)
    return info.describe() if info else f"plugin {plugin!r}"


def _chosen(key: str, name: str, known: Mapping[str, object], config: Config, also: Sequence[str] = ()) -> str:
    if name not in known:
        available = ", ".join([*also, *sorted(known)]) or "none"
        raise UsageError(f"{key} {name!r} is unknown; available: {available} (set in {config.source_of(key)})")
    return name


__all__ = ["AUTO", "Selection", "by_name", "select"]

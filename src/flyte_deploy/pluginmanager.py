"""The plugin manager, built fresh for every command (never a module global).

Plugins are registered in this order (see docs/plugins/index.md):

1. built-ins, under short names (``-p no:NAME`` blocks one);
2. ``-p NAME`` on the command line, then ``FLYTE_DEPLOY_PLUGINS`` (comma-separated);
3. installed entry points of group ``flyte_deploy``, sorted by (name, distribution);
4. ``[tool.flyte-deploy] plugins`` in pyproject.toml: module names or ``.py`` paths;
5. ``deployconf.py`` at the project root;
6. policy plugins: entry points of group ``flyte_deploy.policy`` and modules named in
   ``FLYTE_DEPLOY_POLICY``; registered last, never blocked; ``required_plugins`` names
   plugins whose absence fails the command.

pluggy calls later-registered implementations first, so a project plugin overrides an
entry-point plugin, which overrides a built-in (built-in phases are also ``trylast``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .config import LOCAL_PLUGIN_FILE, Config
from .errors import FlyteDeployError, PluginError, UsageError

ENTRY_POINT_GROUP = "flyte_deploy"
POLICY_ENTRY_POINT_GROUP = "flyte_deploy.policy"

#: the built-in plugins, one module per phase, under the short names ``-p no:`` takes
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("discover", "flyte_deploy.builtin.discover"),
    ("dependencies", "flyte_deploy.builtin.dependencies"),
    ("bundle", "flyte_deploy.builtin.bundle"),
    ("version", "flyte_deploy.builtin.version"),
    ("serialize", "flyte_deploy.builtin.serialize"),
    ("flyte", "flyte_deploy.adapters.flyte"),
    ("source_link", "flyte_deploy.builtin.source_link"),
    ("image", "flyte_deploy.builtin.image"),
    ("upload", "flyte_deploy.builtin.upload"),
    ("local_backend", "flyte_deploy.builtin.local_backend"),
    ("remote_backend", "flyte_deploy.builtin.remote_backend"),
    ("reporting", "flyte_deploy.builtin.reporting"),
)

#: built-ins registered only when the package they adapt is importable (never imported here)
BUILTIN_REQUIRES: dict[str, str] = {"flyte": "flyte"}


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: ``source`` is builtin, cmdline, env, entrypoint, pyproject,
    local or policy; ``status`` is active, disabled or policy."""

    name: str
    source: str
    version: str | None = None
    location: str = ""
    status: str = "active"
    hooks: tuple[str, ...] = ()

    def describe(self) -> str:
        where = f" {self.location}" if self.location else ""
        version = f" {self.version}" if self.version else ""
        return f"plugin {self.name!r} ({self.source}{version}{where})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "version": self.version,
                "location": self.location, "status": self.status, "hooks": list(self.hooks)}


class DeployPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers each plugin's source and attributes failures.

    Every implementation it registers is wrapped so that an unexpected exception, or a
    result of the wrong type, becomes a ``PluginError`` naming the plugin and its source.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.disabled: dict[str, PluginInfo] = {}
        # historic: pluggy calls it for every plugin registered from now on
        self.hook.add_hookspecs.call_historic(kwargs={"pluginmanager": self})

    def register_plugin(self, plugin: object, info: PluginInfo) -> None:
        """Register ``plugin`` under ``info.name``; a name already taken is an error."""
        if info.name in self.infos:
            other = self.infos[info.name]
            raise PluginError(f"{info.describe()} clashes with {other.describe()}: two plugins named {info.name!r}")
        if self.is_registered(plugin):
            return
        try:
            self.register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{info.describe()} is invalid: {exc}") from None
        hooks = tuple(sorted(impl_hook for impl_hook in self._hooks_of(plugin)))
        self.infos[info.name] = PluginInfo(**{**info.__dict__, "hooks": hooks})
        self._attribute(plugin, self.infos[info.name])

    def _hooks_of(self, plugin: object) -> Iterable[str]:
        for caller in self.get_hookcallers(plugin) or ():
            yield caller.name

    def _attribute(self, plugin: object, info: PluginInfo) -> None:
        for caller in self.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                    impl.function = _attributed(impl.function, caller.name, info)

    def check(self) -> None:
        """Fail on any marked implementation that matches no hookspec (a misspelling)."""
        try:
            self.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.get_name(exc.plugin) if exc.plugin is not None else "?"
            info = self.infos.get(name)
            where = info.describe() if info else f"plugin {name!r}"
            raise PluginError(f"{where}: {exc}") from None

    def plugin_of(self, hookimpl_plugin: object) -> PluginInfo | None:
        name = self.get_name(hookimpl_plugin)
        return self.infos.get(name) if name else None


def _attributed(func: Callable[..., Any], hook_name: str, info: PluginInfo) -> Callable[..., Any]:
    from .lifecycle import check_result  # late: lifecycle imports this module

    @functools.wraps(func)
    def call(*args: Any) -> Any:
        try:
            result = func(*args)
        except FlyteDeployError:
            raise
        except Exception as exc:
            raise PluginError(
                f"{info.describe()} failed in {hook_name}: {type(exc).__name__}: {exc}"
                f" (run with -p no:{info.name} to confirm)"
            ) from exc
        check_result(hook_name, result, info)
        if hook_name == "check_plan":  # reports say which plugin rejected what
            result = [dataclasses.replace(violation, plugin=info.name) for violation in result]
        return result

    return call


# -- loading ----------------------------------------------------------------------------


def _import_module(name: str, info: PluginInfo) -> ModuleType:
    try:
        return importlib.import_module(name)
    except FlyteDeployError:
        raise
    except Exception as exc:
        raise PluginError(f"error importing {info.describe()}: {type(exc).__name__}: {exc}") from exc


def _import_file(path: Path, info: PluginInfo) -> ModuleType:
    module_name = f"flyte_deploy_local_plugin_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{info.describe()}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        line = _error_line(exc, path)
        raise PluginError(f"error importing {info.describe()} at {path}{line}: {type(exc).__name__}: {exc}") from exc
    return module


def _error_line(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f":{exc.lineno}"
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename) == path:
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line


def _sorted_entry_points(group: str) -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=group)
    unique = {(ep.name, ep.dist.name if ep.dist else "", ep.value): ep for ep in eps}
    return [unique[key] for key in sorted(unique)]


def _dist_version(ep: metadata.EntryPoint) -> str | None:
    return f"{ep.dist.name} {ep.dist.version}" if ep.dist else None


def _package_version() -> str:
    try:
        return metadata.version("flyte-deploy")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def build_plugin_manager(config: Config, *, cmdline_plugins: Iterable[str] = ()) -> DeployPluginManager:
    """Register every plugin source in the documented order, run ``check_pending`` and the
    ``required_plugins`` check, and replay ``configure`` (historic)."""
    pm = DeployPluginManager()
    config.pluginmanager = pm
    cmdline = list(cmdline_plugins)
    blocked = {p[3:] for p in cmdline if p.startswith("no:")}
    blocked |= set(config.get_list("disable_plugins"))
    requested = [p for p in cmdline if not p.startswith("no:")]

    policy = _policy_sources(config)
    for name in sorted(blocked & {info.name for _, info in policy}):
        raise UsageError(f"plugin {name!r} is a policy plugin and cannot be disabled")

    def add(plugin: object, info: PluginInfo) -> None:
        if info.name in blocked and info.source != "policy":
            pm.disabled[info.name] = PluginInfo(**{**info.__dict__, "status": "disabled"})
            return
        pm.register_plugin(plugin, info)

    version = _package_version()
    for name, module in BUILTIN_PLUGINS:
        if name in BUILTIN_REQUIRES and importlib.util.find_spec(BUILTIN_REQUIRES[name]) is None:
            continue
        info = PluginInfo(name, "builtin", version, module)
        if name in blocked:
            add(None, info)
            continue
        add(_import_module(module, info), info)

    entry_points = {ep.name: ep for ep in _sorted_entry_points(ENTRY_POINT_GROUP)}
    env_plugins = [p for p in config.environ.get("FLYTE_DEPLOY_PLUGINS", "").split(",") if p.strip()]
    for source, names in (("cmdline", requested), ("env", env_plugins)):
        for name in names:
            name = name.strip()
            if name in entry_points:
                ep = entry_points.pop(name)
                info = PluginInfo(ep.name, source, _dist_version(ep), ep.value)
                if ep.name not in blocked:
                    add(_load_entry_point(ep, info), info)
            else:
                info = PluginInfo(name, source, None, name)
                if name not in blocked:
                    add(_import_module(name, info), info)

    autoload = not _truthy(config.get("disable_plugin_autoload"))
    if autoload:
        for ep in entry_points.values():
            info = PluginInfo(ep.name, "entrypoint", _dist_version(ep), ep.value)
            add(None if ep.name in blocked else _load_entry_point(ep, info), info)

    for ref in config.get_list("plugins", pyproject_only=True):
        where = f"{config.pyproject_path or 'pyproject.toml'}"
        if ref.endswith(".py"):
            path = (config.root_dir / ref).resolve()
            info = PluginInfo(Path(ref).stem, "pyproject", None, str(path))
            if not path.is_file():
                raise PluginError(f"{where}: plugin file {ref} does not exist")
            add(None if info.name in blocked else _import_file(path, info), info)
        else:
            info = PluginInfo(ref, "pyproject", None, where)
            add(None if ref in blocked else _import_module(ref, info), info)

    local = config.root_dir / LOCAL_PLUGIN_FILE
    if local.is_file():
        info = PluginInfo("deployconf", "local", None, str(local))
        add(None if "deployconf" in blocked else _import_file(local, info), info)

    for loader, info in policy:
        pm.register_plugin(loader(), info)

    pm.check()
    _check_required(pm, config)
    pm.hook.configure.call_historic(kwargs={"config": config})
    return pm


def _load_entry_point(ep: metadata.EntryPoint, info: PluginInfo) -> object:
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(f"error importing {info.describe()}: {type(exc).__name__}: {exc}") from exc


def _policy_sources(config: Config) -> list[tuple[Callable[[], object], PluginInfo]]:
    sources: list[tuple[Callable[[], object], PluginInfo]] = []
    for ep in _sorted_entry_points(POLICY_ENTRY_POINT_GROUP):
        info = PluginInfo(ep.name, "policy", _dist_version(ep), ep.value, status="policy")
        sources.append((functools.partial(_load_entry_point, ep, info), info))
    installed = {ep.name for ep in _sorted_entry_points(POLICY_ENTRY_POINT_GROUP)}
    installed |= {ep.value for ep in _sorted_entry_points(POLICY_ENTRY_POINT_GROUP)}
    for name in [p.strip() for p in config.environ.get("FLYTE_DEPLOY_POLICY", "").split(",") if p.strip()]:
        if name in installed:  # named again in FLYTE_DEPLOY_POLICY: the entry point already loads it
            continue
        info = PluginInfo(name, "policy", _module_dist_version(name), name, status="policy")
        sources.append((functools.partial(_import_module, name, info), info))
    return sources


def _module_dist_version(module: str) -> str | None:
    """``"dist version"`` of the installed distribution providing ``module``, if any: first
    a distribution named like the top-level package (cheap), else a scan of every installed
    distribution's top-level names (about 0.2 s)."""
    top = module.split(".")[0]
    try:
        dist = metadata.distribution(top)
        return f"{dist.metadata['Name']} {dist.version}"
    except metadata.PackageNotFoundError:
        pass
    dists = metadata.packages_distributions().get(top, [])
    if not dists:
        return None
    try:
        return f"{dists[0]} {metadata.version(dists[0])}"
    except metadata.PackageNotFoundError:
        return None


def _check_required(pm: DeployPluginManager, config: Config) -> None:
    for requirement in config.get_list("required_plugins"):
        name, _, minimum = requirement.partition(">=")
        info = pm.infos.get(name.strip())
        if info is None:
            raise UsageError(f"required plugin {name.strip()!r} is not installed or not enabled"
                             f" (required_plugins in {config.pyproject_path or 'configuration'})")
        if minimum and not info.version:
            raise UsageError(f"required plugin {name.strip()!r} needs version >= {minimum}, but {info.describe()}"
                             " has no known version")
        if minimum and info.version and _version_tuple(info.version.split()[-1]) < _version_tuple(minimum):
            raise UsageError(f"required plugin {name.strip()!r} needs version >= {minimum}, found {info.version}")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.strip().split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on") if value is not None else False


def hook_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of every hookspec the manager knows, sorted."""
    return sorted(name for name in dir(pm.hook) if not name.startswith("_")
                  and getattr(pm.hook, name).spec is not None)


__all__ = ["BUILTIN_PLUGINS", "DeployPluginManager", "PluginInfo", "build_plugin_manager", "hook_names"]

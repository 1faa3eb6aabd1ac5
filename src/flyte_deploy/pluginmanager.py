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

import contextvars
import dataclasses
import difflib
import functools
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .config import LOCAL_PLUGIN_FILE, Config
from .contracts import contract_of
from .errors import FlyteDeployError, PluginError, UsageError, environment_error
from .hookcalls import HookCalls

ENTRY_POINT_GROUP = "flyte_deploy"
POLICY_ENTRY_POINT_GROUP = "flyte_deploy.policy"
#: environment only (never pyproject): skip installed policy entry points, for test suites
#: (``flyte_deploy.testing`` sets it); ``required_plugins`` still fails a command without them
DISABLE_POLICY_AUTOLOAD_ENV = "FLYTE_DEPLOY_DISABLE_POLICY_AUTOLOAD"

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
    ("register", "flyte_deploy.builtin.register"),
    ("local_backend", "flyte_deploy.builtin.local_backend"),
    ("remote_backend", "flyte_deploy.builtin.remote_backend"),
    ("reporting", "flyte_deploy.builtin.reporting"),
)

#: built-ins registered only when the package they adapt is importable (never imported here)
BUILTIN_REQUIRES: dict[str, str] = {"flyte": "flyte"}

#: the plugin whose hook implementation is running (in this thread): the parent of any
#: plugin it registers
_RUNNING: contextvars.ContextVar[PluginInfo | None] = contextvars.ContextVar(
    "flyte_deploy_running_plugin", default=None
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: ``source`` is builtin, cmdline, env, entrypoint, pyproject,
    local, policy, or sub-plugin (registered by plugin ``registered_by``, e.g. from its
    ``configure``) or api (registered directly through the plugin manager); ``status`` is
    active, disabled or policy."""

    name: str
    source: str
    version: str | None = None
    location: str = ""
    status: str = "active"
    hooks: tuple[str, ...] = ()
    registered_by: str = ""

    def describe(self) -> str:
        where = f" {self.location}" if self.location else ""
        version = f" {self.version}" if self.version else ""
        parent = f", registered by {self.registered_by!r}" if self.registered_by else ""
        return f"plugin {self.name!r} ({self.source}{version}{where}{parent})"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "location": self.location,
            "status": self.status,
            "hooks": list(self.hooks),
            "registered_by": self.registered_by or None,
        }


class DeployPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers each plugin's source and attributes failures.

    Every plugin, whichever way it arrives (the loaders below, ``register`` from a
    ``configure`` hook, the testing kit), goes through ``register_plugin``. Every hook
    implementation, wrappers included, is wrapped as pluggy accepts it (before a historic
    hook is replayed to it), so that an unexpected exception, or a result its hook's
    contract refuses, becomes a ``PluginError`` naming the plugin and its source.
    ``calls`` is the typed facade of every hook.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.disabled: dict[str, PluginInfo] = {}
        self.calls = HookCalls(self.hook)
        #: once the manager is built, every registration is checked for misspelled hooks at once
        self.checked = False
        self.calls.add_hookspecs(self)

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """pluggy's registration, for plugins that register others (``configure``): the
        plugin is recorded as a sub-plugin of the plugin whose hook is running."""
        parent = _RUNNING.get()
        info = PluginInfo(
            name or self.get_canonical_name(plugin),
            "sub-plugin" if parent else "api",
            parent.version if parent else None,
            defined_at(plugin),
            registered_by=parent.name if parent else "",
        )
        return self.register_plugin(plugin, info)

    def load_plugin(self, info: PluginInfo, load: Callable[[], object]) -> str | None:
        """Import a plugin with ``load`` and register it; a blocked name is not imported."""
        if self.is_blocked(info.name):
            return self._disable(info)
        return self.register_plugin(load(), info)

    def _disable(self, info: PluginInfo) -> str | None:
        """Record a plugin pluggy blocks (``-p no:NAME``); it is not registered (``None``)."""
        self.disabled[info.name] = dataclasses.replace(info, status="disabled")
        return None

    def register_plugin(self, plugin: object, info: PluginInfo) -> str | None:
        """Register ``plugin`` under ``info.name``, the one registration path: a blocked
        name is recorded as disabled; a name already taken, a hookimpl with default values
        or arguments its hook does not have, and (once built) a misspelled hook are a
        ``PluginError`` naming the plugin and the file and line."""
        if self.is_blocked(info.name):
            return self._disable(info)
        if info.name in self.infos:
            other = self.infos[info.name]
            raise PluginError(f"{info.describe()} clashes with {other.describe()}: two plugins named {info.name!r}")
        if self.is_registered(plugin):
            return self.get_name(plugin)
        impls = self._hookimpl_functions(plugin, info)
        self.infos[info.name] = info
        try:
            super().register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            self.infos.pop(info.name, None)
            lines = [line for line in str(exc).splitlines() if line.strip()]
            hook = re.search(r"for hook '(\w+)'", str(exc))
            name = hook.group(1) if hook else ""
            where = defined_at(impls[name]) if name in impls else info.location
            raise PluginError(
                f"{where}: {info.describe()}: {name + ': ' if name else ''}{lines[-1] if lines else exc}"
            ) from None
        hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or ()))
        self.infos[info.name] = dataclasses.replace(info, hooks=hooks)
        if self.checked:
            self.check()
        return info.name

    def _hookimpl_functions(self, plugin: object, info: PluginInfo) -> dict[str, Callable[..., Any]]:
        """The plugin's hook implementations by hook name; refuses parameters with
        default values (pluggy never passes them) naming the file and line."""
        found: dict[str, Callable[..., Any]] = {}
        for attr in dir(plugin):
            opts = self.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            function = getattr(plugin, attr)
            defaults = [
                p.name
                for p in inspect.signature(function).parameters.values()
                if p.default is not inspect.Parameter.empty
            ]
            if defaults:
                raise PluginError(
                    f"{defined_at(function)}: {info.describe()}: {attr} gives {', '.join(defaults)}"
                    " a default value, which pluggy never passes; remove the default"
                )
            found[opts.get("specname") or attr] = function
        return found

    def _verify_hook(self, hook: pluggy.HookCaller, hookimpl: pluggy.HookImpl) -> None:
        """pluggy calls this once per implementation as its spec becomes known, before a
        historic hook is replayed to it: the moment to wrap it for attribution."""
        super()._verify_hook(hook, hookimpl)
        info = self.infos.get(hookimpl.plugin_name)
        if info is not None and not hookimpl.hookwrapper:
            wrap = _attributed_wrapper if hookimpl.wrapper else _attributed
            hookimpl.function = wrap(hookimpl.function, hook, info)  # type: ignore[misc]  # pluggy: Final

    def check(self) -> None:
        """Fail on any marked implementation that matches no hookspec (a misspelling),
        naming the plugin, its file and line, and the closest hook name."""
        known = hook_names(self)
        for name, caller in sorted(vars(self.hook).items()):
            if name.startswith("_") or not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                info = self.infos.get(impl.plugin_name)
                where = info.describe() if info else f"plugin {impl.plugin_name!r}"
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise PluginError(f"{defined_at(impl.function)}: {where}: {name} is not a flyte-deploy hook{hint}")
        self.checked = True


def defined_at(obj: object) -> str:
    """``file:line`` of a function or a plugin object's class, the file of a module."""
    if isinstance(obj, ModuleType):
        return str(getattr(obj, "__file__", None) or obj.__name__)
    target: Any = inspect.unwrap(obj) if callable(obj) else obj
    target = getattr(target, "__func__", target)
    code = getattr(target, "__code__", None)
    if code is not None:
        return f"{code.co_filename}:{code.co_firstlineno}"
    cls = target if inspect.isclass(target) else type(target)
    try:
        return f"{inspect.getsourcefile(cls)}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__}"


def _failure(info: PluginInfo, hook: str, exc: Exception) -> FlyteDeployError:
    problem = environment_error(exc)  # a full disk or an unwritable path is the machine's, not a crash
    if problem is not None:
        return problem
    return PluginError(
        f"{info.describe()} failed in {hook}: {type(exc).__name__}: {exc} (run with -p no:{info.name} to confirm)"
    )


def _attributed(func: Callable[..., Any], hook: pluggy.HookCaller, info: PluginInfo) -> Callable[..., Any]:
    """``func`` raising ``PluginError`` for an unexpected exception or a result its
    contract refuses; results come back stamped when the contract says so."""

    @functools.wraps(func)
    def call(*args: Any) -> Any:
        token = _RUNNING.set(info)
        try:
            result = func(*args)
        except FlyteDeployError:
            raise
        except SystemExit as exc:
            raise PluginError(f"{info.describe()} called sys.exit({exc.code!r}) in {hook.name}") from None
        except Exception as exc:
            raise _failure(info, hook.name, exc) from exc
        finally:
            _RUNNING.reset(token)
        contract = contract_of(hook)
        return result if contract is None else contract.check(hook.name, result, info.name, info.describe())

    return call


def _attributed_wrapper(func: Callable[..., Any], hook: pluggy.HookCaller, info: PluginInfo) -> Callable[..., Any]:
    """A ``wrapper=True`` generator whose own exceptions (not the ones pluggy throws into
    it from the implementations it wraps) are attributed to ``info``; for firstresult
    hooks the result it returns is checked like any implementation's."""

    @functools.wraps(func)
    def call(*args: Any) -> Generator[None, Any, Any]:
        def step(method: Callable[..., Any], *method_args: Any, thrown: BaseException | None = None) -> Any:
            token = _RUNNING.set(info)
            try:
                return method(*method_args)
            except (StopIteration, FlyteDeployError):
                raise
            except SystemExit as exc:
                if exc is thrown:
                    raise
                raise PluginError(f"{info.describe()} called sys.exit({exc.code!r}) in {hook.name}") from None
            except Exception as exc:
                if exc is thrown:
                    raise
                raise _failure(info, hook.name, exc) from exc
            finally:
                _RUNNING.reset(token)

        generator = step(func, *args)
        try:
            step(next, generator)
            try:
                result = yield
            except BaseException as error:  # noqa: BLE001 - whatever pluggy throws goes into the wrapper
                step(generator.throw, error, thrown=error)
            else:
                step(generator.send, result)
        except StopIteration as stop:
            contract = contract_of(hook)
            if contract is None or contract.kind != "firstresult":
                return stop.value
            return contract.check(hook.name, stop.value, info.name, info.describe())
        raise PluginError(f"{info.describe()}: its {hook.name} wrapper must yield exactly once")

    return call


# -- loading ----------------------------------------------------------------------------


def _import_module(name: str, info: PluginInfo) -> ModuleType:
    try:
        return importlib.import_module(name)
    except FlyteDeployError:
        raise
    except (Exception, SystemExit) as exc:
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
    except (Exception, SystemExit) as exc:
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
    """Register every plugin source in the documented order, check for misspelled hooks
    and ``required_plugins``, replay ``configure`` (historic), then refuse a blocked name
    (``-p no:NAME``, ``disable_plugins``) that no plugin has."""
    pm = DeployPluginManager()
    config.pluginmanager = pm
    cmdline = list(cmdline_plugins)
    blocked = {p[3:]: f"-p no:{p[3:]}" for p in cmdline if p.startswith("no:")}
    for name in config.get_list("disable_plugins"):
        blocked.setdefault(name, f"disable_plugins ({config.source_of('disable_plugins')})")
    requested = [p for p in cmdline if not p.startswith("no:")]

    policy = _policy_sources(config)
    for name in sorted(set(blocked) & {info.name for _, info in policy}):
        raise UsageError(f"plugin {name!r} is a policy plugin and cannot be disabled")
    for name in blocked:
        pm.set_blocked(name)

    version = f"flyte-deploy {_package_version()}"
    for name, module in BUILTIN_PLUGINS:
        if name in BUILTIN_REQUIRES and importlib.util.find_spec(BUILTIN_REQUIRES[name]) is None:
            continue
        info = PluginInfo(name, "builtin", version, module)
        pm.load_plugin(info, functools.partial(_import_module, module, info))

    entry_points = {ep.name: ep for ep in _sorted_entry_points(ENTRY_POINT_GROUP)}
    env_plugins = [p for p in config.environ.get("FLYTE_DEPLOY_PLUGINS", "").split(",") if p.strip()]
    for source, names in (("cmdline", requested), ("env", env_plugins)):
        for name in names:
            name = name.strip()
            if name in entry_points:
                ep = entry_points.pop(name)
                info = PluginInfo(ep.name, source, _dist_version(ep), ep.value)
                pm.load_plugin(info, functools.partial(_load_entry_point, ep, info))
            else:
                info = PluginInfo(name, source, None, name)
                pm.load_plugin(info, functools.partial(_import_module, name, info))

    if not _truthy(config.get("disable_plugin_autoload")):
        for ep in entry_points.values():
            info = PluginInfo(ep.name, "entrypoint", _dist_version(ep), ep.value)
            pm.load_plugin(info, functools.partial(_load_entry_point, ep, info))

    for ref in config.get_list("plugins", pyproject_only=True):
        where = f"{config.pyproject_path or 'pyproject.toml'}"
        if ref.endswith(".py"):
            path = (config.root_dir / ref).resolve()
            info = PluginInfo(Path(ref).stem, "pyproject", None, str(path))
            if not path.is_file():
                raise PluginError(f"{where}: plugin file {ref} does not exist")
            pm.load_plugin(info, functools.partial(_import_file, path, info))
        else:
            info = PluginInfo(ref, "pyproject", None, where)
            pm.load_plugin(info, functools.partial(_import_module, ref, info))

    local = config.root_dir / LOCAL_PLUGIN_FILE
    if local.is_file():
        info = PluginInfo("deployconf", "local", None, str(local))
        pm.load_plugin(info, functools.partial(_import_file, local, info))

    for loader, info in policy:
        pm.register_plugin(loader(), info)

    pm.check()
    _check_required(pm, config)
    pm.calls.configure(config)
    unknown = [name for name in blocked if name not in pm.disabled]
    if unknown:
        pm.calls.unconfigure(config)
        known = sorted({*pm.infos, *pm.disabled} - set(unknown))
        raise UsageError(f"{blocked[unknown[0]]}: no plugin is named {unknown[0]!r}; known: {', '.join(known)}")
    return pm


def _load_entry_point(ep: metadata.EntryPoint, info: PluginInfo) -> object:
    try:
        return ep.load()
    except (Exception, SystemExit) as exc:
        raise PluginError(f"error importing {info.describe()}: {type(exc).__name__}: {exc}") from exc


def _policy_sources(config: Config) -> list[tuple[Callable[[], object], PluginInfo]]:
    sources: list[tuple[Callable[[], object], PluginInfo]] = []
    autoload = not _truthy(config.environ.get(DISABLE_POLICY_AUTOLOAD_ENV))
    entry_points = _sorted_entry_points(POLICY_ENTRY_POINT_GROUP) if autoload else []
    for ep in entry_points:
        info = PluginInfo(ep.name, "policy", _dist_version(ep), ep.value, status="policy")
        sources.append((functools.partial(_load_entry_point, ep, info), info))
    installed = {ep.name for ep in entry_points} | {ep.value for ep in entry_points}
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
            raise UsageError(
                f"required plugin {name.strip()!r} is not installed or not enabled"
                f" (required_plugins in {config.pyproject_path or 'configuration'})"
            )
        if minimum and not info.version:
            raise UsageError(
                f"required plugin {name.strip()!r} needs version >= {minimum}, but {info.describe()}"
                " has no known version"
            )
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
    return sorted(name for name in dir(pm.hook) if not name.startswith("_") and getattr(pm.hook, name).spec is not None)


__all__ = ["BUILTIN_PLUGINS", "DeployPluginManager", "PluginInfo", "build_plugin_manager", "hook_names"]

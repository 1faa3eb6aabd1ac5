"""Built-in ``discover_environments``: import the user's files and find their environments.

Files are imported as ``flyte_deploy.importing`` says (module names relative to the root
dir, each file once; in ``FILE ENV`` mode the file's own directory is importable too).
Every SDK adapter's ``find_environments`` reports the environments a module defines, so
one project may mix our own SDK's environments with ``flyte`` ones; objects given to the
Python API become environments through ``adapt_environment``. This plugin implements both
hooks for our own SDK's ``TaskEnvironment``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from ..environments import Environment
from ..errors import DiscoveryError, UsageError
from ..hookcalls import HookCalls
from ..hookspecs import hookimpl
from ..importing import ImportedFiles, import_file, iter_python_files
from ..sdk import TaskEnvironment
from ..session import DeploySession
from ..types import DeployRequest, Discovery


@hookimpl
def find_environments(module: ModuleType) -> dict[str, Environment]:
    """Module variables bound to our own SDK's TaskEnvironments, by variable name."""
    return {var: value for var, value in vars(module).items() if isinstance(value, TaskEnvironment)}


@hookimpl(trylast=True)
def adapt_environment(obj: object) -> Environment | None:
    return obj if isinstance(obj, TaskEnvironment) else None


def _unique(envs: Iterable[Environment]) -> tuple[Environment, ...]:
    """Environments deduplicated by identity; two objects with one name is an error."""
    by_name: dict[str, Environment] = {}
    for env in envs:
        other = by_name.setdefault(env.name, env)
        if other is not env:
            raise DiscoveryError(f"two environments are named {env.name!r}: {other.location} and {env.location}")
    return tuple(by_name.values())


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _adapter_hint(value: object) -> str:
    """Why an SDK's environment was not recognised: its adapter is not active."""
    if type(value).__module__.split(".")[0] == "flyte":
        return (
            " flyte-deploy can deploy (the flyte adapter is not active: install flyte-deploy[flyte],"
            " or drop -p no:flyte)"
        )
    return ""


class Finder:
    """The environments of modules, as every plugin's ``find_environments`` reports them
    (without the session's hook calls: our own SDK's only)."""

    def __init__(self, calls: HookCalls | None) -> None:
        self.calls = calls

    def environments_in(self, module: ModuleType) -> dict[str, Environment]:
        found: dict[str, Environment] = {}
        batches = [find_environments(module)] if self.calls is None else self.calls.find_environments(module)
        for batch in batches:
            found.update(batch)
        return {var: found[var] for var in vars(module) if var in found}  # in definition order

    def adapt(self, obj: object) -> Environment:
        env = adapt_environment(obj) if self.calls is None else self.calls.adapt_environment(obj)
        if env is None:
            raise UsageError(
                f"deploy() takes TaskEnvironment objects (flyte_deploy's, or flyte's with"
                f" flyte-deploy[flyte]), got a {_type_name(obj)}"
                f"{_adapter_hint(obj)}"
            )
        return env


def discover(request: DeployRequest, root_dir: Path, calls: HookCalls | None = None) -> Discovery:
    """Discover and select environments as ``request`` asks; ``calls`` are the session's
    hook calls (None: find our own SDK's environments only)."""
    finder = Finder(calls)
    if request.mode == "objects":
        found = _unique(finder.adapt(obj) for obj in request.objects)
        return Discovery(environments=found, selected=found, loaded_modules=tuple(sys.modules))
    assert request.path is not None
    path = request.path if request.path.is_absolute() else (Path.cwd() / request.path)
    path = path.resolve()
    if request.mode == "recursive":
        if not path.is_dir():
            raise UsageError(f"--recursive needs a directory, {request.path} is not one")
        files = iter_python_files(path)
        if not files:
            raise DiscoveryError(f"{request.path}: no Python files found")
    else:
        if not path.is_file():
            raise UsageError(f"{request.path}: no such file")
        files = [path]

    imported = ImportedFiles()
    modules = {file: import_file(file, root_dir, imported, own_dir_importable=request.mode == "file") for file in files}
    per_module = {file: finder.environments_in(module) for file, module in modules.items()}
    environments = _unique(env for envs in per_module.values() for env in envs.values())

    if request.mode == "file":
        module, module_envs = modules[path], per_module[path]
        selected = []
        for var in request.env_names:
            env = module_envs.get(var)
            if env is None:
                available = ", ".join(sorted(module_envs)) or "none"
                if hasattr(module, var):
                    raise DiscoveryError(
                        f"{request.path}: {var!r} is a {_type_name(getattr(module, var))},"
                        f" not a TaskEnvironment{_adapter_hint(getattr(module, var))};"
                        f" environments in the file: {available}"
                    )
                raise DiscoveryError(
                    f"{request.path}: no TaskEnvironment variable {var!r}; environments in the file: {available}"
                )
            selected.append(env)
        selected_envs = _unique(selected)
    else:
        selected_envs = environments
    return Discovery(environments=environments, selected=selected_envs, loaded_modules=tuple(sys.modules))


@hookimpl(trylast=True)
def discover_environments(session: DeploySession, request: DeployRequest) -> Discovery:
    return discover(request, session.config.root_dir, session.calls)

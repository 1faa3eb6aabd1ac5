"""Built-in ``discover_environments``: import the user's files and find TaskEnvironments.

Module names are derived from the root dir (``root/pkg/mod.py`` is ``pkg.mod`` with the
root on ``sys.path``), and a file already imported under any name is reused, so one file
is never imported twice. Files outside the root dir are imported from their own directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from ..config import LOCAL_PLUGIN_FILE
from ..errors import DiscoveryError, UsageError
from ..hookspecs import hookimpl
from ..sdk import TaskEnvironment
from ..session import DeploySession
from ..types import DeployRequest, Discovery

SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__", "node_modules", "build", "dist"}


def is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() or (path / "conda-meta").is_dir()


def iter_python_files(directory: Path) -> list[Path]:
    """Every .py file under ``directory``, sorted, skipping hidden, virtualenv and
    site-packages directories and the local plugin file."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                         and not is_virtualenv(here / d))
        found += [here / f for f in sorted(files) if f.endswith(".py") and f != LOCAL_PLUGIN_FILE]
    return found


def module_name_for(path: Path, root_dir: Path) -> tuple[str, Path]:
    """The module name of ``path`` and the sys.path entry it is imported from."""
    try:
        relative = path.relative_to(root_dir)
        base = root_dir
    except ValueError:
        relative, base = Path(path.name), path.parent
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(p.isidentifier() for p in parts):
        raise DiscoveryError(f"{path}: cannot be imported as a module (name parts {parts} are not identifiers)")
    return ".".join(parts), base


class ImportedFiles:
    """Which module (under any name) was imported from a resolved source file.

    Scans only the ``sys.modules`` entries added since the previous look-up (dicts keep
    insertion order), so discovering N files costs O(N + modules) path resolutions, not
    O(N x modules); a removed or replaced module triggers a full rescan.
    """

    def __init__(self) -> None:
        self._by_file: dict[Path, ModuleType] = {}
        self._scanned = 0
        self._real_dirs: dict[str, str] = {}

    def resolve(self, file: str) -> Path:
        """``Path(file).resolve()``, each directory resolved once (thousands of modules share few)."""
        directory, name = os.path.split(os.path.abspath(file))
        real = self._real_dirs.get(directory)
        if real is None:
            real = self._real_dirs[directory] = os.path.realpath(directory)
        full = os.path.join(real, name)
        return Path(os.path.realpath(full) if os.path.islink(full) else full)

    def get(self, path: Path) -> ModuleType | None:
        count = len(sys.modules)
        if count < self._scanned:
            self._by_file.clear()
            self._scanned = 0
        for loaded in list(itertools.islice(sys.modules.values(), self._scanned, None)):
            file = getattr(loaded, "__file__", None)
            if file:
                self._by_file.setdefault(self.resolve(file), loaded)
        self._scanned = count
        module = self._by_file.get(path)
        if module is not None and sys.modules.get(module.__name__) is not module:
            self._by_file.clear()
            self._scanned = 0
            return self.get(path)
        return module


def _error_location(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    user_frames = [f for f in frames if "importlib" not in f.filename and "flyte_deploy" not in f.filename]
    frame = (user_frames or frames)[-1] if (user_frames or frames) else None
    return f"{frame.filename}:{frame.lineno}" if frame else str(path)


def import_file(path: Path, root_dir: Path, imported: ImportedFiles | None = None) -> ModuleType:
    """Import ``path`` once (reusing a module already imported from it under any name);
    an import failure is a ``DiscoveryError`` naming file and line. Pass one ``imported``
    index when importing many files."""
    imported = imported or ImportedFiles()
    path = imported.resolve(str(path))
    if not path.is_file():
        raise DiscoveryError(f"{path}: no such file")
    existing = imported.get(path)
    if existing is not None:
        return existing
    name, base = module_name_for(path, root_dir)
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(name)
    except DiscoveryError:
        raise
    except BaseException as exc:  # the user's code may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise DiscoveryError(f"{_error_location(exc, path)}: error importing {path.name}:"
                             f" {type(exc).__name__}: {exc}") from exc
    file = getattr(module, "__file__", None)
    if file and imported.resolve(file) != path:
        raise DiscoveryError(f"{path}: module name {name!r} is already taken by {file}")
    return module


def environments_in(module: ModuleType) -> dict[str, TaskEnvironment]:
    """Module variables bound to TaskEnvironments, by variable name."""
    return {var: value for var, value in vars(module).items() if isinstance(value, TaskEnvironment)}


def _unique(envs: list[TaskEnvironment]) -> tuple[TaskEnvironment, ...]:
    """Environments deduplicated by identity; two objects with one name is an error."""
    by_name: dict[str, TaskEnvironment] = {}
    for env in envs:
        other = by_name.setdefault(env.name, env)
        if other is not env:
            raise DiscoveryError(f"two environments are named {env.name!r}: {other.location} and {env.location}")
    return tuple(by_name.values())


def discover(request: DeployRequest, root_dir: Path) -> Discovery:
    """Discover and select environments as ``request`` asks."""
    if request.mode == "objects":
        found = _unique(list(request.objects))
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
    modules = {file: import_file(file, root_dir, imported) for file in files}
    environments = _unique([env for module in modules.values() for env in environments_in(module).values()])

    if request.mode == "file":
        module = modules[path]
        module_envs = environments_in(module)
        selected = []
        for var in request.env_names:
            env = module_envs.get(var)
            if env is None:
                available = ", ".join(sorted(module_envs)) or "none"
                if hasattr(module, var):
                    raise DiscoveryError(f"{request.path}: {var!r} is a {type(getattr(module, var)).__name__},"
                                         f" not a TaskEnvironment; environments in the file: {available}")
                raise DiscoveryError(f"{request.path}: no TaskEnvironment variable {var!r};"
                                     f" environments in the file: {available}")
            selected.append(env)
        selected_envs = _unique(selected)
    else:
        selected_envs = environments
    return Discovery(environments=environments, selected=selected_envs, loaded_modules=tuple(sys.modules))


@hookimpl(trylast=True)
def discover_environments(session: DeploySession, request: DeployRequest) -> Discovery:
    return discover(request, session.config.root_dir)

"""Importing the user's files as modules, as ``flyte deploy`` does.

A file's module name is its path relative to the root dir with ``/`` as ``.``
(``root/pkg/mod.py`` is ``pkg.mod``, imported with the root on ``sys.path``); a file outside
the root dir is named by its stem and imported from its own directory. That name is what a
runtime imports from the bundle, so a name part need not be an identifier
(``01_hello.py`` is module ``01_hello``: ``importlib`` finds it by file name). A file already
imported under any name is reused, so one file is never imported twice.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from .config import LOCAL_PLUGIN_FILE
from .errors import DiscoveryError

SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__", "node_modules", "build", "dist"}


def is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() or (path / "conda-meta").is_dir()


def iter_python_files(directory: Path) -> list[Path]:
    """Every .py file under ``directory``, sorted, skipping hidden, virtualenv and
    site-packages directories and the local plugin file."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS and not is_virtualenv(here / d)
        )
        found += [here / f for f in sorted(files) if f.endswith(".py") and f != LOCAL_PLUGIN_FILE]
    return found


def module_name_for(path: Path, root_dir: Path) -> tuple[str, Path]:
    """The module name of ``path`` and the sys.path entry it is imported from. A name part
    holding a dot, or starting with one, cannot be told apart from a package path and is a
    ``DiscoveryError``."""
    try:
        relative = path.relative_to(root_dir)
        base = root_dir
    except ValueError:
        relative, base = Path(path.name), path.parent
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or any(not p or "." in p or not p.isprintable() for p in parts):
        raise DiscoveryError(f"{path}: cannot be imported as a module (name parts {parts} hold a dot)")
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


def import_file(
    path: Path, root_dir: Path, imported: ImportedFiles | None = None, *, own_dir_importable: bool = False
) -> ModuleType:
    """Import ``path`` once (reusing a module already imported from it under any name);
    an import failure is a ``DiscoveryError`` naming file and line. Pass one ``imported``
    index when importing many files. With ``own_dir_importable`` the file's directory is
    appended to ``sys.path`` first, so it may import its sibling files by their bare names
    (as ``flyte deploy FILE ENV`` allows)."""
    imported = imported or ImportedFiles()
    given, path = path, imported.resolve(str(path))
    if not path.is_file():
        if given.is_symlink():
            raise DiscoveryError(f"{given}: a symbolic link to {os.readlink(given)}, which is not a file")
        raise DiscoveryError(f"{path}: no such file")
    existing = imported.get(path)
    if existing is not None:
        return existing
    name, base = module_name_for(path, root_dir)
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    if own_dir_importable and str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    try:
        module = importlib.import_module(name)
    except DiscoveryError:
        raise
    except BaseException as exc:  # the user's code may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise DiscoveryError(
            f"{_error_location(exc, path)}: error importing {path.name}: {type(exc).__name__}: {exc}"
        ) from exc
    file = getattr(module, "__file__", None)
    if file and imported.resolve(file) != path:
        raise DiscoveryError(f"{path}: module name {name!r} is already taken by {file}")
    return module


__all__ = ["ImportedFiles", "import_file", "is_virtualenv", "iter_python_files", "module_name_for"]

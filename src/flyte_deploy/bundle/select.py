"""Which files a bundle holds (all relative to the root dir, ``--root-dir``).

* ``loaded_modules``: the ``.py`` source of every module discovery imported
  (``sys.modules``) that lies under the root dir, plus the ``__init__.py`` of each package
  needed to import it; never modules under ``site-packages``/``dist-packages``, a
  virtualenv, ``.git``, the local deploy store, flyte-deploy itself or the Flyte SDK. Ignore files do
  not apply: an imported module is needed whatever ``.gitignore`` says.
* ``all``: every regular file under the root dir, honouring ``.gitignore`` and
  ``.flyteignore`` files in any directory (``ignore``), and always skipping ``.git``,
  ``.hg``, ``.svn``, ``__pycache__``, ``*.pyc``, virtualenvs (a ``pyvenv.cfg`` or
  ``conda-meta`` inside), cache directories tagged with ``CACHEDIR.TAG``, and local deploy
  stores (any ``.flyte-deploy`` directory, and the configured ``store``/``storage`` when
  they are local paths under the root dir). FIFOs, sockets and devices are never opened
  and never bundled.

Symlinks: a link whose target resolves inside the root dir is followed and stored as what
it points to (a regular file, or a directory's files), under the link's own path, so a
bundle never depends on which link targets happened to be selected. A directory link
back into its own ancestry, a link into ``.git``, ``__pycache__`` or a deploy store, a
link pointing outside the root dir and a dangling link are never followed and never
stored.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BundleError
from .files import inside, read_regular

if TYPE_CHECKING:  # ignore (and pathspec) load with copy style all only
    from .ignore import IgnoreRules

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def _sdk_dirs() -> tuple[str, ...]:
    """flyte-deploy's own package and the Flyte SDK's (found without importing it): never user code."""
    import importlib.util

    spec = importlib.util.find_spec("flyte")
    found = [os.path.realpath(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return (PACKAGE_DIR, *found)


NOT_USER_CODE_DIRS = _sdk_dirs()
LOCAL_STORE_DIR = ".flyte-deploy"
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", LOCAL_STORE_DIR})
NOT_CODE_DIRS = frozenset({"site-packages", "dist-packages"})
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"

#: relative name -> absolute path to read it from
FileMap = dict[str, str]


def _is_virtualenv(names: set[str], directory: str) -> bool:
    return ("pyvenv.cfg" in names and os.path.isfile(os.path.join(directory, "pyvenv.cfg"))) or (
        "conda-meta" in names and os.path.isdir(os.path.join(directory, "conda-meta"))
    )


def _is_cache_dir(names: set[str], directory: str) -> bool:
    if "CACHEDIR.TAG" not in names:
        return False
    try:
        return read_regular(os.path.join(directory, "CACHEDIR.TAG"), len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
    except OSError:
        return False


def _in_skipped_dir(relative: str) -> bool:
    """Whether a root-relative path lies in (or is) an always-skipped directory."""
    return any(part in ALWAYS_SKIPPED_DIRS for part in relative.split(os.sep))


def loaded_module_files(module_names: Iterable[str], root_dir: Path, skip: Iterable[str] = ()) -> FileMap:
    """The source files of the loaded modules ``module_names`` that lie under ``root_dir``,
    plus the ``__init__.py`` of the packages needed to import them.

    ``skip`` holds root-relative directories never bundled (a configured local store).
    """
    root = os.path.realpath(root_dir)
    skipped = tuple(s.strip("/") + "/" for s in skip)
    real_dirs: dict[str, str] = {}
    excluded_dirs: dict[str, bool] = {}

    def real_path(path: str) -> str:
        directory, name = os.path.split(path)
        real_dir = real_dirs.get(directory)
        if real_dir is None:
            real_dir = real_dirs[directory] = os.path.realpath(directory)
        full = os.path.join(real_dir, name)
        return os.path.realpath(full) if os.path.islink(full) else full

    def excluded_dir(directory: str) -> bool:
        """Whether ``directory`` (under the root) is or lies in a virtualenv,
        site-packages, VCS or cache directory, or the deploy store."""
        if directory == root:
            return False
        if directory not in excluded_dirs:
            name = os.path.basename(directory)
            relative = directory[len(root) + 1 :].replace(os.sep, "/") + "/"
            excluded_dirs[directory] = (
                name in NOT_CODE_DIRS
                or name in ALWAYS_SKIPPED_DIRS
                or relative.startswith(skipped)
                or os.path.isfile(os.path.join(directory, "pyvenv.cfg"))
                or os.path.isdir(os.path.join(directory, "conda-meta"))
                or excluded_dir(os.path.dirname(directory))
            )
        return excluded_dirs[directory]

    def bundled_name(path: str) -> str | None:
        """The archive name of ``path``, or None when it must not be bundled."""
        if not inside(path, root) or excluded_dir(os.path.dirname(path)):
            return None
        real = real_path(path)
        if not inside(real, root) or any(inside(real, d) for d in NOT_USER_CODE_DIRS):
            return None  # a symlink out of the root is never followed; the SDKs are not user code
        return path[len(root) + 1 :].replace(os.sep, "/")

    files: FileMap = {}
    package_dirs: set[str] = set()
    for name in module_names:
        module = sys.modules.get(name)
        source = getattr(module, "__file__", None)
        if not isinstance(source, str) or not source.endswith(".py"):
            continue
        path = os.path.abspath(source)
        relative = bundled_name(path)
        if relative is None:
            continue
        files[relative] = path
        # the packages above the module: one directory per leading dotted name part
        directory = os.path.dirname(path)
        if os.path.basename(path) == "__init__.py":
            directory = os.path.dirname(directory)
        for _ in range(name.count(".")):
            if directory not in package_dirs:
                package_dirs.add(directory)
                init = os.path.join(directory, "__init__.py")
                init_name = bundled_name(init)
                if init_name is not None and os.path.isfile(init):
                    files[init_name] = init
            directory = os.path.dirname(directory)
    return dict(sorted(files.items()))


def _list(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as scan:
            return list(scan)
    except OSError as exc:
        raise BundleError(f"{directory}: cannot list the directory: {exc.strerror}") from None


def all_files(root_dir: Path, skip: Iterable[str] = ()) -> FileMap:
    """Every regular file under ``root_dir`` that the ignore files and the always-skipped
    directories (module docstring) leave in; symlinks as the docstring says."""
    from .ignore import IgnoreRules

    root = os.path.realpath(root_dir)
    skipped = frozenset(s.strip("/") for s in skip)
    files: FileMap = {}

    def walk(directory: str, real_dir: str, prefix: str, rules: IgnoreRules, ancestors: frozenset[str]) -> None:
        entries = _list(directory)
        names = {e.name for e in entries}
        if prefix and (_is_virtualenv(names, directory) or _is_cache_dir(names, directory)):
            return
        rules = rules.enter(Path(directory), prefix, names)
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not inside(target, root) or _in_skipped_dir(target[len(root) + 1 :]):
                    continue  # outside the root (or dangling), or into .git and the like: never followed
                try:
                    mode = os.stat(target).st_mode
                except OSError:
                    continue  # dangling, or a loop
                is_dir, is_file = stat.S_ISDIR(mode), stat.S_ISREG(mode)
            else:
                target = ""
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = not is_dir and entry.is_file(follow_symlinks=False)  # lstat: S_ISREG only
            if is_dir:
                if entry.name in ALWAYS_SKIPPED_DIRS or relative in skipped or rules.ignored(relative, True):
                    continue
                real = target or os.path.join(real_dir, entry.name)
                if real in ancestors:
                    continue  # a link back into its own ancestry
                walk(entry.path, real, relative + "/", rules, ancestors | {real})
            elif is_file:
                if entry.name.endswith(".pyc") or entry.name == ".git" or rules.ignored(relative, False):
                    continue
                files[relative] = entry.path

    walk(root, root, "", IgnoreRules.above(Path(root)), frozenset({root}))
    return dict(sorted(files.items()))


def why_not_in_all(root_dir: Path, relative: str, skip: Iterable[str] = ()) -> str:
    """Why ``all_files(root_dir, skip)`` leaves out the root-relative file ``relative``:
    the ignore rule (``file:line:pattern``) or always-skipped directory responsible."""
    from .ignore import IgnoreRules

    root = os.path.realpath(root_dir)
    skipped = frozenset(s.strip("/") for s in skip)
    parts = relative.split("/")
    rules = IgnoreRules.above(Path(root))
    directory, prefix = root, ""
    for index, part in enumerate(parts):
        names = {e.name for e in _list(directory)}
        if prefix and _is_virtualenv(names, directory):
            return f"{prefix.rstrip('/')} is a virtualenv, which is never bundled"
        if prefix and _is_cache_dir(names, directory):
            return f"{prefix.rstrip('/')} is a cache directory (CACHEDIR.TAG), which is never bundled"
        rules = rules.enter(Path(directory), prefix, names)
        path, is_dir = prefix + part, index < len(parts) - 1
        if is_dir and (part in ALWAYS_SKIPPED_DIRS or path in skipped):
            return f"{path} is never bundled (a version-control, cache or deploy-store directory)"
        decision = rules.rule_for(path, is_dir)
        if decision is not None and decision[0]:
            what = "its directory " + path if is_dir else "it"
            return f"{what} is ignored by {decision[1]}"
        directory, prefix = os.path.join(directory, part), path + "/"
    if part.endswith(".pyc"):
        return "compiled *.pyc files are never bundled"
    return "it is not a regular file under the root dir"

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
* ``include``, with every copy style (``included_files``): the files, directories (as
  ``all`` selects their files) and glob matches environments name in ``include=[...]``;
  a path or link out of the root dir there is an error, not skipped.

Symlinks: a link whose target resolves inside the root dir is followed and stored as what
it points to (a regular file, or a directory's files), under the link's own path, so a
bundle never depends on which link targets happened to be selected. A directory link
back into its own ancestry, a link into ``.git``, ``__pycache__`` or a deploy store, a
link pointing outside the root dir and a dangling link are never followed and never
stored.
"""

from __future__ import annotations

import glob
import os
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..environments import Include
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


def _in_store(relative: str, skipped: frozenset[str]) -> bool:
    """Whether a root-relative path lies in (or is) one of the ``skipped`` store directories."""
    return any(relative == s or relative.startswith(s + "/") for s in skipped)


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


def _walk(
    files: FileMap,
    root: str,
    directory: str,
    real_dir: str,
    prefix: str,
    rules: IgnoreRules,
    ancestors: frozenset[str],
    skipped: frozenset[str],
    escaped: Callable[[str, str], None] | None = None,
) -> None:
    """Add to ``files`` what ``all_files`` bundles of ``directory`` (named ``prefix`` under
    the root, resolved ``real_dir``; ``ancestors`` the resolved directories above it and
    itself, ``rules`` the ignore rules in force above it). A link out of the root that the
    ignore rules keep is left out, or handed to ``escaped(name, target)`` when given."""
    entries = _list(directory)
    names = {e.name for e in entries}
    if prefix and (_is_virtualenv(names, directory) or _is_cache_dir(names, directory)):
        return
    rules = rules.enter(Path(directory), prefix, names)
    for entry in entries:
        relative = prefix + entry.name
        outside = False
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            outside = not inside(target, root)
            if not outside and _in_skipped_dir(target[len(root) + 1 :]):
                continue  # into .git and the like: never followed
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
        elif not is_file or entry.name.endswith(".pyc") or entry.name == ".git" or rules.ignored(relative, False):
            continue
        if outside:
            if escaped is not None:
                escaped(relative, target)
            continue  # a link out of the root is never followed
        if is_file:
            files[relative] = entry.path
            continue
        real = target or os.path.join(real_dir, entry.name)
        if real in ancestors:
            continue  # a link back into its own ancestry
        _walk(files, root, entry.path, real, relative + "/", rules, ancestors | {real}, skipped, escaped)


def all_files(root_dir: Path, skip: Iterable[str] = ()) -> FileMap:
    """Every regular file under ``root_dir`` that the ignore files and the always-skipped
    directories (module docstring) leave in; symlinks as the docstring says."""
    from .ignore import IgnoreRules

    root = os.path.realpath(root_dir)
    files: FileMap = {}
    _walk(files, root, root, root, "", IgnoreRules.above(Path(root)), frozenset({root}), _skipped(skip))
    return dict(sorted(files.items()))


def _skipped(skip: Iterable[str]) -> frozenset[str]:
    return frozenset(s.strip("/") for s in skip)


def _enter(root: str, parts: Sequence[str], skipped: frozenset[str]) -> tuple[IgnoreRules, str | None]:
    """Descend from the resolved ``root`` through its subdirectories ``parts`` (one path):
    the ignore rules in force inside the last one, and why ``all_files`` leaves it out
    (None when it does not)."""
    from .ignore import IgnoreRules

    rules = IgnoreRules.above(Path(root))
    directory, prefix = root, ""
    for index in range(len(parts) + 1):
        names = {e.name for e in _list(directory)}
        if prefix and _is_virtualenv(names, directory):
            return rules, f"{prefix.rstrip('/')} is a virtualenv, which is never bundled"
        if prefix and _is_cache_dir(names, directory):
            return rules, f"{prefix.rstrip('/')} is a cache directory (CACHEDIR.TAG), which is never bundled"
        rules = rules.enter(Path(directory), prefix, names)
        if index == len(parts):
            break
        part = parts[index]
        path = prefix + part
        if part in ALWAYS_SKIPPED_DIRS or path in skipped:
            return rules, f"{path} is never bundled (a version-control, cache or deploy-store directory)"
        decision = rules.rule_for(path, True)
        if decision is not None and decision[0]:
            return rules, f"its directory {path} is ignored by {decision[1]}"
        directory, prefix = os.path.join(directory, part), path + "/"
    return rules, None


def why_not_in_all(root_dir: Path, relative: str, skip: Iterable[str] = ()) -> str:
    """Why ``all_files(root_dir, skip)`` leaves out the root-relative file ``relative``:
    the ignore rule (``file:line:pattern``) or always-skipped directory responsible."""
    *parts, name = relative.split("/")
    rules, reason = _enter(os.path.realpath(root_dir), parts, _skipped(skip))
    if reason is not None:
        return reason
    decision = rules.rule_for(relative, False)
    if decision is not None and decision[0]:
        return f"it is ignored by {decision[1]}"
    if name.endswith(".pyc"):
        return "compiled *.pyc files are never bundled"
    return "it is not a regular file under the root dir"


def included_files(includes: Iterable[tuple[str, Include]], root_dir: Path, skip: Iterable[str] = ()) -> FileMap:
    """The files that environments' ``include`` entries add to a bundle, whatever its copy
    style; ``(where, include)`` pairs, ``where`` naming the environment (``file:line:
    environment NAME``) in errors.

    An entry is a file (bundled even when ignore rules would leave it out), a directory
    (its files as ``all_files`` selects them: ignore files and always-skipped directories
    apply) or else a glob pattern (``glob.glob``: ``*`` skips dot files and ``**`` is one
    level, as in the Flyte SDK) whose matching files the ignore rules keep. Names are the
    entry's path relative to the root dir, a symlink stored under its own name. A
    ``BundleError`` naming ``where`` and the entry: a path outside the root dir, a symlink
    resolving outside it (also one met in an included directory) or into an
    always-skipped directory, a path in one, a missing path, a glob matching no file, a
    special file, and an entry that selects no file at all."""
    selector = _Includes(root_dir, _skipped(skip))
    files: FileMap = {}
    for where, include in includes:
        files.update(selector.files_of(where, include))
    return dict(sorted(files.items()))


class _Includes:
    """``included_files`` for one root dir, remembering the ignore rules of each directory."""

    def __init__(self, root_dir: Path, skipped: frozenset[str]) -> None:
        self.root = os.path.realpath(root_dir)
        self.bases = tuple(dict.fromkeys((self.root, os.path.abspath(root_dir))))
        self.skipped = skipped
        self.entered: dict[str, tuple[IgnoreRules, str | None]] = {}

    def name_of(self, path: str) -> str | None:
        """The normalized absolute ``path``'s name under the root dir (``""`` for the root;
        the root may be spelled through a link), or None when it is outside."""
        resolved_dir = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        for candidate in (path, resolved_dir):
            for base in self.bases:
                if inside(candidate, base):
                    return candidate[len(base) + 1 :].replace(os.sep, "/")
        return None

    def rules_in(self, relative_dir: str) -> tuple[IgnoreRules, str | None]:
        """``_enter`` of the root-relative directory ``relative_dir``, once."""
        if relative_dir not in self.entered:
            parts = relative_dir.split("/") if relative_dir else []
            self.entered[relative_dir] = _enter(self.root, parts, self.skipped)
        return self.entered[relative_dir]

    def never_bundled(self, relative: str) -> bool:
        return _in_skipped_dir(relative) or _in_store(relative, self.skipped)

    def files_of(self, where: str, include: Include) -> FileMap:
        entry, path = include

        def fail(why: str) -> BundleError:
            return BundleError(f"{where}: include {entry!r}: {why}")

        def outside_root(path: str) -> BundleError:
            return fail(f"{path} is outside the root dir {self.root}; pass --root-dir with a directory holding it")

        def escaped(name: str, target: str) -> None:
            raise fail(f"{name} is a symlink to {target}, outside the root dir {self.root}; it is never bundled")

        def check_target(name: str, path: str) -> None:
            """A ``path`` (named ``name``) reached through a link must resolve into the root
            dir, and not into a directory that is never bundled."""
            real = os.path.realpath(path)
            if real == os.path.normpath(os.path.join(self.root, name)):
                return  # no link on the way
            if not inside(real, self.root):
                escaped(name or ".", real)
            if self.never_bundled(real[len(self.root) + 1 :]):
                raise fail(f"{name} is a symlink to {real}, in a directory that is never bundled")

        relative = self.name_of(path)
        if relative is None:
            raise outside_root(path)
        try:
            mode: int | None = os.stat(path).st_mode
        except OSError:
            mode = None
        found: FileMap = {}
        if mode is not None and stat.S_ISDIR(mode):
            check_target(relative, path)
            self._walk_dir(found, relative, path, fail, escaped)
            if not found:
                raise fail(
                    f"{relative or '.'} holds no file to bundle: it is empty, or its ignore rules leave out every file"
                )
        elif mode is not None and stat.S_ISREG(mode):
            if self.never_bundled(relative):
                raise fail(f"{relative} is never bundled (a version-control, cache or deploy-store directory)")
            check_target(relative, path)
            found[relative] = path
        elif mode is not None:
            raise fail(f"{relative} is not a regular file or a directory")
        elif not glob.has_magic(entry):
            raise fail(f"{path} does not exist")
        else:
            matches = sorted(glob.glob(path))
            if not matches:
                raise fail(f"no file matches {path}")
            for match in matches:
                name = self.name_of(os.path.normpath(match))
                if name is None:
                    raise outside_root(match)
                if os.path.isfile(match) and self._kept(name):
                    check_target(name, match)
                    found[name] = match
            if not found:
                raise fail(f"every match of {path} is a directory, or a file the ignore rules leave out")
        return found

    def _kept(self, name: str) -> bool:
        """Whether ``all_files`` would keep the root-relative file ``name`` (a glob's match)."""
        directory, _, base = name.rpartition("/")
        rules, reason = self.rules_in(directory)
        return reason is None and not base.endswith(".pyc") and not rules.ignored(name, False)

    def _walk_dir(
        self,
        found: FileMap,
        relative: str,
        path: str,
        fail: Callable[[str], BundleError],
        escaped: Callable[[str, str], None],
    ) -> None:
        """Add the files ``all_files`` keeps in the included directory ``path`` (named ``relative``)."""
        from .ignore import IgnoreRules

        if relative:
            reason = self.rules_in(relative)[1]
            above = self.rules_in(relative.rpartition("/")[0])[0]
        else:
            reason, above = None, IgnoreRules.above(Path(self.root))
        if reason is not None:
            raise fail(f"{relative} is left out of every bundle: {reason}")
        parts = relative.split("/") if relative else []
        ancestors = frozenset(os.path.realpath(os.path.join(self.root, *parts[:i])) for i in range(len(parts) + 1))
        prefix = relative + "/" if relative else ""
        _walk(found, self.root, path, os.path.realpath(path), prefix, above, ancestors, self.skipped, escaped)

"""Built-in ``build_bundle``: one deterministic tar.gz of the project code, shared by every
environment of the plan.

Which files (all relative to the root dir, ``--root-dir``, default the current directory):

* ``loaded_modules`` (default): the ``.py`` source of every module discovery imported
  (``sys.modules``) that lies under the root dir, plus the ``__init__.py`` of each package
  needed to import it; never modules under ``site-packages``/``dist-packages``, a
  virtualenv, ``.git``, the local deploy store, flyte-deploy itself or the Flyte SDK. Ignore files do
  not apply: an imported module is needed whatever ``.gitignore`` says.
* ``all``: every file under the root dir, honouring ``.gitignore`` and ``.flyteignore``
  files in any directory (see ``flyte_deploy.ignore``), and always skipping ``.git``,
  ``.hg``, ``.svn``, ``__pycache__``, ``*.pyc``, virtualenvs (a ``pyvenv.cfg`` or
  ``conda-meta`` inside), cache directories tagged with ``CACHEDIR.TAG``, and local deploy
  stores (any ``.flyte-deploy`` directory, and the configured ``store``/``storage`` when
  they are local paths under the root dir).
* ``none``: no bundle (the lifecycle requires an explicit ``--version``).

A task whose source file lies outside the root dir is a ``BundleError`` that says so.

Symlinks: a link whose target resolves inside the root dir is followed and stored as what
it points to (a regular file, or a directory's files), under the link's own path, so a
bundle never depends on which link targets happened to be selected. A directory link
back into its own ancestry, a link into ``.git``, ``__pycache__`` or a deploy store, a
link pointing outside the root dir and a dangling link are never followed and never
stored. The archive therefore holds only regular files with relative names, never
absolute paths, ``..`` or links.

Determinism: members sorted by name; mtime 0, uid/gid 0, no user or group names; mode
0o755 when the owner may execute the file and 0o644 otherwise (umask and ownership play
no part). The same files give the same tar stream whatever their mtimes, order on disk or
owners, and its sha256 (``Bundle.digest``, the content digest) names the bundle. The gzip
layer (no file name or time, fixed level) is deterministic only for one zlib build, so the
sha256 of the compressed bytes (``Bundle.archive_digest``) serves integrity checks only.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sys
import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import NamedTuple

from ..config import Config
from ..errors import BundleError
from ..hashing import HashingWriter
from ..hookspecs import hookimpl
from ..ignore import IgnoreRules
from ..session import DeploySession
from ..storage import local_path
from ..types import Bundle, DeployPlan

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
ARCHIVE_NAME = "bundle.tar.gz"
#: the level written; the bundle's identity (content digest) does not depend on it
COMPRESS_LEVEL = 1
_FLUSH_AT = 1 << 20
_PENDING_CHUNKS = 4
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_STREAM_ABOVE = 8 << 20
_BLOCK = 512
_RECORD = 20 * _BLOCK
_SHORT_ASCII_NAME = re.compile(rb"[\x20-\x7e]{1,100}")
# the constant part of a ustar header after the checksum: type "0", empty link name,
# POSIX magic, empty user/group names, device numbers and prefix
_HEADER_TAIL = b"0" + b"\0" * 100 + b"ustar\x0000" + b"\0" * (32 + 32 + 8 + 8 + 155 + 12)
_HEADER_TAIL_SUM = sum(_HEADER_TAIL) + 8 * ord(" ")

#: relative name -> absolute path to read it from
FileMap = dict[str, str]


# -- which files ----------------------------------------------------------------------


def _is_virtualenv(names: set[str], directory: str) -> bool:
    return ("pyvenv.cfg" in names and os.path.isfile(os.path.join(directory, "pyvenv.cfg"))) or (
        "conda-meta" in names and os.path.isdir(os.path.join(directory, "conda-meta")))


def _is_cache_dir(names: set[str], directory: str) -> bool:
    if "CACHEDIR.TAG" not in names:
        return False
    try:
        with open(os.path.join(directory, "CACHEDIR.TAG"), "rb") as tag:
            return tag.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
    except OSError:
        return False


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _in_skipped_dir(relative: str) -> bool:
    """Whether a root-relative path lies in (or is) an always-skipped directory."""
    return any(part in ALWAYS_SKIPPED_DIRS for part in relative.split(os.sep))


def loaded_module_files(module_names: Iterable[str], root_dir: Path,
                        skip: Iterable[str] = ()) -> FileMap:
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
            relative = directory[len(root) + 1:].replace(os.sep, "/") + "/"
            excluded_dirs[directory] = (
                name in NOT_CODE_DIRS or name in ALWAYS_SKIPPED_DIRS or relative.startswith(skipped)
                or os.path.isfile(os.path.join(directory, "pyvenv.cfg"))
                or os.path.isdir(os.path.join(directory, "conda-meta"))
                or excluded_dir(os.path.dirname(directory)))
        return excluded_dirs[directory]

    def bundled_name(path: str) -> str | None:
        """The archive name of ``path``, or None when it must not be bundled."""
        if not _inside(path, root) or excluded_dir(os.path.dirname(path)):
            return None
        real = real_path(path)
        if not _inside(real, root) or any(_inside(real, d) for d in NOT_USER_CODE_DIRS):
            return None  # a symlink out of the root is never followed; the SDKs are not user code
        return path[len(root) + 1:].replace(os.sep, "/")

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


def all_files(root_dir: Path, skip: Iterable[str] = ()) -> FileMap:
    """Every file under ``root_dir`` that the ignore files and the always-skipped
    directories (module docstring) leave in; symlinks as the docstring says."""
    root = os.path.realpath(root_dir)
    skipped = frozenset(s.strip("/") for s in skip)
    files: FileMap = {}

    def walk(directory: str, real_dir: str, prefix: str, rules: IgnoreRules, ancestors: frozenset[str]) -> None:
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError as exc:
            raise BundleError(f"{directory}: cannot list the directory: {exc.strerror}") from None
        names = {e.name for e in entries}
        if prefix and (_is_virtualenv(names, directory) or _is_cache_dir(names, directory)):
            return
        rules = rules.enter(Path(directory), prefix, names)
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not _inside(target, root) or _in_skipped_dir(target[len(root) + 1:]):
                    continue  # outside the root (or dangling), or into .git and the like: never followed
                is_dir, is_file = os.path.isdir(target), os.path.isfile(target)
            else:
                target = ""
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = not is_dir and entry.is_file(follow_symlinks=False)
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


# -- the archive ----------------------------------------------------------------------



def tar_header(name: str, size: int, mode: int) -> bytes:
    """The tar header of a regular file with the normalized metadata. Short ASCII names
    get a plain ustar block built here (fast, and identical to what ``tarfile`` writes);
    others go through ``tarfile``'s PAX headers."""
    encoded = name.encode("utf-8", "surrogateescape")
    if size < 8 ** 11 and _SHORT_ASCII_NAME.fullmatch(encoded):
        head = b"%s%07o\x000000000\x000000000\x00%011o\x0000000000000\x00" % (encoded.ljust(100, b"\0"), mode, size)
        return b"%s%06o\x00 %s" % (head, sum(head) + _HEADER_TAIL_SUM, _HEADER_TAIL)
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class WrittenArchive(NamedTuple):
    """What ``write_archive`` wrote: ``digest``, the sha256 of the uncompressed tar stream
    (the content digest, independent of the compressor); ``archive_digest`` and ``size``,
    the sha256 and byte count of the compressed file."""

    digest: str
    archive_digest: str
    size: int


def write_archive(files: Mapping[str, str], destination: Path,
                  compresslevel: int = COMPRESS_LEVEL) -> WrittenArchive:
    """Write the deterministic tar.gz of ``files`` (archive name -> path to read) to
    ``destination``, reading each file once.

    The tar stream is cut into 1 MiB chunks that a second thread hashes, compresses and
    hashes again (zlib and hashlib release the GIL) while this one reads the next files."""
    content = hashlib.sha256()
    try:
        with open(destination, "wb") as out, ThreadPoolExecutor(max_workers=1) as compressor:
            sink = HashingWriter(out)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=compresslevel)
            pending: deque[Future[int]] = deque()

            def compress(chunk: bytes) -> int:
                content.update(chunk)
                return gz.write(chunk)

            def emit(chunk: bytes) -> None:
                pending.append(compressor.submit(compress, chunk))
                while len(pending) > _PENDING_CHUNKS:
                    pending.popleft().result()

            try:
                buffer = bytearray()
                written = 0
                for name in sorted(files):
                    written += _add_file(buffer, emit, name, files[name])
                    if len(buffer) >= _FLUSH_AT:
                        emit(bytes(buffer))
                        buffer.clear()
                end = 2 * _BLOCK
                end += -(written + end) % _RECORD
                buffer += bytes(end)
                emit(bytes(buffer))
            finally:
                wait(pending)  # never close the stream under the compressing thread
            while pending:
                pending.popleft().result()
            gz.close()
    except OSError as exc:
        raise BundleError(f"{destination}: cannot write the bundle: {exc.strerror or exc}") from None
    return WrittenArchive(content.hexdigest(), sink.sha256.hexdigest(), sink.size)


def _add_file(buffer: bytearray, emit: Callable[[bytes], None], name: str, path: str) -> int:
    """Append one member to ``buffer`` (a large file goes to ``emit`` in chunks); return
    the number of tar bytes it took."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read it for the bundle: {exc.strerror}") from None
    try:
        stat = os.fstat(fd)
        mode = 0o755 if stat.st_mode & 0o100 else 0o644
        size = stat.st_size
        if size <= _STREAM_ABOVE:
            # a regular file reads short only at its end, so one read gets it all
            data = os.read(fd, size + 1)
            if len(data) > size:
                raise BundleError(f"{path}: the file grew while it was being bundled")
            size = len(data)
            header = tar_header(name, size, mode)
            buffer += header
            buffer += data
        else:
            header = tar_header(name, size, mode)
            buffer += header
            emit(bytes(buffer))
            buffer.clear()
            remaining = size
            while remaining:
                chunk = os.read(fd, min(remaining, _FLUSH_AT))
                if not chunk:
                    raise BundleError(f"{path}: the file shrank while it was being bundled")
                emit(chunk)
                remaining -= len(chunk)
        padding = -size % _BLOCK
        buffer += bytes(padding)
        return len(header) + size + padding
    except OSError as exc:
        raise BundleError(f"{path}: cannot read it for the bundle: {exc.strerror}") from None
    finally:
        os.close(fd)


def extract_archive(archive: Path, destination: Path) -> list[str]:
    """Unpack a bundle into ``destination``; a member that is absolute, contains ``..``,
    is a link pointing outside, or is a device is a ``BundleError``. Returns member names."""
    destination = destination.resolve()
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:*") as tar:
        members = tar.getmembers()
        for member in members:
            target = (destination / member.name).resolve()
            if member.name.startswith("/") or ".." in Path(member.name).parts or not target.is_relative_to(destination):
                raise BundleError(f"{archive}: member {member.name!r} would escape the target directory")
            if not (member.isfile() or member.isdir() or member.issym()):
                raise BundleError(f"{archive}: member {member.name!r} is not a regular file, directory or symlink")
            if member.issym():
                link = (target.parent / member.linkname).resolve()
                if member.linkname.startswith("/") or not link.is_relative_to(destination):
                    raise BundleError(f"{archive}: symlink {member.name!r} points outside the target directory")
        # the "data" filter where this Python has it (3.11.4+; Debian bookworm's 3.11.2 has not)
        safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(destination, members=members, **safety)
    return [m.name for m in members]


# -- the phase ------------------------------------------------------------------------


def store_dirs(config: Config) -> tuple[str, ...]:
    """Root-relative directories of the local deploy store and bundle storage, which
    are never bundled."""
    skipped: set[str] = set()
    root = os.path.realpath(config.root_dir)
    for url in (config.store_url, config.storage_url):
        path = local_path(url)
        if path is not None:
            path = os.path.realpath(path)
            if _inside(path, root) and path != root:
                skipped.add(path[len(root) + 1:].replace(os.sep, "/"))
    return tuple(sorted(skipped))


def select_files(plan: DeployPlan, skip: Iterable[str] = ()) -> FileMap:
    """The files of ``plan``'s bundle for its copy style (``all`` or ``loaded_modules``)."""
    if plan.copy_style == "all":
        return all_files(plan.root_dir, skip)
    modules = plan.discovery.loaded_modules if plan.discovery else ()
    return loaded_module_files(modules, plan.root_dir, skip)


def check_sources_inside_root(plan: DeployPlan) -> None:
    """Every task's source file must lie under the root dir, or the bundle cannot hold it."""
    root = os.path.realpath(plan.root_dir)
    for env in plan.environments:
        for task in env.tasks.values():
            source = os.path.realpath(task.source_file)
            if not _inside(source, root):
                raise BundleError(f"task {task.name} (environment {env.name}) is defined in {source}, outside the"
                                  f" root dir {root}; pass --root-dir with a directory that contains it")


def build(plan: DeployPlan, skip: Iterable[str] = ()) -> Bundle:
    """The bundle for ``plan``, written to ``plan.scratch_dir/bundle.tar.gz``."""
    if plan.copy_style == "none":
        return Bundle(copy_style="none")
    check_sources_inside_root(plan)
    files = select_files(plan, skip)
    if not files:
        raise BundleError(f"no files to bundle under {plan.root_dir} (copy style {plan.copy_style})")
    destination = plan.scratch_dir / ARCHIVE_NAME
    written = write_archive(files, destination, COMPRESS_LEVEL)
    return Bundle(copy_style=plan.copy_style, digest=written.digest, path=destination, size=written.size,
                  files=tuple(files), archive_digest=written.archive_digest)


@hookimpl(trylast=True)
def build_bundle(session: DeploySession, plan: DeployPlan) -> Bundle:
    return build(plan, store_dirs(session.config))

"""Built-in ``build_bundle``: one deterministic tar.gz of the project code for all
environments of the plan.

Copy styles: ``loaded_modules`` (modules imported during discovery whose source lies
under the root dir), ``all`` (every file under the root dir), ``none`` (no bundle).
The archive is byte-identical for identical files: sorted members, mtime 0, uid/gid 0,
fixed modes, gzip header without name or time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Iterable

from ..errors import BundleError
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..types import Bundle, DeployPlan
from .discover import SKIPPED_DIRS, is_virtualenv

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _excluded(path: Path) -> bool:
    return any(part.startswith(".") or part in SKIPPED_DIRS for part in path.parts) or path.is_relative_to(PACKAGE_DIR)


def loaded_module_files(module_names: Iterable[str], root_dir: Path) -> list[str]:
    """Relative paths of the loaded modules' source files under ``root_dir``, plus the
    ``__init__.py`` files of their packages."""
    files: set[str] = set()
    for name in module_names:
        module = sys.modules.get(name)
        source = getattr(module, "__file__", None)
        if not source or not source.endswith(".py"):
            continue
        path = Path(source).resolve()
        if not path.is_relative_to(root_dir) or _excluded(path.relative_to(root_dir)) or _in_virtualenv(path, root_dir):
            continue
        relative = path.relative_to(root_dir)
        files.add(relative.as_posix())
        for parent in relative.parents:
            init = root_dir / parent / "__init__.py"
            if parent != Path(".") and init.is_file():
                files.add((parent / "__init__.py").as_posix())
    return sorted(files)


def _in_virtualenv(path: Path, root_dir: Path) -> bool:
    for parent in path.parents:
        if parent == root_dir:
            return False
        if is_virtualenv(parent):
            return True
    return False


def all_files(root_dir: Path) -> list[str]:
    """Every regular file under ``root_dir`` except hidden, cache and virtualenv directories."""
    found: list[str] = []
    for root, dirs, files in os.walk(root_dir):
        here = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS and not is_virtualenv(here / d)]
        for name in files:
            if name.endswith(".pyc"):
                continue
            full = here / name
            if full.is_file() and not full.is_symlink():
                found.append(full.relative_to(root_dir).as_posix())
    return sorted(found)


def write_archive(root_dir: Path, files: list[str], destination: Path) -> tuple[str, int]:
    """Write a deterministic tar.gz of ``files`` (relative to ``root_dir``); return its
    sha256 and size."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            full = root_dir / name
            info = tarfile.TarInfo(name)
            data = full.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if os.access(full, os.X_OK) else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    payload = compressed.getvalue()
    destination.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest(), len(payload)


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


def build(plan: DeployPlan) -> Bundle:
    """The bundle for ``plan`` written under ``plan.scratch_dir``."""
    root = plan.root_dir
    if plan.copy_style == "none":
        return Bundle(copy_style="none")
    if plan.copy_style == "all":
        files = all_files(root)
    else:
        modules = plan.discovery.loaded_modules if plan.discovery else ()
        files = loaded_module_files(modules, root)
    for env in plan.environments:
        for task in env.tasks.values():
            source = Path(task.source_file).resolve()
            if not source.is_relative_to(root):
                raise BundleError(f"task {task.name} is defined in {source}, outside the root dir {root};"
                                  " pass --root-dir")
    if not files:
        raise BundleError(f"no files to bundle under {root} (copy style {plan.copy_style})")
    destination = plan.scratch_dir / "bundle.tar.gz"
    digest, size = write_archive(root, files, destination)
    return Bundle(copy_style=plan.copy_style, digest=digest, path=destination, size=size, files=tuple(files))


@hookimpl(trylast=True)
def build_bundle(session: DeploySession, plan: DeployPlan) -> Bundle:
    return build(plan)

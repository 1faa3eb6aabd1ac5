"""Building the bundle of a deploy plan: select the files for its copy style and its
environments' ``include`` entries, check that every task's module is in them, write the
archive to the plan's scratch directory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..config import Config
from ..environments import Include
from ..errors import BundleError
from ..storage import local_path
from ..types import Bundle, DeployPlan
from . import archive
from .cache import FileDigest, KnownBundle, SignatureCache, hash_file
from .files import inside, open_regular
from .integrity import file_sha256
from .select import FileMap, all_files, included_files, loaded_module_files, why_not_in_all


def store_dirs(config: Config) -> tuple[str, ...]:
    """Root-relative directories of the local deploy store and bundle storage, which
    are never bundled."""
    skipped: set[str] = set()
    root = os.path.realpath(config.root_dir)
    for url in (config.store_url, config.storage_url):
        path = local_path(url)
        if path is not None:
            path = os.path.realpath(path)
            if inside(path, root) and path != root:
                skipped.add(path[len(root) + 1 :].replace(os.sep, "/"))
    return tuple(sorted(skipped))


def plan_includes(plan: DeployPlan) -> list[tuple[str, Include]]:
    """The ``include`` entries of ``plan``'s environments (those offering
    ``included_paths``), each with ``"file:line: environment NAME"`` for its errors."""
    found = []
    for env in plan.environments:
        included = getattr(env, "included_paths", None)
        if included is not None:
            found += [(f"{env.location}: environment {env.name}", include) for include in included()]
    return found


def select_files(plan: DeployPlan, skip: Iterable[str] = (), includes: Sequence[tuple[str, Include]] = ()) -> FileMap:
    """The files of ``plan``'s bundle: those of its copy style (none for ``none``) and
    the ones ``includes`` adds."""
    if plan.copy_style == "all":
        files = all_files(plan.root_dir, skip)
    elif plan.copy_style == "loaded_modules":
        files = loaded_module_files(plan.discovery.loaded_modules if plan.discovery else (), plan.root_dir, skip)
    else:
        files = {}
    if includes:
        files = dict(sorted({**files, **included_files(includes, plan.root_dir, skip)}.items()))
    return files


def _task_sources(plan: DeployPlan) -> Iterable[tuple[str, str, str]]:
    """(task name, environment name, resolved source file) of every planned task."""
    for env in plan.environments:
        for task in env.tasks.values():
            yield task.name, env.name, os.path.realpath(task.source_file)


def check_sources_inside_root(plan: DeployPlan) -> None:
    """Every task's source file must lie under the root dir, or the bundle cannot hold it."""
    root = os.path.realpath(plan.root_dir)
    for task, env, source in _task_sources(plan):
        if not inside(source, root):
            raise BundleError(
                f"task {task} (environment {env}) is defined in {source}, outside the"
                f" root dir {root}; pass --root-dir with a directory that contains it"
            )


def check_task_modules(plan: DeployPlan, files: FileMap, skip: Iterable[str] = ()) -> None:
    """With copy style ``all``, every task's module must be in the bundle: a missing one is
    a ``BundleError`` naming the ignore rule (``file:line:pattern``) or skipped directory
    that dropped it."""
    if plan.copy_style != "all":
        return
    root = os.path.realpath(plan.root_dir)
    bundled: set[str] | None = None  # resolved paths, only when a task's file is not under its own name
    for task, env, source in _task_sources(plan):
        relative = source[len(root) + 1 :].replace(os.sep, "/")
        if relative in files:
            continue
        if bundled is None:
            bundled = {os.path.realpath(path) for path in files.values()}
        if source not in bundled:
            reason = why_not_in_all(plan.root_dir, relative, skip)
            raise BundleError(
                f"task {task} (environment {env}) is defined in {relative}, which the bundle"
                f" (copy style all) would leave out: {reason}; the task could not be loaded from it"
            )


def stored_bundle(storage_dir: str | None, known: KnownBundle) -> Path | None:
    """The object holding ``known`` in the local bundle storage ``storage_dir``, when it is
    there and its bytes prove it (size and archive sha256); else None."""
    if storage_dir is None:
        return None
    path = os.path.join(storage_dir, f"{known.digest}.tar.gz")
    try:
        fd, info = open_regular(path)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if info.st_size != known.size or file_sha256(handle) != known.archive_digest:
            return None
    return Path(path)


def _from_cache(
    plan: DeployPlan, files: FileMap, cache: SignatureCache, storage_dir: str | None, dry_run: bool
) -> Bundle | None:
    """The bundle of ``files`` without writing an archive, when the signature cache knows
    the tree and either the bundle is in the local storage (``path`` is that object) or the
    deploy is a dry run (``path`` None); None when the archive must be written."""
    members, changed = cache.lookup(files)
    if changed and not cache.trees:
        return None  # no bundle known yet: hashing first would only read the files twice
    try:
        for name in changed:
            members[name] = hash_file(files[name])
    except OSError:
        return None  # the archive writer names the file
    known = cache.trees.get(cache.record(members))
    if changed:
        cache.save()
    if known is None:
        return None
    stored = stored_bundle(storage_dir, known)
    if stored is None and not dry_run:
        return None
    return _bundle(plan, files, known, stored)


def _bundle(plan: DeployPlan, files: FileMap, made: KnownBundle | archive.WrittenArchive, path: Path | None) -> Bundle:
    """The ``Bundle`` of ``files``: digests and size of an archive written now or known from the cache."""
    return Bundle(
        copy_style=plan.copy_style,
        digest=made.digest,
        path=path,
        size=made.size,
        files=tuple(files),
        archive_digest=made.archive_digest,
    )


def build(
    plan: DeployPlan,
    skip: Iterable[str] = (),
    cache: SignatureCache | None = None,
    storage_dir: str | None = None,
    dry_run: bool = False,
) -> tuple[Bundle, FileMap]:
    """The bundle for ``plan`` and the files it holds (archive name -> path read).

    The archive is written to ``plan.scratch_dir/bundle.tar.gz``, unless the signature
    ``cache`` knows the tree's bundle and it is already in the local bundle storage
    ``storage_dir`` (then ``path`` is that verified object) or this is a ``dry_run``
    (then ``path`` is None): see ``flyte_deploy.bundle.cache``. With copy style ``none``
    the bundle holds the included files only, and there is none without them."""
    includes = plan_includes(plan)
    if plan.copy_style == "none" and not includes:
        return Bundle(copy_style="none"), {}
    skip = tuple(skip)
    if plan.copy_style != "none":  # with none the image holds the code
        check_sources_inside_root(plan)
    files = select_files(plan, skip, includes)
    if not files:
        raise BundleError(f"no files to bundle under {plan.root_dir} (copy style {plan.copy_style})")
    check_task_modules(plan, files, skip)
    if cache is not None and (reused := _from_cache(plan, files, cache, storage_dir, dry_run)) is not None:
        return reused, files
    destination = plan.scratch_dir / archive.ARCHIVE_NAME
    members: dict[str, FileDigest] | None = {} if cache is not None else None
    written = archive.write_archive(files, destination, members=members)
    if cache is not None and members is not None:
        whole = len(members) == len(files)
        cache.record(members, KnownBundle(*written) if whole else None)
        cache.save()
    return _bundle(plan, files, written, destination), files

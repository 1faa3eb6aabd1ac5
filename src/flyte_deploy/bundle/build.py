"""Building the bundle of a deploy plan: select the files for its copy style, check that
every task's module is in them, write the archive to the plan's scratch directory."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..config import Config
from ..errors import BundleError
from ..storage import local_path
from ..types import Bundle, DeployPlan
from . import archive
from .files import inside
from .select import FileMap, all_files, loaded_module_files, why_not_in_all


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
                skipped.add(path[len(root) + 1:].replace(os.sep, "/"))
    return tuple(sorted(skipped))


def select_files(plan: DeployPlan, skip: Iterable[str] = ()) -> FileMap:
    """The files of ``plan``'s bundle for its copy style (``all`` or ``loaded_modules``)."""
    if plan.copy_style == "all":
        return all_files(plan.root_dir, skip)
    modules = plan.discovery.loaded_modules if plan.discovery else ()
    return loaded_module_files(modules, plan.root_dir, skip)


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
            raise BundleError(f"task {task} (environment {env}) is defined in {source}, outside the"
                              f" root dir {root}; pass --root-dir with a directory that contains it")


def check_task_modules(plan: DeployPlan, files: FileMap, skip: Iterable[str] = ()) -> None:
    """With copy style ``all``, every task's module must be in the bundle: a missing one is
    a ``BundleError`` naming the ignore rule (``file:line:pattern``) or skipped directory
    that dropped it."""
    if plan.copy_style != "all":
        return
    root = os.path.realpath(plan.root_dir)
    bundled: set[str] | None = None  # resolved paths, only when a task's file is not under its own name
    for task, env, source in _task_sources(plan):
        relative = source[len(root) + 1:].replace(os.sep, "/")
        if relative in files:
            continue
        if bundled is None:
            bundled = {os.path.realpath(path) for path in files.values()}
        if source not in bundled:
            reason = why_not_in_all(plan.root_dir, relative, skip)
            raise BundleError(f"task {task} (environment {env}) is defined in {relative}, which the bundle"
                              f" (copy style all) would leave out: {reason}; the task could not be loaded from it")


def build(plan: DeployPlan, skip: Iterable[str] = ()) -> tuple[Bundle, FileMap]:
    """The bundle for ``plan``, written to ``plan.scratch_dir/bundle.tar.gz``, and the
    files it holds (archive name -> path read)."""
    if plan.copy_style == "none":
        return Bundle(copy_style="none"), {}
    skip = tuple(skip)
    check_sources_inside_root(plan)
    files = select_files(plan, skip)
    if not files:
        raise BundleError(f"no files to bundle under {plan.root_dir} (copy style {plan.copy_style})")
    check_task_modules(plan, files, skip)
    destination = plan.scratch_dir / archive.ARCHIVE_NAME
    written = archive.write_archive(files, destination)
    return Bundle(copy_style=plan.copy_style, digest=written.digest, path=destination, size=written.size,
                  files=tuple(files), archive_digest=written.archive_digest), files

"""The Python entry points: ``deploy(*envs, ...)`` and ``open_session(...)``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .config import Config
from .errors import UsageError, scrubbed_stderr
from .lifecycle import deploy as run_lifecycle
from .pluginmanager import build_plugin_manager
from .selection import select
from .session import DeploySession
from .types import DeployedApp, DeployedTask, DeployRequest, DeployResult

if TYPE_CHECKING:
    from .diffing import Diff


@contextmanager
def open_session(
    root_dir: str | os.PathLike[str] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    plugins: Sequence[str] = (),
    dry_run: bool = False,
    console: Console | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[DeploySession]:
    """A session with a fresh plugin manager (every plugin source, ``configure`` run) and
    the backend and image builder selected by name; ``unconfigure`` runs when it closes.
    Every command opens its session here, so all load the same plugins the same way."""
    config = Config.load(root_dir, options, environ)
    pm = build_plugin_manager(config, cmdline_plugins=plugins)
    try:
        yield DeploySession(
            config=config,
            pluginmanager=pm,
            selection=select(pm, config),
            dry_run=dry_run,
            console=console or Console(file=scrubbed_stderr()),
        )
    finally:
        pm.calls.unconfigure(config)


def deploy(
    *envs: object,
    version: str | None = None,
    copy_style: str | None = None,
    root_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    plugins: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
    images: Mapping[str, str] | None = None,
) -> DeployResult:
    """Deploy ``envs`` (``flyte_deploy.TaskEnvironment`` or, with the flyte SDK installed,
    ``flyte.TaskEnvironment`` objects) and their ``depends_on`` closure; returns what was
    deployed. An object no adapter takes is a ``UsageError``.

    ``root_dir`` defaults to the current directory; ``options`` are configuration keys
    (e.g. ``{"backend": "local", "store": "memory://x"}``) that override pyproject.
    """
    if not envs:
        raise UsageError("deploy() needs at least one TaskEnvironment")
    with open_session(
        Path(root_dir) if root_dir else None, options=options, plugins=plugins, dry_run=dry_run
    ) as session:
        request = DeployRequest(mode="objects", objects=tuple(envs))
        return run_lifecycle(session, request, version=version, copy_style=copy_style, image_overrides=images)


def diff(
    *envs: object,
    version: str | None = None,
    copy_style: str | None = None,
    root_dir: str | os.PathLike[str] | None = None,
    plugins: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
    images: Mapping[str, str] | None = None,
) -> Diff:
    """What deploying ``envs`` (as ``deploy`` takes them) would change on the configured
    backend (``flyte_deploy.diffing``); ``Diff.pending`` says whether anything would, and
    ``Diff.violations`` holds what ``check_diff`` plugins reported."""
    from .diffing import run_diff

    if not envs:
        raise UsageError("diff() needs at least one TaskEnvironment")
    with open_session(Path(root_dir) if root_dir else None, options=options, plugins=plugins, dry_run=True) as session:
        request = DeployRequest(mode="objects", objects=tuple(envs))
        return run_diff(session, request, version=version, copy_style=copy_style, image_overrides=images)


def history(
    task: str,
    *,
    root_dir: str | os.PathLike[str] | None = None,
    plugins: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
) -> Sequence[DeployedTask]:
    """Every deployed version of ``task`` (``ENV.TASK``) on the configured backend, first
    deployed first; a task never deployed is a ``UsageError``."""
    from .diffing import task_history

    with open_session(Path(root_dir) if root_dir else None, options=options, plugins=plugins) as session:
        return task_history(session, task)


def app_history(
    name: str,
    *,
    root_dir: str | os.PathLike[str] | None = None,
    plugins: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
) -> Sequence[DeployedApp]:
    """Every revision of app ``name`` the configured backend still knows, oldest first (a
    control plane keeps only the current one); an app never deployed is a ``UsageError``."""
    from .diffing import app_history as revisions

    with open_session(Path(root_dir) if root_dir else None, options=options, plugins=plugins) as session:
        return revisions(session, name)

"""The ``flyte-deploy`` command line.

Every ``FlyteDeployError`` prints one ``error:`` line on stderr and exits with its code;
click usage errors exit 4; Ctrl-C exits 2; anything else is a bug (exit 3, traceback).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import pluggy
from rich.console import Console
from rich.table import Table

from .api import open_session
from .builtin.reporting import render_summary
from .errors import ExitCode, FlyteDeployError, PolicyViolation, UsageError, environment_error, scrub
from .lifecycle import deploy as run_lifecycle
from .lifecycle import dry_run_result
from .pluginmanager import hook_names
from .session import DeploySession
from .types import DeployedApp, DeployedTask, DeployPlan, DeployRequest, Violation

if TYPE_CHECKING:
    from .diffing import Diff

plugin_option = click.option(
    "-p", "plugins", multiple=True, metavar="NAME", help="Load plugin NAME early; `-p no:NAME` disables a plugin."
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A Flyte config.yaml (admin.endpoint, task.project, ...). Default:"
    " FLYTE_DEPLOY_CONFIG, then config.yaml in the root dir, then ~/.flyte/config.yaml.",
)
project_option = click.option(
    "--project", default=None, help="Flyte project (default: task.project, else flytesnacks)."
)
domain_option = click.option("--domain", default=None, help="Flyte domain (default: task.domain, else development).")
backend_option = click.option(
    "--backend",
    default=None,
    help="local (default), remote (a Flyte control plane; the default when an endpoint is"
    " configured) or a backend a plugin provides.",
)
root_option = click.option(
    "--root-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project root: bundling, module names, pyproject.toml. Default: current directory.",
)
store_option = click.option(
    "--store", default=None, help="Local backend store directory (default <root>/.flyte-deploy)."
)
_SESSION_OPTIONS = (
    root_option,
    store_option,
    project_option,
    domain_option,
    backend_option,
    config_option,
    plugin_option,
)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def session_options(command: _Command) -> _Command:
    """Add the options that say where a command works and with which plugins, last in its
    ``--help``: --root-dir, --store, --project, --domain, --backend, --config, -p. The command
    takes them as keyword arguments and opens its session with ``session_from``."""
    for option in reversed(_SESSION_OPTIONS):
        command = option(command)
    return command


def session_from(
    *,
    root_dir: Path | None,
    store: str | None,
    project: str | None,
    domain: str | None,
    backend: str | None,
    config_file: Path | None,
    plugins: tuple[str, ...],
    quiet: bool = False,
    dry_run: bool = False,
) -> contextlib.AbstractContextManager[DeploySession]:
    """``open_session`` on the values of ``session_options`` (and deploy's ``--quiet``); any
    other keyword is a ``TypeError``, never ignored."""
    options = {
        "project": project,
        "domain": domain,
        "backend": backend,
        "store": store,
        "quiet": quiet or None,
        "config": config_file,
    }
    return open_session(root_dir, options=options, plugins=plugins, dry_run=dry_run)


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, without credentials (``errors.scrub``)."""
    click.echo(scrub(json.dumps(data, indent=2)))


@contextlib.contextmanager
def stdout_for(output: str) -> Iterator[None]:
    """With ``--output json``, stdout carries the JSON document alone: whatever else is
    printed meanwhile (a user module at import, a plugin) goes to stderr."""
    if output != "json":
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _parse_pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, uri = value.partition("=")
        if not sep or not name or not uri:
            raise UsageError(f"{flag} takes NAME=VALUE, got {value!r}")
        pairs[name] = uri
    return pairs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flyte-deploy")
def cli() -> None:
    """Deploy Flyte task environments. Every phase is a pluggy hook."""


def _deploy_request(path: Path, env_vars: tuple[str, ...], all_envs: bool, recursive: bool) -> DeployRequest:
    """The request of `deploy`/`check` arguments: FILE ENV..., --all FILE or --recursive DIR."""
    if all_envs and recursive:
        raise UsageError("--all and --recursive cannot be combined")
    if recursive or all_envs:
        if env_vars:
            flag = "--recursive" if recursive else "--all"
            raise UsageError(f"{flag} takes no environment names, got {' '.join(env_vars)}")
        return DeployRequest(mode="recursive" if recursive else "all", path=path)
    if not env_vars:
        raise UsageError(f"name the environment variable(s) to deploy from {path}, or use --all")
    return DeployRequest(mode="file", path=path, env_names=env_vars)


@cli.command("deploy")
@click.argument("path", type=click.Path(path_type=Path), required=True)
@click.argument("env_vars", nargs=-1)
@click.option("--all", "all_envs", is_flag=True, help="Deploy every environment in PATH.")
@click.option("--recursive", is_flag=True, help="PATH is a directory: deploy every environment under it.")
@click.option(
    "--copy-style",
    type=click.Choice(["loaded_modules", "all", "none"]),
    default=None,
    help="What goes into the code bundle (default loaded_modules).",
)
@click.option("--version", "version", default=None, help="Version to deploy (default: derived from content).")
@click.option("--dry-run", is_flag=True, help="Print the plan; upload, build and register nothing.")
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="NAME=URI",
    help="Use URI as the image of environment (or image name) NAME.",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@session_options
def deploy_command(dry_run: bool, **params: Any) -> None:
    """Deploy environments: `deploy FILE ENV...`, `deploy --all FILE`, `deploy --recursive DIR`."""
    given = PlanArguments.parse(params)
    with stdout_for(given.output), given.session(dry_run=dry_run) as session:
        result = run_lifecycle(
            session, given.request, version=given.version, copy_style=given.copy_style, image_overrides=given.overrides
        )
    if given.output == "json":
        echo_json(result.to_json())
    else:
        render_summary(result, Console())


@dataclass(frozen=True)
class PlanArguments:
    """The arguments of a command that plans a deploy (``deploy``; ``check`` and ``diff``
    take the same ones but ``--dry-run``)."""

    request: DeployRequest
    version: str | None
    copy_style: str | None
    overrides: dict[str, str]
    output: str
    session_params: dict[str, Any]  # for session_from: the session_options values and --quiet

    @classmethod
    def parse(cls, params: dict[str, Any]) -> PlanArguments:
        """From the click parameters of ``deploy`` less ``--dry-run``."""
        params = dict(params)
        return cls(
            request=_deploy_request(
                params.pop("path"), params.pop("env_vars"), params.pop("all_envs"), params.pop("recursive")
            ),
            version=params.pop("version"),
            copy_style=params.pop("copy_style"),
            overrides=_parse_pairs(params.pop("images"), "--image"),
            output=params.pop("output"),
            session_params=params,
        )

    def session(self, *, dry_run: bool) -> contextlib.AbstractContextManager[DeploySession]:
        """The command's session (a parameter the command does not know is a ``TypeError``)."""
        return session_from(**self.session_params, dry_run=dry_run)


def check_command(**params: Any) -> None:
    """Check a deploy without doing it: every phase up to the policies, nothing uploaded,
    pushed, registered or stored. Exits 6 when a policy plugin reports a violation."""
    given = PlanArguments.parse(params)
    output = given.output
    violations: list[Violation] = []
    with stdout_for(output), given.session(dry_run=True) as session:
        try:
            result = run_lifecycle(
                session,
                given.request,
                version=given.version,
                copy_style=given.copy_style,
                image_overrides=given.overrides,
            )
        except PolicyViolation as exc:
            if not isinstance(exc.plan, DeployPlan):
                raise
            violations = exc.violations
            result = dry_run_result(exc.plan, session.backend.name)
    if output == "json":
        echo_json(
            {
                **result.to_json(),
                "violations": [
                    {"rule": v.rule, "subject": v.subject, "message": v.message, "plugin": v.plugin} for v in violations
                ],
            }
        )
    else:
        render_summary(result, Console())
        # one line per violation, as in the deploy error: readable in narrow terminals and CI logs
        click.echo(
            "\n".join([f"{len(violations)} policy violation(s):"] + [f"  {v}" for v in violations])
            if violations
            else "no violations"
        )
    if violations:
        _exit_for_violations(violations)


def _exit_for_violations(violations: Sequence[Violation]) -> None:
    """The error line naming the plugins at fault, and exit 6."""
    plugins_at_fault = ", ".join(sorted({v.plugin for v in violations if v.plugin})) or "unknown plugin"
    click.echo(f"error: {len(violations)} policy violation(s) reported by {plugins_at_fault}", err=True)
    raise click.exceptions.Exit(int(ExitCode.POLICY_VIOLATION))


cli.add_command(
    click.Command(
        "check",
        callback=check_command,
        help=check_command.__doc__,
        params=[param for param in deploy_command.params if param.name != "dry_run"],
    )
)


def diff_command(**params: Any) -> None:
    """Show what deploying would change on the backend: each task and app new, unchanged,
    changed (and in which fields), or (a task) removed from an environment of the plan. Plans
    as `check` does; exits 0 when nothing would change, 20 when changes are pending, 6 on a
    policy violation."""
    from .diffing import run_diff

    given = PlanArguments.parse(params)
    with stdout_for(given.output), given.session(dry_run=True) as session:
        diff = run_diff(
            session, given.request, version=given.version, copy_style=given.copy_style, image_overrides=given.overrides
        )
    if given.output == "json":
        echo_json(diff.to_json())
    else:
        render_diff(diff, Console())
        if diff.violations:
            lines = [f"{len(diff.violations)} policy violation(s):"] + [f"  {v}" for v in diff.violations]
            click.echo("\n".join(lines))
    if diff.violations:
        _exit_for_violations(diff.violations)
    if diff.pending:
        raise click.exceptions.Exit(int(ExitCode.CHANGES_PENDING))


def render_diff(diff: Diff, console: Console) -> None:
    """The diff as a table: one row per task or app that is not unchanged, one line per changed field."""
    where = f"backend {diff.backend} ({diff.project}/{diff.domain})"
    shown = [e for e in diff.entries if e.status != "unchanged"]
    if shown:
        table = Table(title=f"Diff of version {diff.version} against {where}", title_justify="left")
        for column in ("task / app", "status", "deployed", "planned", "changes"):
            table.add_column(column, overflow="fold")
        for entry in shown:
            revision = f" (revision {entry.deployed_revision})" if entry.deployed_revision is not None else ""
            table.add_row(
                entry.name + (" (app)" if entry.kind == "app" else ""),
                entry.status,
                _short(entry.deployed_version or "-") + revision,
                _short(entry.planned_version or "-"),
                "\n".join(f"{c.field}: {_short(c.before)} -> {_short(c.after)}" for c in entry.changes) or "-",
            )
        console.print(table)
    click.echo(f"{diff.summary}" + ("" if diff.pending else f": nothing to deploy to {where}"))


def _short(text: str) -> str:
    """``text`` with each long hex digest cut to its first 12 characters (tables only)."""
    return re.sub(r"\b([0-9a-f]{12})[0-9a-f]{20,}\b", r"\1…", text)


cli.add_command(
    click.Command(
        "diff",
        callback=diff_command,
        help=diff_command.__doc__,
        params=[param for param in deploy_command.params if param.name != "dry_run"],
    )
)


@cli.command("history")
@click.argument("name")
@click.option("--app", "as_app", is_flag=True, help="NAME is an app (needed only for an app name with a dot).")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@session_options
def history_command(name: str, as_app: bool, output: str, **session_params: Any) -> None:
    """List what was deployed of task ENV.TASK (its versions) or of an app (a NAME without a
    dot, or --app: its revisions), first deployed first: when, from which commit (its source
    link) and with which code bundle, on the configured backend."""
    from .diffing import app_history, task_history

    app = as_app or "." not in name
    with stdout_for(output), session_from(**session_params) as session:
        deployed: Sequence[DeployedTask | DeployedApp] = (
            app_history(session, name) if app else task_history(session, name)
        )
        where = f"backend {session.backend.name} ({session.config.get('project')}/{session.config.get('domain')})"
    records = [_history_record(d) for d in deployed]
    if output == "json":
        echo_json(records)
        return
    table = Table(title=f"History of {'app ' if app else ''}{name} on {where}", title_justify="left")
    for column in (("revision",) if app else ()) + ("version", "deployed (UTC)", "source link", "bundle"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            *((str(r["revision"]),) if app else ()),
            r["version"] or "-",
            (r["deployed_at"] or "-").replace("T", " ")[:19],
            r["source_link"] or "-",
            f"sha256 {r['bundle_digest'][:12]}" if r["bundle_digest"] else "none",
        )
    Console().print(table)
    first = records[0].get("revision", 1)
    if first > 1:
        click.echo(f"revisions 1 to {first - 1} are not kept by backend {session.backend.name}")


def _history_record(deployed: DeployedTask | DeployedApp) -> dict[str, Any]:
    """One JSON record of ``history``: a task version or an app revision."""
    common = {
        "version": deployed.version,
        "deployed_at": deployed.deployed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if deployed.deployed_at else None,
        "source_link": deployed.source_link or None,
        "bundle_digest": deployed.bundle_digest,
    }
    if isinstance(deployed, DeployedApp):
        return {"kind": "app", "app": deployed.name, "revision": deployed.revision, **common}
    return {"kind": "task", "task": deployed.name, "environment": deployed.environment, **common}


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@root_option
@plugin_option
def plugins_command(as_json: bool, root_dir: Path | None, plugins: tuple[str, ...]) -> None:
    """List plugins in registration order (name, source, version, status, hooks), then the
    backends and image builders they offer."""
    with stdout_for("json" if as_json else "table"), open_session(root_dir, plugins=plugins) as session:
        pm = session.pluginmanager
        infos = list(pm.infos.values()) + list(pm.disabled.values())
        hooks = hook_names(pm)
        offered = [
            ("backend", b.name, b.plugin, ", ".join(b.capabilities))
            for b in sorted(session.selection.backends.values(), key=lambda b: b.name)
        ]
        offered += [
            ("image builder", b.name, b.plugin, b.description) for b in session.selection.image_builders.values()
        ]
    if as_json:
        echo_json(
            {
                "plugins": [i.to_json() for i in infos],
                "hooks": hooks,
                "backends": [
                    {"name": name, "plugin": plugin, "capabilities": caps.split(", ") if caps else []}
                    for kind, name, plugin, caps in offered
                    if kind == "backend"
                ],
                "image_builders": [
                    {"name": name, "plugin": plugin} for kind, name, plugin, _ in offered if kind == "image builder"
                ],
            }
        )
        return
    table = Table(title="flyte-deploy plugins (registration order)", title_justify="left")
    for column in ("name", "source", "version", "status", "hooks"):
        table.add_column(column)
    for info in infos:
        table.add_row(info.name, info.source, info.version or "-", info.status, ", ".join(info.hooks) or "-")
    Console().print(table)
    chosen = Table(title="offered by name", title_justify="left")
    for column in ("kind", "name", "plugin", "can / description"):
        chosen.add_column(column)
    for row in offered:
        chosen.add_row(*row)
    Console().print(chosen)


@cli.command("ls")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--remote", is_flag=True, help="Same as --backend remote: list what the Flyte control plane holds.")
@session_options
def ls_command(output: str, remote: bool, backend: str | None, **session_params: Any) -> None:
    """List what the backend holds: the local store (environments, versions, tasks, images),
    or a control plane (tasks and their versions)."""
    if remote and backend not in (None, "remote"):
        raise UsageError(f"--remote lists the remote backend; it cannot be combined with --backend {backend}")
    with stdout_for(output), session_from(**session_params, backend="remote" if remote else backend) as session:
        chosen = session.backend
        if chosen.listing is None:
            raise UsageError(
                f"backend {chosen.name!r} ({session.config.source_of('backend')}) cannot list what it holds"
            )
        listed = chosen.listing(session.config)
    if output == "json":
        echo_json(listed.records)
        return
    if not listed.records:
        click.echo(f"nothing deployed {listed.where}")
        return
    table = Table(title=f"Deployed {listed.where}", title_justify="left")
    for column in listed.columns:
        table.add_column(column, overflow="fold")
    for row in listed.rows:
        table.add_row(*row)
    Console().print(table)


@cli.command("run")
@click.argument("task")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A task input; lists, dicts and structs as JSON. Defaults come from the deployed spec.",
)
@click.option(
    "--version",
    "version",
    default=None,
    help="Deployed version to run (default: the newest; on a control plane the latest deployed_at).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run in this new directory and keep it (default: a temporary one, removed afterwards).",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@session_options
def run_command(
    task: str, inputs: tuple[str, ...], version: str | None, work_dir: Path | None, output: str, **session_params: Any
) -> None:
    """Run a deployed task ENV.TASK from its code bundle, as a remote runtime would.

    The spec comes from the configured backend, as for deploy: the local store, or the
    control plane (remote). The bundle is fetched from its storage URL and unpacked into a
    fresh directory; a clean Python process loads the task from there, so a module missing
    from the bundle fails here and not in production. The task's output goes to stderr,
    its results to stdout.
    """
    from .errors import RunError
    from .local_run import parse_inputs, run_task
    from .storage import storage_environment, storage_options
    from .task_specs import find_task_spec

    if "." not in task:
        raise RunError(f"name the task as ENV.TASK, got {task!r}")
    given = parse_inputs(inputs)
    if work_dir is not None and work_dir.exists() and any(work_dir.iterdir()):
        raise RunError(f"--work-dir {work_dir} is not empty")
    with stdout_for(output), session_from(**session_params) as session:
        spec = find_task_spec(session.backend, session.config, task, version)
        storage_env = storage_environment(session.config.storage_url, storage_options(session.config))
    result = run_task(spec, given, keep_dir=work_dir, storage_env=storage_env)
    click.echo(result.stdout + result.stderr, err=True, nl=False)
    if output == "json":
        echo_json({"task": result.task, "version": result.version, "outputs": result.outputs})
    else:
        for name, value in result.outputs.items():
            click.echo(f"{name} = {json.dumps(value)}")


@cli.command("serve")
@click.argument("app")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port on 127.0.0.1 (default: the app's declared port; 0: a free one).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds the server has to start listening.",
)
@session_options
def serve_command(app: str, port: int | None, timeout: float, **session_params: Any) -> None:
    """Serve a deployed app APP from its code bundle on 127.0.0.1, as the app runtime would.

    The app comes from the configured backend, as for deploy and run. Its container command
    runs in a fresh directory with a clean environment; the bundle is fetched from storage.
    Once the server listens, its URL is printed on stdout; the server's output goes to
    stderr. Ctrl-C (or SIGTERM) stops it, and serve exits 0.
    """
    from .serving import serve_app
    from .storage import storage_environment, storage_options

    with session_from(**session_params) as session:
        chosen = session.backend
        if chosen.app_spec is None:
            raise UsageError(
                f"backend {chosen.name!r} ({session.config.source_of('backend')}) cannot serve apps: it holds none"
            )
        deployed = chosen.app_spec(session.config, app)
        storage_env = storage_environment(session.config.storage_url, storage_options(session.config))

    def ready(url: str) -> None:
        click.echo(url)
        version = f" (version {deployed.version})" if deployed.version else ""
        click.echo(f"serving app {deployed.name}{version}; Ctrl-C stops it", err=True)

    serve_app(deployed, port=port, timeout=timeout, storage_env=storage_env, on_ready=ready)
    click.echo(f"stopped app {deployed.name}", err=True)


def _raised_at(exc: BaseException) -> str:
    """``file:line`` of the innermost frame outside flyte-deploy and the libraries it runs on."""
    where = "unknown location"
    for frame, line in traceback.walk_tb(exc.__traceback__):
        file = frame.f_code.co_filename
        if not (file.startswith(_LIBRARY_DIRS) or file.startswith("<")):
            where = f"{file}:{line}"
    return where


#: frames from these directories are never where a ``SystemExit`` "came from"
_LIBRARY_DIRS = (
    *(str(Path(str(module.__file__)).resolve().parent) for module in (click, pluggy)),
    str(Path(__file__).resolve().parent),
    sysconfig.get_paths()["stdlib"],
)


def run_cli(command: click.Command, args: Sequence[str] | None) -> int:
    """Run the click command and map outcomes to exit codes (see module docstring)."""
    try:
        returned = command.main(
            args=list(args) if args is not None else None, prog_name="flyte-deploy", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE_ERROR)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except FlyteDeployError as exc:
        click.echo(scrub(f"error: {exc}"), err=True)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except SystemExit as exc:  # user code ended the command: never a silent exit 0
        click.echo(scrub(f"error: {_raised_at(exc)}: sys.exit({exc.code!r}) ended flyte-deploy"), err=True)
        return int(ExitCode.USAGE_ERROR)
    except Exception as exc:
        problem = environment_error(exc)
        if problem is not None:
            click.echo(scrub(f"error: {problem}"), err=True)
            return int(problem.exit_code)
        # a bug: show everything
        click.echo(scrub("".join(traceback.format_exception(exc))).rstrip("\n"), err=True)
        click.echo("error: internal error (this is a bug in flyte-deploy or a plugin)", err=True)
        return int(ExitCode.INTERNAL_ERROR)
    # without standalone mode, click returns the code of a ``ctx.exit(code)`` (as ``check`` does)
    return returned if isinstance(returned, int) and not isinstance(returned, bool) else int(ExitCode.OK)


def main(args: Sequence[str] | None = None) -> None:
    sys.exit(run_cli(cli, args))

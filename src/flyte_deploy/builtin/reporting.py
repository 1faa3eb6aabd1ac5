"""Built-in reporting: one line per phase report on stderr (passed or failed), and the
summary table of a deploy (``render_summary``), used by the CLI."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..hookspecs import hookimpl
from ..session import DeploySession
from ..types import DeployResult, PhaseReport


@hookimpl
def phase_finished(session: DeploySession, report: PhaseReport) -> None:
    if session.config.get("quiet"):
        return
    mark = "[green]✓[/]" if report.outcome == "passed" else "[red]✗[/]"
    session.console.print(
        f"{mark} {report.phase:<22} {escape(report.detail)} [dim]({report.duration:.2f}s)[/]", highlight=False
    )


def render_summary(result: DeployResult, console: Console) -> None:
    """Environments in deploy order with their tasks (or their app), version, image and
    bundle; each task and app with its registration status once registered."""
    title = f"{'Dry run' if result.dry_run else 'Deployed'} version {result.version} ({result.backend} backend)"
    bundle = result.bundle.summary if result.bundle else "no bundle"
    caption = f"bundle: {result.bundle_uri or 'none'}\n{bundle}"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in ("environment", "tasks", "image"):
        table.add_column(column, overflow="fold")
    images = {i.environment: i for i in result.images}
    status: dict[tuple[str, str], str] = {(r.kind, r.task): r.status for r in result.registrations}
    for env in result.environments:
        entries = [("task", t.name, t.source_link) for t in result.tasks if t.environment == env]
        entries += [("app", a.name, a.source_link) for a in result.apps if a.environment == env]
        lines = []
        for kind, name, source_link in entries:
            suffix = f" [dim]({status[kind, name]})[/]" if (kind, name) in status else ""
            link = f"\n  [dim]{source_link}[/]" if source_link else ""
            lines.append(f"{'app ' if kind == 'app' else ''}{name}{suffix}{link}")
        image = images.get(env)
        image_text = "-" if image is None else image.uri + (f"\n[dim]{image.note}[/]" if image.note else "")
        table.add_row(env, "\n".join(lines) or "-", image_text)
    console.print(table)

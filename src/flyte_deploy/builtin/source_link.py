"""Built-in ``attach_source_link``: links to the task's ``def`` line on github.com or gitlab.com.

The repository is the one containing the task function's file; its HEAD commit, clean
status and push remote come from ``flyte_deploy.gitstatus`` (cached per deploy). The
line anchor is only added when the tree is clean. Any other case (no git, no repository,
no commit, no remote, another host, a file outside the repository) gives no link and
the deploy goes on. Other hosts are left to plugins such as ``flyte-deploy-bitbucket``.
"""

from __future__ import annotations

from ..gitstatus import PUBLIC_FORGES, task_source
from ..hookspecs import hookimpl
from ..sdk import Task
from ..session import DeploySession
from ..types import SerializedTask, SourceLink


@hookimpl(trylast=True)
def attach_source_link(session: DeploySession, task: Task, serialized: SerializedTask) -> SourceLink | None:
    source = task_source(session, task.func)
    if source is None or source.status.remote is None:
        return None
    url = source.status.build_url(source.path, source.line)
    return SourceLink(url=url, provider=PUBLIC_FORGES[source.status.remote.host]) if url else None

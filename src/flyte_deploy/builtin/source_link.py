"""Built-in ``attach_source_link``: links to the task's ``def`` line on github.com or gitlab.com.

The repository is the one containing the task function's file; its HEAD commit, clean
status and push remote come from ``flyte_deploy.gitstatus`` (cached per deploy). The
line anchor is only added when the tree is clean. Any other case (no git, no repository,
no commit, no remote, another host, a file outside the repository) gives no link and
the deploy goes on. Other hosts are left to plugins such as ``flyte-deploy-bitbucket``.
"""

from __future__ import annotations

from ..gitstatus import PUBLIC_FORGES, git_status_for, source_location
from ..hookspecs import hookimpl
from ..sdk import Task
from ..session import DeploySession
from ..types import SerializedTask, SourceLink


@hookimpl(trylast=True)
def attach_source_link(session: DeploySession, task: Task, serialized: SerializedTask) -> SourceLink | None:
    location = source_location(task.func)
    if location is None:
        return None
    filename, line = location
    status = git_status_for(session, filename)
    if status is None:
        return None
    path = status.relative_path(filename)
    url = status.build_url(path, line) if path is not None else None
    if url is None or status.remote is None:
        return None
    return SourceLink(url=url, provider=PUBLIC_FORGES[status.remote.host])

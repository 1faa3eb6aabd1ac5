"""flyte-deploy-bitbucket: source-code links for hosts the built-in does not know.

Implements ``attach_source_link`` for bitbucket.org, and for self-hosted forges mapped
to a URL flavour in ``[tool.flyte-deploy.plugin.bitbucket.hosts]``::

    [tool.flyte-deploy.plugin.bitbucket.hosts]
    "git.example.com" = "bitbucket-server"
    "ghe.example.com" = { flavour = "github-enterprise", web_url = "https://github.example.com" }

Flavours: bitbucket-cloud, bitbucket-server, github-enterprise, gitea, gitlab. The git
facts (commit, clean status, push remote, def line) come from ``flyte_deploy.gitstatus``;
for any other host this plugin returns ``None`` and the built-in (github.com,
gitlab.com) decides. Installed, it is registered from its entry point ``bitbucket`` in
group ``flyte_deploy``; ``-p no:bitbucket`` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flyte_deploy import DeploySession, SerializedTask, SourceLink, StashKey, Task, UsageError, hookimpl
from flyte_deploy.config import Config
from flyte_deploy.gitstatus import RemoteURL, blob_url, quote_path, task_source

PLUGIN_NAME = "bitbucket"


def bitbucket_cloud(web_url: str, segments: tuple[str, ...], commit: str, path: str, line: int | None) -> str | None:
    """``https://bitbucket.org/<workspace>/<repo>/src/<sha>/<file>#lines-<line>``"""
    if len(segments) != 2:
        return None
    anchor = f"#lines-{line}" if line else ""
    return f"{web_url}/{quote_path('/'.join(segments))}/src/{commit}/{quote_path(path)}{anchor}"


def bitbucket_server(web_url: str, segments: tuple[str, ...], commit: str, path: str, line: int | None) -> str | None:
    """``https://host/projects/<KEY>/repos/<repo>/browse/<file>?at=<sha>#<line>``; clone
    URLs are ``https://host[/context]/scm/<key>/<repo>`` or ``ssh://host:7999/<key>/<repo>``;
    a ``~user`` project is a personal repository (``/users/<user>/...``)."""
    parts = list(segments)
    if "scm" in parts:
        parts = parts[parts.index("scm") + 1 :]
    if len(parts) != 2:
        return None
    project, repo = parts
    owner = f"users/{project[1:]}" if project.startswith("~") else f"projects/{project.upper()}"
    anchor = f"#{line}" if line else ""
    return f"{web_url}/{quote_path(owner)}/repos/{quote_path(repo)}/browse/{quote_path(path)}?at={commit}{anchor}"


def github_enterprise(web_url: str, segments: tuple[str, ...], commit: str, path: str, line: int | None) -> str | None:
    """The github.com form on the enterprise host: ``/<owner>/<repo>/blob/<sha>/<file>#L<line>``."""
    return blob_url("github", web_url, "/".join(segments), commit, path, line) if len(segments) == 2 else None


def gitea(web_url: str, segments: tuple[str, ...], commit: str, path: str, line: int | None) -> str | None:
    """``https://host/<owner>/<repo>/src/commit/<sha>/<file>#L<line>``"""
    if len(segments) != 2:
        return None
    anchor = f"#L{line}" if line else ""
    return f"{web_url}/{quote_path('/'.join(segments))}/src/commit/{commit}/{quote_path(path)}{anchor}"


def gitlab(web_url: str, segments: tuple[str, ...], commit: str, path: str, line: int | None) -> str | None:
    """A self-managed GitLab: ``/<group...>/<repo>/-/blob/<sha>/<file>#L<line>``."""
    return blob_url("gitlab", web_url, "/".join(segments), commit, path, line)


#: URL flavour name -> builder(web_url, repository path segments, commit, file, line or None)
FLAVOURS: dict[str, Callable[[str, tuple[str, ...], str, str, int | None], str | None]] = {
    "bitbucket-cloud": bitbucket_cloud,
    "bitbucket-server": bitbucket_server,
    "github-enterprise": github_enterprise,
    "gitea": gitea,
    "gitlab": gitlab,
}


@dataclass(frozen=True)
class ForgeHost:
    """A git host this plugin links to: its URL ``flavour`` and the ``web_url`` of its UI."""

    host: str
    flavour: str
    web_url: str

    def url(self, remote: RemoteURL, commit: str, path: str, line: int | None) -> str | None:
        return FLAVOURS[self.flavour](self.web_url, remote.segments, commit, path, line)


DEFAULT_HOSTS = {"bitbucket.org": ForgeHost("bitbucket.org", "bitbucket-cloud", "https://bitbucket.org")}


def forge_hosts(config: Config) -> dict[str, ForgeHost]:
    """bitbucket.org plus the hosts of ``[tool.flyte-deploy.plugin.bitbucket.hosts]``;
    a malformed table is a ``UsageError`` naming the file and the host."""
    where = f"{config.pyproject_path or 'pyproject.toml'}: [tool.flyte-deploy.plugin.{PLUGIN_NAME}]"
    settings = config.plugin_config(PLUGIN_NAME)
    unknown = sorted(set(settings) - {"hosts"})
    if unknown:
        raise UsageError(f"{where}: unknown setting(s) {', '.join(unknown)}; the only setting is 'hosts'")
    table = settings.get("hosts", {})
    if not isinstance(table, dict):
        raise UsageError(f"{where}: 'hosts' must be a table of host name = flavour")
    hosts = dict(DEFAULT_HOSTS)
    for name, value in table.items():
        hosts[name.lower()] = _forge_host(where, name, value)
    return hosts


def _forge_host(where: str, name: str, value: Any) -> ForgeHost:
    if not name or any(ch in name for ch in "/:@ "):
        raise UsageError(f"{where}: host {name!r} must be a bare host name (put a port or path in web_url)")
    if isinstance(value, str):
        value = {"flavour": value}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: host {name!r} must be a flavour name or a table with flavour and web_url")
    unknown = sorted(set(value) - {"flavour", "flavor", "web_url"})
    if unknown:
        raise UsageError(f"{where}: host {name!r} has unknown key(s) {', '.join(unknown)}; use flavour and web_url")
    flavour = value.get("flavour", value.get("flavor"))
    if flavour not in FLAVOURS:
        raise UsageError(f"{where}: host {name!r} has flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    web_url = value.get("web_url", f"https://{name.lower()}")
    if not isinstance(web_url, str) or not web_url.startswith(("https://", "http://")) or "@" in web_url:
        raise UsageError(f"{where}: host {name!r} web_url must be an http(s) URL without credentials")
    return ForgeHost(name.lower(), flavour, web_url.rstrip("/"))


FORGE_HOSTS: StashKey[dict[str, ForgeHost]] = StashKey()


@hookimpl
def configure(config: Config) -> None:
    """Check the host table before any deploy phase, so a typo fails ``plugins`` and ``deploy`` at once."""
    forge_hosts(config)


@hookimpl
def attach_source_link(session: DeploySession, task: Task, serialized: SerializedTask) -> SourceLink | None:
    hosts = session.stash.get(FORGE_HOSTS)
    if hosts is None:
        hosts = session.stash[FORGE_HOSTS] = forge_hosts(session.config)
    source = task_source(session, task.func)
    if source is None or source.status.remote is None:
        return None
    host = hosts.get(source.status.remote.host)
    if host is None:
        return None
    url = host.url(source.status.remote, source.status.commit, source.path, source.anchor_line)
    return SourceLink(url=url, provider=host.flavour) if url else None

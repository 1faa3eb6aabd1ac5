"""The plugin's URL flavours and its host table, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyte_deploy import UsageError
from flyte_deploy.config import Config
from flyte_deploy.gitstatus import parse_remote_url

SHA = "0123456789abcdef0123456789abcdef01234567"


def link(plugin, host: str, remote: str, line: int | None = 12, path: str = "flows/tasks.py",
         settings: dict | None = None) -> str | None:
    config = Config(root_dir=Path("/project"), pyproject={"plugin": {"bitbucket": settings or {}}},
                    pyproject_path=Path("/project/pyproject.toml"))
    parsed = parse_remote_url(remote)
    assert parsed is not None and parsed.host == host
    return plugin.forge_hosts(config)[host].url(parsed, SHA, path, line)


def test_bitbucket_cloud(bitbucket_plugin) -> None:
    for remote in ("git@bitbucket.org:acme/pipes.git", "https://me:app-password@bitbucket.org/acme/pipes.git"):
        assert link(bitbucket_plugin, "bitbucket.org", remote) == \
            f"https://bitbucket.org/acme/pipes/src/{SHA}/flows/tasks.py#lines-12"
    assert link(bitbucket_plugin, "bitbucket.org", "git@bitbucket.org:acme/pipes.git", line=None) == \
        f"https://bitbucket.org/acme/pipes/src/{SHA}/flows/tasks.py"


@pytest.mark.parametrize("remote", [
    "https://git.example.com/scm/data/pipes.git",
    "https://builder:tok@git.example.com/scm/DATA/pipes.git",
    "ssh://git@git.example.com:7999/data/pipes.git",
])
def test_bitbucket_server_project_repositories(bitbucket_plugin, remote: str) -> None:
    settings = {"hosts": {"git.example.com": "bitbucket-server"}}
    assert link(bitbucket_plugin, "git.example.com", remote, settings=settings) == \
        f"https://git.example.com/projects/DATA/repos/pipes/browse/flows/tasks.py?at={SHA}#12"


def test_bitbucket_server_personal_repository_and_context_path(bitbucket_plugin) -> None:
    settings = {"hosts": {"git.example.com": {"flavour": "bitbucket-server",
                                              "web_url": "https://git.example.com/bitbucket/"}}}
    assert link(bitbucket_plugin, "git.example.com", "https://git.example.com/bitbucket/scm/~jane/notes.git",
                line=None, settings=settings) == \
        f"https://git.example.com/bitbucket/users/jane/repos/notes/browse/flows/tasks.py?at={SHA}"


def test_github_enterprise_gitea_and_gitlab(bitbucket_plugin) -> None:
    settings = {"hosts": {"ghe.example.com": {"flavor": "github-enterprise", "web_url": "https://github.example.com"},
                          "gitea.example.com": "gitea", "GitLab.Example.com": "gitlab"}}
    assert link(bitbucket_plugin, "ghe.example.com", "git@ghe.example.com:acme/pipes.git", settings=settings) == \
        f"https://github.example.com/acme/pipes/blob/{SHA}/flows/tasks.py#L12"
    assert link(bitbucket_plugin, "gitea.example.com", "https://gitea.example.com/acme/pipes.git",
                settings=settings) == f"https://gitea.example.com/acme/pipes/src/commit/{SHA}/flows/tasks.py#L12"
    assert link(bitbucket_plugin, "gitlab.example.com", "git@gitlab.example.com:acme/data/pipes.git",
                settings=settings) == f"https://gitlab.example.com/acme/data/pipes/-/blob/{SHA}/flows/tasks.py#L12"


def test_repository_paths_the_flavour_cannot_express_give_no_link(bitbucket_plugin) -> None:
    settings = {"hosts": {"git.example.com": "bitbucket-server", "gitea.example.com": "gitea"}}
    assert link(bitbucket_plugin, "bitbucket.org", "https://bitbucket.org/a/b/c.git") is None
    assert link(bitbucket_plugin, "git.example.com", "https://git.example.com/scm/a/b/c.git", settings=settings) is None
    assert link(bitbucket_plugin, "gitea.example.com", "https://gitea.example.com/a/b/c.git", settings=settings) is None


@pytest.mark.parametrize("settings, message", [
    ({"hosts": {"git.example.com": "svn"}}, "host 'git.example.com' has flavour 'svn'; choose one of bitbucket-cloud"),
    ({"hosts": {"git.example.com:7990": "gitea"}}, "host 'git.example.com:7990' must be a bare host name"),
    ({"hosts": {"g.example.com": {"flavour": "gitea", "url": "x"}}}, "host 'g.example.com' has unknown key(s) url"),
    ({"hosts": {"g.example.com": {"flavour": "gitea", "web_url": "ftp://g"}}}, "web_url must be an http(s) URL"),
    ({"hosts": {"g.example.com": {"flavour": "gitea", "web_url": "https://u:p@g"}}}, "without credentials"),
    ({"hosts": {"g.example.com": 3}}, "host 'g.example.com' must be a flavour name or a table"),
    ({"hosts": ["git.example.com"]}, "'hosts' must be a table"),
    ({"host": {}}, "unknown setting(s) host"),
])
def test_bad_host_tables_are_usage_errors(bitbucket_plugin, settings: dict, message: str) -> None:
    config = Config(root_dir=Path("/project"), pyproject={"plugin": {"bitbucket": settings}},
                    pyproject_path=Path("/project/pyproject.toml"))
    with pytest.raises(UsageError) as raised:
        bitbucket_plugin.forge_hosts(config)
    assert str(raised.value).startswith("/project/pyproject.toml: [tool.flyte-deploy.plugin.bitbucket]: ")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)

"""The plugin's URL flavours and its host table, in process: units of ``forge_hosts``, and
deploys of a git project with the plugin registered by the flyte_deploy.testing kit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flyte_deploy import SourceLink, UsageError
from flyte_deploy.config import Config
from flyte_deploy.gitstatus import parse_remote_url

try:
    import flyte_deploy_bitbucket
except ImportError:  # a source checkout where the plugin is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import flyte_deploy_bitbucket

SHA = "0123456789abcdef0123456789abcdef01234567"

TASKS_PY = """\
import flyte_deploy as fd

env = fd.TaskEnvironment(name="bb")


@env.task
def clean(x: int) -> int:
    return x
"""
CLEAN_LINE = 7


def link(
    host: str, remote: str, line: int | None = 12, path: str = "flows/tasks.py", settings: dict | None = None
) -> str | None:
    config = Config(
        root_dir=Path("/project"),
        pyproject={"plugin": {"bitbucket": settings or {}}},
        pyproject_path=Path("/project/pyproject.toml"),
    )
    parsed = parse_remote_url(remote)
    assert parsed is not None and parsed.host == host
    return flyte_deploy_bitbucket.forge_hosts(config)[host].url(parsed, SHA, path, line)


def test_bitbucket_cloud() -> None:
    for remote in ("git@bitbucket.org:acme/pipes.git", "https://me:app-password@bitbucket.org/acme/pipes.git"):
        assert link("bitbucket.org", remote) == f"https://bitbucket.org/acme/pipes/src/{SHA}/flows/tasks.py#lines-12"
    assert (
        link("bitbucket.org", "git@bitbucket.org:acme/pipes.git", line=None)
        == f"https://bitbucket.org/acme/pipes/src/{SHA}/flows/tasks.py"
    )


@pytest.mark.parametrize(
    "remote",
    [
        "https://git.example.com/scm/data/pipes.git",
        "https://builder:tok@git.example.com/scm/DATA/pipes.git",
        "ssh://git@git.example.com:7999/data/pipes.git",
    ],
)
def test_bitbucket_server_project_repositories(remote: str) -> None:
    settings = {"hosts": {"git.example.com": "bitbucket-server"}}
    assert (
        link("git.example.com", remote, settings=settings)
        == f"https://git.example.com/projects/DATA/repos/pipes/browse/flows/tasks.py?at={SHA}#12"
    )


def test_bitbucket_server_personal_repository_and_context_path() -> None:
    settings = {
        "hosts": {"git.example.com": {"flavour": "bitbucket-server", "web_url": "https://git.example.com/bitbucket/"}}
    }
    assert (
        link("git.example.com", "https://git.example.com/bitbucket/scm/~jane/notes.git", line=None, settings=settings)
        == f"https://git.example.com/bitbucket/users/jane/repos/notes/browse/flows/tasks.py?at={SHA}"
    )


def test_github_enterprise_gitea_and_gitlab() -> None:
    settings = {
        "hosts": {
            "ghe.example.com": {"flavor": "github-enterprise", "web_url": "https://github.example.com"},
            "gitea.example.com": "gitea",
            "GitLab.Example.com": "gitlab",
        }
    }
    assert (
        link("ghe.example.com", "git@ghe.example.com:acme/pipes.git", settings=settings)
        == f"https://github.example.com/acme/pipes/blob/{SHA}/flows/tasks.py#L12"
    )
    assert (
        link("gitea.example.com", "https://gitea.example.com/acme/pipes.git", settings=settings)
        == f"https://gitea.example.com/acme/pipes/src/commit/{SHA}/flows/tasks.py#L12"
    )
    assert (
        link("gitlab.example.com", "git@gitlab.example.com:acme/data/pipes.git", settings=settings)
        == f"https://gitlab.example.com/acme/data/pipes/-/blob/{SHA}/flows/tasks.py#L12"
    )


def test_repository_paths_the_flavour_cannot_express_give_no_link() -> None:
    settings = {"hosts": {"git.example.com": "bitbucket-server", "gitea.example.com": "gitea"}}
    assert link("bitbucket.org", "https://bitbucket.org/a/b/c.git") is None
    assert link("git.example.com", "https://git.example.com/scm/a/b/c.git", settings=settings) is None
    assert link("gitea.example.com", "https://gitea.example.com/a/b/c.git", settings=settings) is None


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"hosts": {"git.example.com": "svn"}},
            "host 'git.example.com' has flavour 'svn'; choose one of bitbucket-cloud",
        ),
        ({"hosts": {"git.example.com:7990": "gitea"}}, "host 'git.example.com:7990' must be a bare host name"),
        ({"hosts": {"g.example.com": {"flavour": "gitea", "url": "x"}}}, "host 'g.example.com' has unknown key(s) url"),
        ({"hosts": {"g.example.com": {"flavour": "gitea", "web_url": "ftp://g"}}}, "web_url must be an http(s) URL"),
        ({"hosts": {"g.example.com": {"flavour": "gitea", "web_url": "https://u:p@g"}}}, "without credentials"),
        ({"hosts": {"g.example.com": 3}}, "host 'g.example.com' must be a flavour name or a table"),
        ({"hosts": ["git.example.com"]}, "'hosts' must be a table"),
        ({"host": {}}, "unknown setting(s) host"),
    ],
)
def test_bad_host_tables_are_usage_errors(settings: dict, message: str) -> None:
    config = Config(
        root_dir=Path("/project"),
        pyproject={"plugin": {"bitbucket": settings}},
        pyproject_path=Path("/project/pyproject.toml"),
    )
    with pytest.raises(UsageError) as raised:
        flyte_deploy_bitbucket.forge_hosts(config)
    assert str(raised.value).startswith("/project/pyproject.toml: [tool.flyte-deploy.plugin.bitbucket]: ")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


# -- deploys in process, the plugin registered by the kit ------------------------------------


@pytest.fixture
def bitbucket(register_plugin) -> str:
    """The plugin registered (from this source) for one test, under its entry point name."""
    return register_plugin(flyte_deploy_bitbucket, "bitbucket")


def test_a_deploy_links_tasks_to_bitbucket_cloud(bitbucket, deploy_project, hook_recorder) -> None:
    deploy_project({"tasks.py": TASKS_PY})
    sha = deploy_project.git_init(remote="git@bitbucket.org:acme/pipes.git")
    run = deploy_project.deploy("tasks.py", "env").assert_ok()
    expected = f"https://bitbucket.org/acme/pipes/src/{sha}/tasks.py#lines-{CLEAN_LINE}"
    assert [t["source_link"] for t in run.json["environments"][0]["tasks"]] == [expected]
    assert hook_recorder.getcall("attach_source_link").returned == SourceLink(url=expected, provider="bitbucket-cloud")


HOSTS_TOML = """\
[tool.flyte-deploy.plugin.bitbucket.hosts]
"git.corp.example" = "bitbucket-server"
"ghe.corp.example" = { flavour = "github-enterprise", web_url = "https://github.corp.example" }
"gitea.corp.example" = "gitea"
"lab.corp.example" = "gitlab"
"""


@pytest.mark.parametrize(
    "remote, expected",
    [
        (
            "https://builder:s3cr3t@git.corp.example/scm/DATA/pipelines.git",
            "https://git.corp.example/projects/DATA/repos/pipelines/browse/tasks.py?at={sha}#{line}",
        ),
        (
            "ssh://git@git.corp.example:7999/data/pipelines.git",
            "https://git.corp.example/projects/DATA/repos/pipelines/browse/tasks.py?at={sha}#{line}",
        ),
        (
            "git@ghe.corp.example:acme/pipelines.git",
            "https://github.corp.example/acme/pipelines/blob/{sha}/tasks.py#L{line}",
        ),
        (
            "https://gitea.corp.example/acme/pipelines.git",
            "https://gitea.corp.example/acme/pipelines/src/commit/{sha}/tasks.py#L{line}",
        ),
        (
            "git@lab.corp.example:data/ml/pipelines.git",
            "https://lab.corp.example/data/ml/pipelines/-/blob/{sha}/tasks.py#L{line}",
        ),
        ("https://unmapped.corp.example/acme/pipelines.git", None),
    ],
    ids=["bitbucket-server-https", "bitbucket-server-ssh", "github-enterprise", "gitea", "gitlab", "unmapped"],
)
def test_self_hosted_forges_mapped_in_pyproject(bitbucket, deploy_project, remote: str, expected: str | None) -> None:
    deploy_project({"tasks.py": TASKS_PY, "pyproject.toml": HOSTS_TOML})
    sha = deploy_project.git_init(remote=remote)
    run = deploy_project.deploy("tasks.py", "env").assert_ok()
    assert "s3cr3t" not in run.stdout + run.stderr
    assert run.json["environments"][0]["tasks"][0]["source_link"] == (
        expected.format(sha=sha, line=CLEAN_LINE) if expected else None
    )


def test_a_bad_host_table_stops_check_before_any_phase(bitbucket, deploy_project, hook_recorder) -> None:
    deploy_project(
        {
            "tasks.py": TASKS_PY,
            "pyproject.toml": '[tool.flyte-deploy.plugin.bitbucket.hosts]\n"git.corp.example" = "svn"\n',
        }
    )
    run = deploy_project.check("tasks.py", "env").assert_exit(4)
    assert run.stderr.strip().splitlines() == [
        (
            f"error: {deploy_project.root / 'pyproject.toml'}: [tool.flyte-deploy.plugin.bitbucket]: host"
            " 'git.corp.example' has flavour 'svn'; choose one of bitbucket-cloud, bitbucket-server, github-enterprise,"
            " gitea, gitlab"
        )
    ]
    assert "discover_environments" not in hook_recorder.names

"""Source-code links end to end: ``flyte-deploy deploy`` on real git repositories stores
each task's link in its TaskSpec and shows it in the summary, ``ls`` and JSON output;
every case without a link still deploys."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import flyte_deploy
from flyte_deploy.builtin.local_backend import load_task_spec
from tests.fixtures.gitrepos import GitRepos, deploy_env

TASKS_PY = """\
import functools

import flyte_deploy as fd

env = fd.TaskEnvironment(name="linked")


def traced(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper


@env.task
def plain(x: int) -> int:
    return x


@env.task(
    retries=2,
)
async def multi_line(x: int) -> int:
    return x


@env.task
@traced
def stacked(x: int) -> int:
    return x
"""
PROJECT = {"tasks.py": TASKS_PY, "README.md": "a project\n"}
TASK_DEFS = {
    "linked.plain": "def plain(",
    "linked.multi_line": "async def multi_line(",
    "linked.stacked": "def stacked(",
}


def def_lines(source: str = TASKS_PY) -> dict[str, int]:
    lines = source.splitlines()
    return {
        task: next(i for i, line in enumerate(lines, 1) if line.startswith(text)) for task, text in TASK_DEFS.items()
    }


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flyte_deploy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env or deploy_env(),
        timeout=120,
    )


def deploy_links(
    project: Path, *args: str, file: str = "tasks.py", env: dict[str, str] | None = None
) -> tuple[dict[str, str | None], subprocess.CompletedProcess]:
    """Deploy ``file``'s ``env`` with JSON output; returns task name -> source link."""
    done = run(project, "deploy", file, "env", "--output", "json", "-q", *args, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {r["status"] for r in result["registrations"]} <= {"created", "unchanged"}
    return {t["name"]: t["source_link"] for e in result["environments"] for t in e["tasks"]}, done


def test_clean_github_repository_links_each_task_to_its_def_line(git_repos: GitRepos) -> None:
    project = git_repos.init("clean", PROJECT, remote="git@github.com:acme/pipelines.git")
    sha = git_repos.head(project)
    expected = {
        task: f"https://github.com/acme/pipelines/blob/{sha}/tasks.py#L{line}" for task, line in def_lines().items()
    }

    links, _ = deploy_links(project)
    assert links == expected

    store = (project / ".flyte-deploy").as_uri()
    for task, url in expected.items():
        spec, _ = load_task_spec(store, task)
        assert spec.documentation.source_code.link == url
    listed = json.loads(run(project, "ls", "--output", "json").stdout)
    assert {t["name"]: t["source_link"] for r in listed for t in r["tasks"]} == expected
    table = run(project, "ls").stdout
    assert all(url in table for url in expected.values())


def test_summary_table_shows_the_link(git_repos: GitRepos) -> None:
    project = git_repos.init("summary", PROJECT, remote="https://github.com/acme/pipelines")
    done = run(project, "deploy", "tasks.py", "env", "--dry-run")
    assert done.returncode == 0, done.stderr
    sha = git_repos.head(project)
    assert f"https://github.com/acme/pipelines/blob/{sha}/tasks.py#L{def_lines()['linked.plain']}" in done.stdout


def test_dirty_tree_links_without_a_line(git_repos: GitRepos) -> None:
    project = git_repos.init("dirty", PROJECT, remote="https://github.com/acme/pipelines.git")
    (project / "scratch.txt").write_text("untracked\n")
    sha = git_repos.head(project)
    links, _ = deploy_links(project)
    assert set(links.values()) == {f"https://github.com/acme/pipelines/blob/{sha}/tasks.py"}


def test_gitlab_subgroup_over_ssh_in_a_subdirectory(git_repos: GitRepos) -> None:
    project = git_repos.init(
        "gitlab", {"flows/tasks.py": TASKS_PY}, remote="ssh://git@gitlab.com/acme/platform/pipelines.git"
    )
    sha = git_repos.head(project)
    links, _ = deploy_links(project / "flows")
    assert links == {
        task: f"https://gitlab.com/acme/platform/pipelines/-/blob/{sha}/flows/tasks.py#L{line}"
        for task, line in def_lines().items()
    }


def test_task_in_a_submodule_links_to_the_submodule(git_repos: GitRepos) -> None:
    library = git_repos.init("library", {"tasks.py": TASKS_PY})
    top = git_repos.init("superproject", {"README.md": "top\n"}, remote="https://github.com/acme/top.git")
    git_repos.git(top, "submodule", "add", "-q", str(library), "vendor/library")
    git_repos.commit(top, "add submodule")
    git_repos.git(top / "vendor" / "library", "remote", "set-url", "origin", "https://github.com/acme/library.git")
    sha = git_repos.head(library)
    links, _ = deploy_links(top, file="vendor/library/tasks.py")
    assert (
        links["linked.plain"] == f"https://github.com/acme/library/blob/{sha}/tasks.py#L{def_lines()['linked.plain']}"
    )


def test_credentials_in_the_remote_never_reach_output_store_or_bundle(git_repos: GitRepos) -> None:
    token = "ghp_NEVERPRINTME"
    project = git_repos.init("secret", PROJECT, remote=f"https://ci-bot:{token}@github.com/acme/pipelines.git")
    links, done = deploy_links(project, "--copy-style", "all")
    assert all(link and link.startswith("https://github.com/acme/pipelines/blob/") for link in links.values())
    table = run(project, "deploy", "tasks.py", "env")
    for text in (done.stdout, done.stderr, table.stdout, table.stderr):
        assert token not in text and "ci-bot" not in text
    stored = list((project / ".flyte-deploy").rglob("*"))
    assert any(p.name.endswith(".tar.gz") for p in stored)
    for path in (p for p in stored if p.is_file()):
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        assert token.encode() not in data, path


def test_disabling_the_built_in_drops_links(git_repos: GitRepos) -> None:
    project = git_repos.init("disabled", PROJECT, remote="https://github.com/acme/pipelines.git")
    links, _ = deploy_links(project, "-p", "no:source_link")
    assert set(links.values()) == {None}


def test_python_api_deploy_gets_links(git_repos: GitRepos) -> None:
    project = git_repos.init("api", {"api_tasks.py": TASKS_PY}, remote="https://gitlab.com/acme/api.git")
    spec = importlib.util.spec_from_file_location("api_tasks", project / "api_tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = flyte_deploy.deploy(module.env, root_dir=project, dry_run=True, copy_style="all", options={"quiet": True})
    sha = git_repos.head(project)
    assert {t.name: t.source_link for t in result.tasks} == {
        task: f"https://gitlab.com/acme/api/-/blob/{sha}/api_tasks.py#L{line}" for task, line in def_lines().items()
    }


def test_a_hundred_tasks_run_git_five_times(git_repos: GitRepos, tmp_path: Path) -> None:
    body = "".join(f"\n\n@env.task\ndef task_{i}(x: int) -> int:\n    return x\n" for i in range(100))
    source = 'import flyte_deploy as fd\n\nenv = fd.TaskEnvironment(name="many")\n' + body
    project = git_repos.init("many", {"tasks.py": source}, remote="https://github.com/acme/many.git")
    bin_dir = tmp_path / "counting-bin"
    bin_dir.mkdir()
    log = tmp_path / "git-calls.log"
    real_git = shutil.which("git")
    wrapper = bin_dir / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real_git}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = deploy_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    links, _ = deploy_links(project, "--dry-run", env=env)
    lines = source.splitlines()
    expected = {f"many.task_{i}": f"/tasks.py#L{lines.index(f'def task_{i}(x: int) -> int:') + 1}" for i in range(100)}
    assert len(links) == 100 and all(links[name].endswith(suffix) for name, suffix in expected.items())
    calls = log.read_text().splitlines()
    assert len(calls) == 5, calls


# -- no link, and still a successful deploy --------------------------------------------


def _git_missing(git_repos: GitRepos, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    project = git_repos.init("nogit", PROJECT, remote="https://github.com/acme/pipelines.git")
    empty = tmp_path / "no-git-bin"
    empty.mkdir()
    return project, [], {"PATH": str(empty)}


def _not_a_repo(git_repos: GitRepos, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    project = tmp_path / "plain"
    git_repos.write(project, PROJECT)
    return project, [], {}


def _no_remote(git_repos: GitRepos, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    return git_repos.init("noremote", PROJECT), [], {}


def _other_host(git_repos: GitRepos, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    return git_repos.init("otherhost", PROJECT, remote="git@git.example.com:acme/pipelines.git"), [], {}


def _no_commits(git_repos: GitRepos, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    return git_repos.init("nocommit", PROJECT, remote="https://github.com/acme/pipelines.git", commit=False), [], {}


def _owned_by_another_user(git_repos: GitRepos, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("chowning a repository to nobody needs root")
    project = git_repos.init("foreign", PROJECT, remote="https://github.com/acme/pipelines.git")
    subprocess.run(["chown", "-R", "nobody", str(project)], check=True)
    refused = subprocess.run(["git", "status"], cwd=project, capture_output=True, text=True, check=False)
    assert "dubious ownership" in refused.stderr
    return project, [], {}


def _file_outside_repo(git_repos: GitRepos, tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    project = git_repos.init("root", {"README.md": "root\n"}, remote="https://github.com/acme/pipelines.git")
    outside = tmp_path / "elsewhere"
    git_repos.write(outside, {"tasks.py": TASKS_PY})
    # code baked into the image: no bundle, so a file outside the root dir is allowed
    return (
        project,
        ["--root-dir", str(project), "--copy-style", "none", "--version", "v1"],
        {"_FILE": str(outside / "tasks.py")},
    )


@pytest.mark.parametrize(
    "case",
    [_git_missing, _not_a_repo, _no_remote, _other_host, _no_commits, _owned_by_another_user, _file_outside_repo],
    ids=lambda f: f.__name__.strip("_"),
)
def test_no_link_but_a_successful_deploy(git_repos: GitRepos, tmp_path: Path, case) -> None:
    project, args, extra = case(git_repos, tmp_path)
    file = extra.pop("_FILE", "tasks.py")
    links, done = deploy_links(project, *args, file=file, env=deploy_env(**extra))
    assert set(links) == set(TASK_DEFS)
    assert set(links.values()) == {None}
    assert "error" not in done.stderr.lower()


def test_a_commit_that_only_moves_the_link_redeploys_the_same_version_unchanged(git_repos, invoke, monkeypatch):
    """Same code, same bundle, same version: a new commit (here a README change) changes
    the link but must not make the version look like a different spec."""
    repo = git_repos.init(
        "moving",
        {
            "envs.py": "import flyte_deploy as fd\nenv = fd.TaskEnvironment(name='moving')\n\n\n"
            "@env.task\ndef hello() -> str:\n    return 'hi'\n",
        },
        remote="git@github.com:acme/moving.git",
    )
    monkeypatch.chdir(repo)
    first = invoke("deploy", "envs.py", "env", "--output", "json", "-q")
    assert first.exit_code == 0, first.stderr
    link_before = first.json()["environments"][0]["tasks"][0]["source_link"]
    git_repos.write(repo, {"README.md": "docs only\n"})
    git_repos.commit(repo, "docs")
    again = invoke("deploy", "envs.py", "env", "--output", "json", "-q")
    assert again.exit_code == 0, again.stderr
    data = again.json()
    assert data["version"] == first.json()["version"]
    assert data["environments"][0]["tasks"][0]["source_link"] != link_before
    assert [r["status"] for r in data["registrations"]] == ["unchanged"]

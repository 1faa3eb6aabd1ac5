"""flyte_deploy.gitstatus against real temporary git repositories, one per state."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flyte_deploy.gitstatus import (
    GitStatus,
    GitStatusCache,
    RemoteURL,
    blob_url,
    definition_line,
    parse_remote_url,
    source_location,
)
from tests.fixtures.gitrepos import GitRepos

GITHUB = "https://github.com/acme/pipelines.git"
TASKS = {"pkg/tasks.py": "def f():\n    return 1\n"}


# -- remote URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, host, path",
    [
        ("https://github.com/acme/repo.git", "github.com", "acme/repo"),
        ("https://github.com/acme/repo", "github.com", "acme/repo"),
        ("https://github.com/acme/repo/", "github.com", "acme/repo"),
        ("http://GitHub.com/acme/repo.git", "github.com", "acme/repo"),
        ("git@github.com:acme/repo.git", "github.com", "acme/repo"),
        ("github.com:acme/repo", "github.com", "acme/repo"),
        ("ssh://git@github.com/acme/repo.git", "github.com", "acme/repo"),
        ("ssh://git@ssh.github.com:443/acme/repo.git", "github.com", "acme/repo"),
        ("git+ssh://git@github.com/acme/repo.git", "github.com", "acme/repo"),
        ("git://github.com/acme/repo.git", "github.com", "acme/repo"),
        ("https://gitlab.com/acme/group/sub/repo.git", "gitlab.com", "acme/group/sub/repo"),
        ("git@gitlab.com:acme/group/repo.git", "gitlab.com", "acme/group/repo"),
        ("https://x-token:glpat-SECRET@gitlab.com/acme/repo.git", "gitlab.com", "acme/repo"),
        ("https://ghp_SECRET@github.com/acme/repo.git", "github.com", "acme/repo"),
        ("https://user:p%40ss@github.com/acme/repo.git?token=SECRET#frag", "github.com", "acme/repo"),
        ("ssh://git@git.example.com:7999/proj/repo.git", "git.example.com", "proj/repo"),
        ("https://bitbucket.org/workspace/repo.git", "bitbucket.org", "workspace/repo"),
    ],
)
def test_parse_remote_url(url: str, host: str, path: str) -> None:
    remote = parse_remote_url(url)
    assert remote is not None
    assert (remote.host, remote.path) == (host, path)
    assert "SECRET" not in remote.url and "@" not in remote.url
    assert "SECRET" not in repr(remote)


@pytest.mark.parametrize(
    "url",
    [
        "/srv/git/repo.git",
        "../repo",
        "file:///srv/git/repo.git",
        "https://github.com/",
        "https://github.com/acme",
        "git@github.com:acme",
        "C:\\repos\\x",
        "https://github.com/acme/../x",
        "https://github.com:notaport/a/b",
        "",
    ],
)
def test_parse_remote_url_rejects_non_hosted(url: str) -> None:
    assert parse_remote_url(url) is None


def test_remote_url_keeps_ssh_port_and_drops_default_https_port() -> None:
    assert parse_remote_url("ssh://git@host.example:7999/p/r.git").url == "ssh://host.example:7999/p/r"
    assert parse_remote_url("https://host.example:443/p/r.git").url == "https://host.example/p/r"
    assert parse_remote_url("https://host.example:8443/p/r.git").url == "https://host.example:8443/p/r"


def test_blob_url_flavours_quote_paths() -> None:
    sha = "a" * 40
    assert (
        blob_url("github", "https://github.com", "o/r", sha, "dir/my file.py", 7)
        == f"https://github.com/o/r/blob/{sha}/dir/my%20file.py#L7"
    )
    assert (
        blob_url("gitlab", "https://gitlab.com/", "o/g/r", sha, "t.py", None)
        == f"https://gitlab.com/o/g/r/-/blob/{sha}/t.py"
    )
    with pytest.raises(ValueError, match="unknown blob URL flavour 'svn'"):
        blob_url("svn", "https://x", "o/r", sha, "t.py", 1)


# -- repository states ------------------------------------------------------------------


def test_clean_repository(git_repos: GitRepos) -> None:
    repo = git_repos.init("clean", TASKS, remote=GITHUB)
    status = GitStatus.from_path(repo / "pkg" / "tasks.py")
    assert status is not None
    assert status.root == repo
    assert status.commit == git_repos.head(repo)
    assert status.clean
    assert status.remote_name == "origin"
    assert status.remote == RemoteURL(host="github.com", path="acme/pipelines", scheme="https")
    assert status.relative_path(repo / "pkg" / "tasks.py") == "pkg/tasks.py"
    assert (
        status.build_url("pkg/tasks.py", 1) == f"https://github.com/acme/pipelines/blob/{status.commit}/pkg/tasks.py#L1"
    )


def test_modified_file_makes_the_tree_dirty_and_drops_the_line(git_repos: GitRepos) -> None:
    repo = git_repos.init("dirty", TASKS, remote=GITHUB)
    (repo / "pkg" / "tasks.py").write_text("def f():\n    return 2\n")
    status = GitStatus.from_path(repo)
    assert status is not None and not status.clean
    assert status.build_url("pkg/tasks.py", 1) == f"https://github.com/acme/pipelines/blob/{status.commit}/pkg/tasks.py"


def test_staged_change_makes_the_tree_dirty(git_repos: GitRepos) -> None:
    repo = git_repos.init("staged", TASKS, remote=GITHUB)
    (repo / "new.py").write_text("x = 1\n")
    git_repos.git(repo, "add", "new.py")
    status = GitStatus.from_path(repo)
    assert status is not None and not status.clean


def test_untracked_file_alone_makes_the_tree_dirty(git_repos: GitRepos) -> None:
    repo = git_repos.init("untracked", TASKS, remote=GITHUB)
    (repo / "notes.txt").write_text("scratch\n")
    assert git_repos.git(repo, "diff", "HEAD") == ""  # nothing tracked changed
    status = GitStatus.from_path(repo)
    assert status is not None and not status.clean


def test_untracked_files_count_even_when_git_config_hides_them(git_repos: GitRepos) -> None:
    repo = git_repos.init("hidden-untracked", TASKS, remote=GITHUB)
    git_repos.git(repo, "config", "status.showUntrackedFiles", "no")
    (repo / "notes.txt").write_text("scratch\n")
    assert git_repos.git(repo, "status", "--porcelain") == ""
    status = GitStatus.from_path(repo)
    assert status is not None and not status.clean


def test_ignored_files_keep_the_tree_clean(git_repos: GitRepos) -> None:
    repo = git_repos.init("ignored", {**TASKS, ".gitignore": "*.log\n"}, remote=GITHUB)
    (repo / "run.log").write_text("noise\n")
    status = GitStatus.from_path(repo)
    assert status is not None and status.clean


def test_detached_head_uses_the_checked_out_commit(git_repos: GitRepos) -> None:
    repo = git_repos.init("detached", TASKS, remote=GITHUB)
    first = git_repos.head(repo)
    (repo / "pkg" / "more.py").write_text("y = 2\n")
    second = git_repos.commit(repo)
    git_repos.git(repo, "checkout", "-q", "--detach", first)
    assert git_repos.git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    status = GitStatus.from_path(repo)
    assert status is not None
    assert status.commit == first != second
    assert status.clean


def test_repository_without_commits_has_no_status(git_repos: GitRepos) -> None:
    repo = git_repos.init("empty", TASKS, remote=GITHUB, commit=False)
    assert GitStatus.from_path(repo / "pkg" / "tasks.py") is None


def test_not_a_repository(git_repos: GitRepos, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "tasks.py").write_text("x = 1\n")
    assert GitStatus.from_path(plain / "tasks.py") is None


def test_missing_git_gives_no_status(git_repos: GitRepos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_repos.init("nogit", TASKS, remote=GITHUB)
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    assert shutil.which("git") is None
    assert GitStatus.from_path(repo) is None


def test_repository_owned_by_another_user_is_refused(git_repos: GitRepos) -> None:
    if os.geteuid() != 0:
        pytest.skip("chowning a repository to nobody needs root")
    repo = git_repos.init("foreign", TASKS, remote=GITHUB)
    subprocess.run(["chown", "-R", "nobody", str(repo)], check=True)
    refused = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and "dubious ownership" in refused.stderr
    assert GitStatus.from_path(repo / "pkg" / "tasks.py") is None


def test_no_remote_means_no_url(git_repos: GitRepos) -> None:
    repo = git_repos.init("local-only", TASKS)
    status = GitStatus.from_path(repo)
    assert status is not None
    assert status.remote is None and status.remote_name is None and status.remote_url is None
    assert status.build_url("pkg/tasks.py", 1) is None


@pytest.mark.parametrize(
    "remote", ["https://bitbucket.org/acme/repo.git", "git@git.example.com:acme/repo.git", "/srv/git/repo.git"]
)
def test_other_hosts_get_no_built_in_url(git_repos: GitRepos, remote: str) -> None:
    repo = git_repos.init("other-host", TASKS, remote=remote)
    status = GitStatus.from_path(repo)
    assert status is not None and status.remote_name == "origin"
    assert status.build_url("pkg/tasks.py", 1) is None


def test_origin_is_preferred_over_other_remotes(git_repos: GitRepos) -> None:
    repo = git_repos.init("with-origin", TASKS, remote="git@gitlab.com:acme/main.git")
    git_repos.git(repo, "remote", "add", "aaa", "https://github.com/acme/aaa.git")
    status = GitStatus.from_path(repo)
    assert status is not None
    assert (status.remote_name, status.remote.host, status.remote.path) == ("origin", "gitlab.com", "acme/main")


def test_first_remote_alphabetically_without_origin(git_repos: GitRepos) -> None:
    repo = git_repos.init("no-origin", TASKS)
    git_repos.git(repo, "remote", "add", "upstream", "https://github.com/acme/upstream.git")
    git_repos.git(repo, "remote", "add", "fork", "https://gitlab.com/me/fork.git")
    git_repos.git(repo, "remote", "add", "zeta", "https://github.com/acme/zeta.git")
    status = GitStatus.from_path(repo)
    assert status is not None
    assert (status.remote_name, status.remote.path) == ("fork", "me/fork")


def test_push_url_is_used_when_it_differs_from_the_fetch_url(git_repos: GitRepos) -> None:
    repo = git_repos.init("push-url", TASKS, remote="https://github.com/acme/fetch.git")
    git_repos.git(repo, "remote", "set-url", "--push", "origin", "git@gitlab.com:acme/push.git")
    assert git_repos.git(repo, "remote", "get-url", "origin") == "https://github.com/acme/fetch.git"
    status = GitStatus.from_path(repo)
    assert status is not None
    assert (status.remote.host, status.remote.path) == ("gitlab.com", "acme/push")
    assert status.build_url("pkg/tasks.py", 3) == f"https://gitlab.com/acme/push/-/blob/{status.commit}/pkg/tasks.py#L3"


def test_credentials_in_the_remote_are_never_kept(git_repos: GitRepos) -> None:
    repo = git_repos.init("secret", TASKS, remote="https://deploy-bot:ghp_TOPSECRET@github.com/acme/pipelines.git")
    status = GitStatus.from_path(repo)
    assert status is not None
    assert status.remote_url == "https://github.com/acme/pipelines"
    assert "TOPSECRET" not in repr(status) and "deploy-bot" not in repr(status)
    assert "TOPSECRET" not in status.build_url("pkg/tasks.py", 1)


def test_worktree_reads_its_own_head(git_repos: GitRepos) -> None:
    repo = git_repos.init("main-checkout", TASKS, remote=GITHUB)
    worktree = git_repos.base / "feature-checkout"
    git_repos.git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    (worktree / "pkg" / "feature.py").write_text("z = 3\n")
    feature_head = git_repos.commit(worktree, "feature work")
    status = GitStatus.from_path(worktree / "pkg" / "feature.py")
    assert status is not None
    assert status.root == worktree
    assert status.commit == feature_head != git_repos.head(repo)
    assert status.clean and status.remote.path == "acme/pipelines"
    assert status.relative_path(worktree / "pkg" / "feature.py") == "pkg/feature.py"


def test_submodule_links_to_its_own_repository(git_repos: GitRepos) -> None:
    library = git_repos.init("library", {"lib/tasks.py": "def g():\n    return 1\n"})
    top = git_repos.init("superproject", TASKS, remote=GITHUB)
    git_repos.git(top, "submodule", "add", "-q", str(library), "vendor/library")
    git_repos.commit(top, "add submodule")
    sub = top / "vendor" / "library"
    git_repos.git(sub, "remote", "set-url", "origin", "git@gitlab.com:acme/library.git")

    inner = GitStatus.from_path(sub / "lib" / "tasks.py")
    assert inner is not None
    assert inner.root == sub and inner.commit == git_repos.head(library)
    assert (inner.remote.host, inner.remote.path) == ("gitlab.com", "acme/library")
    assert inner.relative_path(sub / "lib" / "tasks.py") == "lib/tasks.py"

    outer = GitStatus.from_path(top / "pkg" / "tasks.py")
    assert outer is not None
    assert outer.root == top and outer.remote.path == "acme/pipelines" and outer.clean
    assert outer.relative_path(sub / "lib" / "tasks.py") == "vendor/library/lib/tasks.py"


def test_changed_submodule_makes_the_superproject_dirty(git_repos: GitRepos) -> None:
    library = git_repos.init("library2", {"lib/tasks.py": "x = 1\n"})
    top = git_repos.init("superproject2", TASKS, remote=GITHUB)
    git_repos.git(top, "submodule", "add", "-q", str(library), "vendor/library")
    git_repos.commit(top, "add submodule")
    (top / "vendor" / "library" / "lib" / "tasks.py").write_text("x = 2\n")
    status = GitStatus.from_path(top)
    assert status is not None and not status.clean


def test_file_outside_the_repository_has_no_relative_path(git_repos: GitRepos, tmp_path: Path) -> None:
    repo = git_repos.init("inside", TASKS, remote=GITHUB)
    outside = tmp_path / "outside.py"
    outside.write_text("x = 1\n")
    status = GitStatus.from_path(repo)
    assert status is not None
    assert status.relative_path(outside) is None
    assert status.relative_path(repo / "pkg" / "missing.py") is None
    assert status.relative_path("<string>") is None


def test_symlinked_checkout_resolves_to_the_real_root(git_repos: GitRepos, tmp_path: Path) -> None:
    repo = git_repos.init("real", TASKS, remote=GITHUB)
    link = tmp_path / "link"
    link.symlink_to(repo)
    status = GitStatus.from_path(link / "pkg" / "tasks.py")
    assert status is not None
    assert status.relative_path(link / "pkg" / "tasks.py") == "pkg/tasks.py"


def test_repository_env_vars_of_an_enclosing_git_hook_are_ignored(
    git_repos: GitRepos, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repos.init("target", TASKS, remote=GITHUB)
    other = git_repos.init("hook-owner", TASKS, remote="https://github.com/acme/other.git")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    status = GitStatus.from_path(repo)
    assert status is not None and status.root == repo and status.remote.path == "acme/pipelines"


def test_cache_runs_git_once_per_directory_and_repository(git_repos: GitRepos) -> None:
    repo = git_repos.init("cached", {"a/one.py": "", "a/two.py": "", "b/three.py": ""}, remote=GITHUB)
    cache = GitStatusCache()
    statuses = {cache.status_for(repo / f) for f in ("a/one.py", "a/two.py", "b/three.py")}
    # two rev-parse --show-toplevel (a/, b/), then rev-parse HEAD, status, remote, remote get-url
    assert cache.runs == 6
    assert len(statuses) == 1
    cache.status_for(repo / "a" / "one.py")
    assert cache.runs == 6
    found = cache.file_in_repository(str(repo / "b" / "three.py"))
    assert found is not None and found[1] == "b/three.py" and found[0] in statuses
    assert cache.file_in_repository(str(repo / "b" / "gone.py")) is None
    assert cache.runs == 6


# -- the def line ------------------------------------------------------------------------

DECORATED = '''\
import functools


def deco(*args, **kwargs):
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda func: func


def traced(func):
    @functools.wraps(func)
    def wrapper(*a, **k):
        return func(*a, **k)
    return wrapper


def bare(x):
    return x


@deco
def one_decorator(x):
    return x


@deco
@deco(name="def not_this(")
@deco
async def three_decorators(x):
    return x


@deco(
    retries=2,
    docs="""a multi-line
decorator argument
def fake(x):
""",
)
def multi_line_decorator(x):
    return x


@traced
def wrapped(x):
    return x


class Holder:
    @staticmethod
    @deco(
        a=1,
    )
    def method(x):
        """Docstring whose second line
starts at column zero."""
        return x


def outer():
    @deco
    def inner(x):
        return x
    return inner


lam = deco(lambda x: x)
'''


@pytest.fixture
def decorated(tmp_path: Path):
    path = tmp_path / "decorated_module.py"
    path.write_text(DECORATED)
    spec = importlib.util.spec_from_file_location("decorated_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = DECORATED.splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if text in line)

    yield module, path, line_of
    sys.modules.pop("decorated_module", None)


@pytest.mark.parametrize(
    "name, def_text",
    [
        ("bare", "def bare("),
        ("one_decorator", "def one_decorator("),
        ("three_decorators", "async def three_decorators("),
        ("multi_line_decorator", "def multi_line_decorator("),
        ("wrapped", "def wrapped("),
    ],
)
def test_source_location_is_the_def_line(decorated, name: str, def_text: str) -> None:
    module, path, line_of = decorated
    assert source_location(getattr(module, name)) == (str(path), line_of(def_text))


def test_def_line_of_methods_nested_functions_and_lambdas(decorated) -> None:
    module, _, line_of = decorated
    assert definition_line(module.Holder.method) == line_of("def method(")
    assert definition_line(module.outer()) == line_of("def inner(")
    assert definition_line(module.lam) == line_of("lam = ")


def test_def_line_without_source_falls_back_to_the_code_object() -> None:
    namespace: dict = {}
    exec(compile("\n\n@staticmethod\ndef made(x):\n    return x\n", "<generated>", "exec"), namespace)
    func = namespace["made"].__func__
    assert definition_line(func) == func.__code__.co_firstlineno == 3


def test_non_utf8_file_names_in_the_status_are_read(git_repos: GitRepos) -> None:
    repo = git_repos.init("bytes", TASKS, remote=GITHUB)
    git_repos.git(repo, "config", "core.quotePath", "false")
    os.close(os.open(os.path.join(os.fsencode(repo), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY))
    status = GitStatus.from_path(repo / "pkg" / "tasks.py")
    assert status is not None and not status.clean

"""Git facts for source-code links: repository root, HEAD commit, clean status, remote.

``GitStatus.from_path(path)`` reads them with the git CLI, exactly these calls::

    git -C <dir of path> rev-parse --show-toplevel
    git -C <root> rev-parse --verify --quiet HEAD^{commit}
    git -C <root> status --porcelain --untracked-files=normal
    git -C <root> remote
    git -C <root> remote get-url --push <origin, else the first remote alphabetically>

The repository is the one containing the given path (so a task in a submodule or a
worktree links to that checkout's own commit and remote). Any failure -- git missing,
not a repository, a repository git refuses (owned by another user), no commit -- gives
``None``, never an exception. Remote URLs are parsed into host and repository path with
credentials removed; the raw URL is never stored, logged or printed.

``git_status_for(session, path)`` is the cached form every source-link plugin should use:
one deploy runs git once per directory and repository, however many tasks it links.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import os
import re
import shutil
import subprocess
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .session import StashKey

if TYPE_CHECKING:
    from .session import DeploySession

log = logging.getLogger(__name__)

#: seconds one git call may take before the link is given up
GIT_TIMEOUT = 30.0

#: variables that point git at a repository other than the one the path is in (set, for
#: example, inside git hooks); removed so the task's own repository is always the one read
REPOSITORY_ENV_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)

#: hosts that serve the same repositories as a public forge (ssh over port 443)
HOST_ALIASES = {
    "ssh.github.com": "github.com",
    "www.github.com": "github.com",
    "altssh.gitlab.com": "gitlab.com",
    "www.gitlab.com": "gitlab.com",
    "altssh.bitbucket.org": "bitbucket.org",
    "www.bitbucket.org": "bitbucket.org",
}

#: the public forges the built-in links to, and the URL flavour of each
PUBLIC_FORGES = {"github.com": "github", "gitlab.com": "gitlab"}

_URL_SCHEMES = {"http", "https", "ssh", "git", "git+ssh", "ssh+git"}
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP_RE = re.compile(r"^(?:[^/]*@)?(?P<host>[^@/:\[\]]+|\[[^\]/]+\]):(?P<path>.*)$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


# -- remotes --------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteURL:
    """A git remote parsed into ``host`` (lower case, no user, password or port) and
    ``path`` (the repository path, ``owner/repo`` or ``group/sub/repo``, no ``.git``)."""

    host: str
    path: str
    scheme: str = "https"
    port: int | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))

    @property
    def owner(self) -> str:
        return self.segments[0]

    @property
    def name(self) -> str:
        return self.segments[-1]

    @property
    def url(self) -> str:
        """The remote without credentials, safe to show (``ssh://host/path`` for ssh remotes)."""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host}{port}/{self.path}"


def parse_remote_url(url: str) -> RemoteURL | None:
    """Parse an https, http, ssh, git or scp-like (``git@host:owner/repo.git``) remote URL.

    Userinfo (``user:token@``), query and fragment are dropped. Local paths, ``file://``
    URLs and URLs with fewer than two path segments give ``None``.
    """
    url = url.strip()
    if _SCHEME_RE.match(url):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in _URL_SCHEMES or not parts.hostname:
            return None
        host, path = parts.hostname, parts.path
        scheme = "ssh" if "ssh" in scheme else scheme
    else:
        match = _SCP_RE.match(url)
        if match is None or len(match.group("host")) == 1:  # "C:\..." is a Windows path
            return None
        host, path, scheme, port = match.group("host").strip("[]"), match.group("path"), "ssh", None
    host = host.lower()
    host = HOST_ALIASES.get(host, host)
    path = path.strip("/")
    path = path.removesuffix(".git")
    segments = [s for s in path.split("/") if s]
    if len(segments) < 2 or any(s in (".", "..") for s in segments):
        return None
    return RemoteURL(
        host=host,
        path="/".join(segments),
        scheme=scheme,
        port=port if scheme == "ssh" or port not in (None, 80, 443) else None,
    )


# -- URLs -----------------------------------------------------------------------------


def blob_url(flavour: str, web_url: str, repo_path: str, commit: str, path: str, line: int | None) -> str:
    """The browsable URL of ``path`` at ``commit`` on a GitHub- or GitLab-style forge.

    ``flavour`` is ``"github"`` (``/blob/``) or ``"gitlab"`` (``/-/blob/``); ``web_url`` the
    forge's base URL (``https://github.com``); ``line`` adds ``#L<line>`` when given.
    """
    middle = {"github": "blob", "gitlab": "-/blob"}.get(flavour)
    if middle is None:
        raise ValueError(f"unknown blob URL flavour {flavour!r}")
    anchor = f"#L{line}" if line else ""
    return f"{web_url.rstrip('/')}/{quote_path(repo_path)}/{middle}/{commit}/{quote_path(path)}{anchor}"


def quote_path(path: str) -> str:
    """Percent-encode a repository-relative path for a URL, keeping its slashes."""
    return quote(path, safe="/~")


# -- status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GitStatus:
    """The state of one git checkout: its ``root``, HEAD ``commit``, whether it is
    ``clean`` (no staged, unstaged or untracked changes) and its ``remote`` (``None`` when
    the repository has none or its URL is not a hosted one)."""

    root: Path
    commit: str
    clean: bool
    remote_name: str | None = None
    remote: RemoteURL | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> GitStatus | None:
        """The status of the repository containing ``path`` (a file or directory), or
        ``None`` when there is none git will read. Not cached: see ``git_status_for``."""
        return GitStatusCache().status_for(path)

    @property
    def remote_url(self) -> str | None:
        """The remote URL with credentials removed."""
        return self.remote.url if self.remote else None

    def relative_path(self, filename: str | os.PathLike[str]) -> str | None:
        """``filename`` relative to the root, with ``/`` separators; ``None`` when the file
        does not exist or lies outside the repository."""
        if not os.path.isfile(filename):
            return None
        try:
            relative = Path(os.path.realpath(filename)).relative_to(os.path.realpath(self.root))
        except ValueError:
            return None
        return relative.as_posix()

    def build_url(self, path: str, line: int | None = None) -> str | None:
        """The link to ``path`` (relative to the root) at this commit, on github.com or
        gitlab.com; ``#L<line>`` only when the tree is clean. ``None`` for other hosts."""
        if self.remote is None or self.remote.host not in PUBLIC_FORGES:
            return None
        return blob_url(
            PUBLIC_FORGES[self.remote.host],
            f"https://{self.remote.host}",
            self.remote.path,
            self.commit,
            path,
            line if self.clean else None,
        )


class GitStatusCache:
    """Runs git at most once per directory (to find its repository) and once per
    repository (its status); ``runs`` counts the git processes started."""

    def __init__(self) -> None:
        self.git = shutil.which("git")
        self.runs = 0
        self._roots: dict[str, Path | None] = {}
        self._statuses: dict[Path, GitStatus | None] = {}
        self._files: dict[str, tuple[GitStatus, str] | None] = {}

    def status_for(self, path: str | os.PathLike[str]) -> GitStatus | None:
        """The status of the repository containing ``path``, or ``None`` (see module doc)."""
        if self.git is None:
            return None
        directory = os.path.realpath(path)
        if not os.path.isdir(directory):
            directory = os.path.dirname(directory)
        if not os.path.isdir(directory):
            return None
        if directory not in self._roots:
            top = self._git(directory, "rev-parse", "--show-toplevel")
            self._roots[directory] = Path(top) if top else None
        root = self._roots[directory]
        if root is None:
            return None
        if root not in self._statuses:
            self._statuses[root] = self._read_status(root)
        return self._statuses[root]

    def file_in_repository(self, filename: str) -> tuple[GitStatus, str] | None:
        """The status of the repository holding ``filename`` and the file's path relative
        to its root, or ``None``; cached per file name."""
        if filename not in self._files:
            status = self.status_for(filename)
            path = status.relative_path(filename) if status is not None else None
            self._files[filename] = (status, path) if status is not None and path is not None else None
        return self._files[filename]

    def _read_status(self, root: Path) -> GitStatus | None:
        commit = self._git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if not commit or not _SHA_RE.match(commit):
            log.debug("source links: %s has no commit", root)
            return None
        changes = self._git(root, "status", "--porcelain", "--untracked-files=normal", strip=False)
        if changes is None:
            return None
        remote_name, remote = self._remote(root)
        return GitStatus(root=root, commit=commit, clean=changes == "", remote_name=remote_name, remote=remote)

    def _remote(self, root: Path) -> tuple[str | None, RemoteURL | None]:
        names = sorted((self._git(root, "remote") or "").split())
        if not names:
            log.debug("source links: %s has no remote", root)
            return None, None
        name = "origin" if "origin" in names else names[0]
        url = self._git(root, "remote", "get-url", "--push", name, quiet=True)
        remote = parse_remote_url(url) if url else None
        if remote is None:
            log.debug("source links: remote %r of %s is not a hosted repository", name, root)
        return name, remote

    def _git(self, cwd: str | Path, *args: str, strip: bool = True, quiet: bool = False) -> str | None:
        """stdout of ``git -C cwd args``, or ``None`` when git fails (stderr is logged at
        debug level unless ``quiet``, for calls whose errors could echo a remote URL)."""
        assert self.git is not None
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if k not in REPOSITORY_ENV_VARS}
        env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0")
        try:
            done = subprocess.run(
                [self.git, "-C", str(cwd), *args],
                capture_output=True,
                check=False,
                encoding="utf-8",
                errors="surrogateescape",  # any path bytes round-trip
                timeout=GIT_TIMEOUT,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("source links: git %s in %s failed: %s", args[0], cwd, type(exc).__name__)
            return None
        if done.returncode != 0:
            if not quiet:
                first = (done.stderr.strip().splitlines() or [""])[0]
                log.debug("source links: git %s in %s exited %d: %s", args[0], cwd, done.returncode, first)
            return None
        return done.stdout.strip() if strip else done.stdout


GIT_STATUS_CACHE: StashKey[GitStatusCache] = StashKey()


def session_cache(session: DeploySession) -> GitStatusCache:
    """The deploy's ``GitStatusCache`` (kept in ``session.stash``, shared by all plugins)."""
    cache = session.stash.get(GIT_STATUS_CACHE)
    if cache is None:
        cache = session.stash[GIT_STATUS_CACHE] = GitStatusCache()
    return cache


def git_status_for(session: DeploySession, path: str | os.PathLike[str]) -> GitStatus | None:
    """``GitStatus`` of the repository containing ``path``, cached for the session's deploy."""
    return session_cache(session).status_for(path)


# -- where a function is defined ------------------------------------------------------


def definition_line(func: Callable[..., Any]) -> int:
    """The line of ``func``'s ``def`` (or ``async def``), below any decorators.

    ``co_firstlineno`` is the first decorator's line; the function's file is parsed (once
    per file version) to map it to the ``def`` line. Falls back to ``co_firstlineno`` when
    the file cannot be read or parsed, or for a lambda.
    """
    code = func.__code__
    try:
        stat = os.stat(code.co_filename)
    except OSError:
        return code.co_firstlineno
    return _definition_lines(code.co_filename, stat.st_mtime_ns, stat.st_size).get(
        code.co_firstlineno, code.co_firstlineno
    )


@functools.lru_cache(maxsize=256)
def _definition_lines(filename: str, mtime_ns: int, size: int) -> dict[int, int]:
    """First line (first decorator, else ``def``) -> ``def`` line of every function in the
    file; keyed by modification time and size, so an edited file is parsed again."""
    try:
        with tokenize.open(filename) as handle:  # honours a coding cookie, like the import did
            tree = ast.parse(handle.read(), filename)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    lines: dict[int, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            lines.setdefault(first, node.lineno)
    return lines


def source_location(func: Callable[..., Any]) -> tuple[str, int] | None:
    """``(absolute file name, def line)`` of the function behind ``func`` (decorator
    wrappers with ``__wrapped__`` are unwrapped), or ``None`` without a code object."""
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    return os.path.abspath(code.co_filename), definition_line(func)


@dataclass(frozen=True)
class TaskSource:
    """Where a task's function is, for a link: its checkout's ``status``, the ``path``
    relative to the checkout's root and the ``line`` of its ``def``."""

    status: GitStatus
    path: str
    line: int

    @property
    def anchor_line(self) -> int | None:
        """``line`` when the tree is clean, else ``None`` (the file may differ from the commit)."""
        return self.line if self.status.clean else None


def task_source(session: DeploySession, func: Callable[..., Any]) -> TaskSource | None:
    """The ``TaskSource`` of ``func`` (a task's function), using the session's git cache;
    ``None`` when its file is in no readable repository with a commit."""
    location = source_location(func)
    if location is None:
        return None
    filename, line = location
    found = session_cache(session).file_in_repository(filename)
    if found is None:
        return None
    status, path = found
    return TaskSource(status=status, path=path, line=line)


__all__ = [
    "GIT_STATUS_CACHE",
    "GitStatus",
    "GitStatusCache",
    "RemoteURL",
    "TaskSource",
    "blob_url",
    "definition_line",
    "git_status_for",
    "parse_remote_url",
    "quote_path",
    "session_cache",
    "source_location",
    "task_source",
]

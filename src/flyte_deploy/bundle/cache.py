"""The signature cache: how a no-change redeploy knows its bundle digest without re-reading
the tree, as git's index does.

Per root dir, one cache file maps each file's archive name and stat signature (size,
mtime_ns, ctime_ns, inode, st_mode) to the sha256 of its content, and each *tree key* to
the bundle it gave (content digest, archive sha256 and size). The tree key is the sha256 of
every member's name, normalized tar mode, size and content digest in archive order: exactly
what determines the deterministic tar stream, so one tree key has one bundle digest, and a
change of content, mode, file set (a file added or removed, an ignore rule, the copy style)
gives another key. Only the changed files are re-hashed.

The cache is only an optimization. A missing, truncated, corrupt (checksummed) or foreign
cache file reads as empty; it is written under a temporary name and renamed, so concurrent
deploys each leave a whole file (the last rename wins). A file whose signature differs is
re-hashed. Racy entries (git's term): a file changed within the filesystem's timestamp
granularity of being hashed could change again without changing its signature, so an entry
whose ctime or mtime is not older than ``RACY_NS`` before the hashing started is not stored
and the file is hashed again next time. The digest a deploy uses is always either computed
from the bytes of this run or the one the unchanged tree gave before.

Location: ``FLYTE_DEPLOY_CACHE_DIR``, else ``$XDG_CACHE_HOME/flyte-deploy``
(``~/.cache/flyte-deploy``), outside the project, so a dry run still writes nothing there;
one file per resolved root dir and copy style.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

#: a change this close (ns) before hashing might not move the timestamps: re-hash next time
RACY_NS = 3_000_000_000
#: how many tree keys (bundles) are remembered per root
MAX_TREES = 16
_MAGIC = b"flyte-deploy signature cache 1\n"
_DIGEST_SIZE = 32

#: (size, mtime_ns, ctime_ns, inode, st_mode)
Signature = tuple[int, int, int, int, int]


def signature(info: os.stat_result) -> Signature:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_mode)


def tar_mode(st_mode: int) -> int:
    """The mode a member gets in the archive: 0o755 when the owner may execute, else 0o644."""
    return 0o755 if st_mode & 0o100 else 0o644


class KnownBundle(NamedTuple):
    """The bundle a tree key gave: content digest, archive sha256 and archive size."""

    digest: str
    archive_digest: str
    size: int


class FileDigest(NamedTuple):
    """One member as the archive holds it: its stat signature and content sha256."""

    signature: Signature
    sha256: bytes


def tree_key(members: Iterable[tuple[str, FileDigest]]) -> str:
    """The key of a tree: sha256 over (name, tar mode, size, content sha256) in name order."""
    key = hashlib.sha256()
    for name, member in sorted(members):
        encoded = name.encode("utf-8", "surrogateescape")
        key.update(b"%d:%s\0%o %d " % (len(encoded), encoded, tar_mode(member.signature[4]), member.signature[0]))
        key.update(member.sha256)
    return key.hexdigest()


def cache_dir(environ: Mapping[str, str]) -> Path:
    """Where signature caches live (module docstring)."""
    explicit = environ.get("FLYTE_DEPLOY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flyte-deploy"


def cache_file(directory: Path, root_dir: Path, copy_style: str) -> Path:
    """The cache file of ``root_dir`` (resolved) and ``copy_style`` under ``directory``."""
    root = os.path.realpath(root_dir).encode("utf-8", "surrogateescape")
    return directory / f"signatures-{hashlib.sha256(root).hexdigest()[:32]}-{copy_style}.bin"


def hash_file(path: str) -> FileDigest:
    """The signature (fstat of the open file) and sha256 of the regular file ``path``."""
    from .files import open_regular

    fd, info = open_regular(path)
    try:
        sha = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            sha.update(chunk)
    finally:
        os.close(fd)
    return FileDigest(signature(info), sha.digest())


@dataclass
class SignatureCache:
    """The cache of one root dir: ``files`` (name -> FileDigest) and ``trees``
    (tree key -> KnownBundle, oldest first). ``load`` it, ``lookup``, ``record``, ``save``."""

    path: Path
    files: dict[str, FileDigest] = field(default_factory=dict)
    trees: dict[str, KnownBundle] = field(default_factory=dict)
    #: time.time_ns() before this run hashed anything: the racy threshold's base
    started_ns: int = field(default_factory=time.time_ns)

    @classmethod
    def load(cls, path: Path) -> SignatureCache:
        """The cache stored at ``path``; empty when it is missing or not a whole, valid cache."""
        cache = cls(path)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return cache
        head = len(_MAGIC) + _DIGEST_SIZE
        if not data.startswith(_MAGIC) or hashlib.sha256(data[head:]).digest() != data[len(_MAGIC) : head]:
            return cache
        try:
            files, trees = marshal.loads(data[head:])
            cache.files = {
                name: FileDigest(tuple(sig), digest)
                for name, (sig, digest) in files.items()
                if isinstance(name, str) and len(sig) == 5 and isinstance(digest, bytes) and len(digest) == _DIGEST_SIZE
            }
            cache.trees = {key: KnownBundle(*known) for key, known in trees}
        except (ValueError, TypeError, EOFError):
            cache.files, cache.trees = {}, {}
        return cache

    def lookup(self, files: Mapping[str, str]) -> tuple[dict[str, FileDigest], list[str]]:
        """The members of ``files`` (name -> path) whose current signature matches the cache,
        and the names that must be hashed (changed, new, or unreadable now)."""
        known: dict[str, FileDigest] = {}
        missing: list[str] = []
        for name, path in files.items():
            entry = self.files.get(name)
            if entry is not None:
                try:
                    if signature(os.stat(path)) == entry.signature:
                        known[name] = entry
                        continue
                except OSError:
                    pass
            missing.append(name)
        return known, missing

    def record(self, members: Mapping[str, FileDigest], bundle: KnownBundle | None = None) -> str:
        """Remember ``members`` (the whole tree, replacing what was there) and, when given,
        the bundle their tree key gave; return the tree key. Racy members are not kept."""
        racy_after = self.started_ns - RACY_NS
        self.files = {
            name: member
            for name, member in members.items()
            if member.signature[1] < racy_after and member.signature[2] < racy_after
        }
        key = tree_key(members.items())
        if bundle is not None:
            self.trees.pop(key, None)
            self.trees[key] = bundle
            while len(self.trees) > MAX_TREES:
                del self.trees[next(iter(self.trees))]
        return key

    def save(self) -> None:
        """Write the cache atomically; a failure to write is ignored (it is only a cache)."""
        payload = marshal.dumps(
            (
                {name: (m.signature, m.sha256) for name, m in self.files.items()},
                [(key, tuple(known)) for key, known in self.trees.items()],
            )
        )
        partial = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as handle:
                handle.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(partial, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(partial)

"""The bundle signature cache (flyte_deploy.bundle.cache): an unchanged tree gives its
bundle digest without re-reading or re-tarring, every change gives the digest a build
without the cache gives, and a stale, corrupt, deleted or racy cache never gives a wrong
bundle."""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from flyte_deploy.bundle import archive, cache
from flyte_deploy.bundle.build import build
from flyte_deploy.bundle.cache import SignatureCache, cache_file
from flyte_deploy.types import DeployPlan, DeployRequest, Discovery

from .bundle_helpers import make_project, write


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    write(
        root,
        {
            "main.py": "X = 1\n",
            "pkg/__init__.py": "",
            "pkg/util.py": "Y = 2\n",
            "data/a.csv": "a,b\n1,2\n",
            "data/b.csv": "c,d\n3,4\n",
            ".gitignore": "*.log\n",
        },
    )
    return root


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled (not racy), as files edited minutes ago do."""
    monkeypatch.setattr(cache, "RACY_NS", 0)


class Builder:
    """Builds ``root`` with and without the cache, like the built-in plugin does."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.cache_dir = tmp_path / "cache"
        self.storage = tmp_path / "storage"
        self.storage.mkdir()
        self.count = 0

    def plan(self, root: Path, style: str = "all") -> DeployPlan:
        """A plan of ``root``; with loaded_modules, the module ``cache_test_main`` (main.py)."""
        self.count += 1
        scratch = self.tmp / f"scratch{self.count}"
        scratch.mkdir()
        return DeployPlan(
            request=DeployRequest(mode="all", path=root / "main.py"),
            root_dir=root,
            copy_style=style,
            scratch_dir=scratch,
            environments=(),
            discovery=Discovery(environments=(), selected=(), loaded_modules=("cache_test_main",)),
        )

    def cached(self, root: Path, style: str = "all", dry_run: bool = False, store: bool = True):
        """Build with the cache; store the archive when one was written (as an upload would)."""
        plan = self.plan(root, style)
        signatures = SignatureCache.load(cache_file(self.cache_dir, root, style))
        bundle, _ = build(plan, (), signatures, str(self.storage), dry_run)
        written = (plan.scratch_dir / archive.ARCHIVE_NAME).exists()
        if written and store:
            os.replace(plan.scratch_dir / archive.ARCHIVE_NAME, self.storage / bundle.filename)
        return bundle, written

    def truth(self, root: Path, style: str = "all") -> str:
        bundle, _ = build(self.plan(root, style))
        return str(bundle.digest)


@pytest.fixture
def builder(tmp_path: Path) -> Builder:
    return Builder(tmp_path)


def test_an_unchanged_tree_reuses_the_stored_bundle_without_writing_an_archive(tree, builder, settled):
    first, written = builder.cached(tree)
    assert written and first.digest == builder.truth(tree)
    again, written = builder.cached(tree)
    assert not written
    assert again.digest == first.digest and again.archive_digest == first.archive_digest
    assert again.size == first.size and again.files == first.files
    assert again.path == builder.storage / first.filename


def test_a_dry_run_of_a_known_tree_writes_nothing_even_when_the_bundle_is_not_stored(tree, builder, settled):
    first, _ = builder.cached(tree, store=False)
    dry, written = builder.cached(tree, dry_run=True)
    assert not written and dry.path is None and dry.digest == first.digest


def test_a_known_tree_whose_stored_bundle_is_missing_or_damaged_is_built_again(tree, builder, settled):
    first, _ = builder.cached(tree)
    stored = builder.storage / first.filename
    stored.write_bytes(stored.read_bytes()[:-1] + b"x")  # same size, other bytes
    again, written = builder.cached(tree, store=False)
    assert written and again.digest == first.digest and again.path != stored
    stored.unlink()
    again, written = builder.cached(tree)
    assert written and again.digest == first.digest


@pytest.mark.parametrize(
    "change", ["content", "same size and mtime", "mode", "added", "removed", "ignore rule", "renamed"]
)
def test_every_change_gives_the_digest_of_a_build_without_the_cache(tree, builder, settled, change):
    before, _ = builder.cached(tree)
    target = tree / "data" / "a.csv"
    if change == "content":
        target.write_text("a,b\n1,2\n5,6\n")
    elif change == "same size and mtime":  # an edit the mtime does not show: ctime does
        info = target.stat()
        target.write_text("a,b\n9,9\n")
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    elif change == "mode":
        target.chmod(0o755)
    elif change == "added":
        (tree / "data" / "c.csv").write_text("new\n")
    elif change == "removed":
        target.unlink()
    elif change == "ignore rule":
        (tree / ".gitignore").write_text("*.log\n*.csv\n")
    elif change == "renamed":
        target.rename(tree / "data" / "z.csv")
    after, written = builder.cached(tree)
    assert written, "a changed tree is archived again"
    assert after.digest == builder.truth(tree) != before.digest


def test_a_change_reverted_gives_the_earlier_bundle_without_rewriting_it(tree, builder, settled):
    first, _ = builder.cached(tree)
    (tree / "main.py").write_text("X = 2\n")
    second, _ = builder.cached(tree)
    (tree / "main.py").write_text("X = 1\n")
    third, written = builder.cached(tree)
    assert second.digest != first.digest
    assert not written and third.digest == first.digest == builder.truth(tree)


def test_copy_style_and_root_have_their_own_caches(tree, builder, settled, tmp_path, monkeypatch):
    module = types.ModuleType("cache_test_main")
    module.__file__ = str(tree / "main.py")
    monkeypatch.setitem(sys.modules, "cache_test_main", module)
    all_files, _ = builder.cached(tree, "all")
    modules, written = builder.cached(tree, "loaded_modules")
    assert written and modules.digest == builder.truth(tree, "loaded_modules") != all_files.digest
    again, written = builder.cached(tree, "all")  # the other style's build left this cache alone
    assert not written and again.digest == all_files.digest
    other = tmp_path / "other"
    write(other, {"main.py": "X = 1\n"})
    elsewhere, written = builder.cached(other)
    assert written and elsewhere.digest == builder.truth(other)
    assert cache_file(builder.cache_dir, tree, "all") != cache_file(builder.cache_dir, other, "all")


def test_racy_entries_are_hashed_again(tree, builder):
    """Files changed within RACY_NS of being hashed are not trusted next time: a change in
    the same timestamp tick, which no signature shows, is still seen."""
    first, _ = builder.cached(tree)
    signatures = SignatureCache.load(cache_file(builder.cache_dir, tree, "all"))
    assert signatures.trees and not signatures.files, "files written just now are racy"
    target = tree / "main.py"
    info = target.stat()
    target.write_text("X = 7\n")  # same size; mtime put back as a coarse clock would leave it
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    after, _ = builder.cached(tree)
    assert after.digest == builder.truth(tree) != first.digest


def test_an_entry_hashed_in_the_tick_of_its_change_is_not_kept(tree):
    signatures = SignatureCache(Path("unused"))
    now = time.time_ns()
    old = cache.FileDigest((3, now - 2 * cache.RACY_NS, now - 2 * cache.RACY_NS, 1, 0o100644), b"\0" * 32)
    fresh = cache.FileDigest((3, now - 2 * cache.RACY_NS, now, 2, 0o100644), b"\1" * 32)
    signatures.record({"old": old, "fresh": fresh})
    assert set(signatures.files) == {"old"}


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated", "flipped byte", "empty", "valid checksum, wrong shape", "deleted"]
)
def test_a_damaged_cache_file_is_ignored_and_replaced(tree, builder, settled, damage):
    import hashlib
    import marshal

    first, _ = builder.cached(tree)
    path = cache_file(builder.cache_dir, tree, "all")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped byte":
        path.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "valid checksum, wrong shape":
        payload = marshal.dumps(({"main.py": ("x", 1)}, [("k", (1,))]))
        path.write_bytes(cache._MAGIC + hashlib.sha256(payload).digest() + payload)
    else:
        path.unlink()
    (tree / "main.py").write_text("X = 3\n")
    after, written = builder.cached(tree)
    assert written and after.digest == builder.truth(tree) != first.digest
    assert SignatureCache.load(path).trees, "the cache is written whole again"


def test_a_cache_file_that_lies_about_a_file_is_caught_by_its_signature(tree, builder, settled):
    """A stale entry (another file's digest under this name) is not used once the file's
    signature moved, whatever the entry says."""
    builder.cached(tree)
    path = cache_file(builder.cache_dir, tree, "all")
    signatures = SignatureCache.load(path)
    entry = signatures.files["main.py"]
    signatures.files["main.py"] = cache.FileDigest(entry.signature, b"\7" * 32)
    signatures.save()
    (tree / "main.py").write_text("X = 4\n")
    after, _ = builder.cached(tree)
    assert after.digest == builder.truth(tree)


def test_concurrent_writers_leave_one_whole_cache(tmp_path):
    path = tmp_path / "c" / "signatures.bin"
    entry = cache.FileDigest((1, 1, 1, 1, 0o100644), b"\0" * 32)

    def writer(n: int) -> None:
        for i in range(20):
            signatures = SignatureCache(path, files={f"f{n}-{j}": entry for j in range(200)})
            signatures.trees[f"key{n}-{i}"] = cache.KnownBundle("d" * 64, "a" * 64, n)
            signatures.save()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = SignatureCache.load(path)
    assert len(loaded.files) == 200 and len({name.split("-")[0] for name in loaded.files}) == 1
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]


def test_cli_no_change_redeploy_writes_no_archive_and_keeps_the_version(tmp_path, invoke, monkeypatch):
    """Through the CLI (files fresh, so racy: hashed again, never trusted on signatures)."""
    project = make_project(tmp_path / "shop")
    monkeypatch.chdir(project)
    args = ("deploy", "--all", "flows.py", "--copy-style", "all", "--output", "json", "-q")
    first = invoke(*args).json()
    bundles = project / ".flyte-deploy" / "bundles"
    stored = next(bundles.iterdir())
    before = stored.stat()
    second = invoke(*args).json()
    assert second["version"] == first["version"] and second["bundle"] == first["bundle"]
    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [p.name for p in bundles.iterdir()] == [stored.name]
    (project / "data" / "prices.json").write_text('{"a": 9}')
    third = invoke(*args).json()
    assert third["version"] != first["version"] and len(list(bundles.iterdir())) == 2

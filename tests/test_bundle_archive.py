"""The archive: deterministic bytes, normalized metadata, safe extraction."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from flyte_deploy.bundle.archive import WrittenArchive, tar_header, write_archive
from flyte_deploy.bundle.extract import extract_archive
from flyte_deploy.bundle.select import all_files
from flyte_deploy.errors import BundleError

FILES = {
    "app.py": "print('hi')\n",
    "pkg/__init__.py": "",
    "pkg/mod.py": "X = 1\n",
    "run.sh": "#!/bin/sh\n",
    "data/table.csv": "a,b\n1,2\n",
    "z/last.txt": "z" * 5000,
}


def make_tree(root: Path, order: list[str], umask: int, mtime: int) -> Path:
    old = os.umask(umask)
    try:
        for name in order:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(FILES[name])
            if name.endswith(".sh"):
                path.chmod(0o777 & ~umask)
            os.utime(path, (mtime, mtime))
    finally:
        os.umask(old)
    return root


def archive_of(root: Path, tmp: Path, name: str, level: int = 1) -> tuple[WrittenArchive, bytes]:
    destination = tmp / f"{name}.tar.gz"
    written = write_archive(all_files(root), destination, level)
    return written, destination.read_bytes()


def test_same_files_give_the_same_bytes_whatever_mtime_order_umask_and_owner(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a", sorted(FILES), umask=0o022, mtime=1_000_000)
    second = make_tree(tmp_path / "b", sorted(FILES, reverse=True), umask=0o077, mtime=1_700_000_000)
    if os.geteuid() == 0:
        for path in second.rglob("*"):
            os.chown(path, 4321, 8765)
    one, two = archive_of(first, tmp_path, "one"), archive_of(second, tmp_path, "two")
    assert one == two
    written, data = one
    assert written.archive_digest == hashlib.sha256(data).hexdigest() and written.size == len(data)
    assert written.digest == hashlib.sha256(gzip.decompress(data)).hexdigest() != written.archive_digest
    # a change of content is a change of both digests
    (second / "pkg" / "mod.py").write_text("X = 2\n")
    changed = archive_of(second, tmp_path, "three")[0]
    assert changed.digest != written.digest and changed.archive_digest != written.archive_digest


def test_the_content_digest_does_not_depend_on_the_compressor(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", sorted(FILES), umask=0o022, mtime=1_000_000)
    (root / "big.bin").write_bytes(os.urandom(3 << 20) + bytes(9 << 20))  # streamed in chunks, compressible
    fast, fast_data = archive_of(root, tmp_path, "fast", level=1)
    best, best_data = archive_of(root, tmp_path, "best", level=9)
    assert fast_data != best_data and fast.archive_digest != best.archive_digest and fast.size != best.size
    assert fast.digest == best.digest
    # the digest is that of the one tar stream both compress
    stream = gzip.decompress(fast_data)
    assert stream == gzip.decompress(best_data) and hashlib.sha256(stream).hexdigest() == fast.digest


def test_members_have_normalized_metadata_and_relative_names(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", sorted(FILES), umask=0o002, mtime=123456789)
    _, data = archive_of(root, tmp_path, "x")
    assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\0\0\0\0"  # gzip: no name, time 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(FILES)
        for m in members:
            assert m.isfile() and m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == ""
            assert not m.name.startswith("/") and ".." not in m.name.split("/")
            assert m.mode == (0o755 if m.name == "run.sh" else 0o644)
            assert tar.extractfile(m).read().decode() == FILES[m.name]


@pytest.mark.parametrize(
    "name,size,mode", [("a.py", 0, 0o644), ("pkg/mod.py", 511, 0o755), ("x" * 100, 8**11 - 1, 0o644)]
)
def test_fast_header_is_what_tarfile_writes(name: str, size: int, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    assert tar_header(name, size, mode) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def test_long_unicode_and_large_members_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "p"
    long_name = "/".join(["deeply_nested_directory"] * 6) + "/module_with_a_long_name.py"
    files = {long_name: b"L = 1\n", "données/café.txt": "crème\n".encode(), "big.bin": os.urandom(9 << 20)}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    destination = tmp_path / "b.tar.gz"
    write_archive(all_files(root), destination)
    names = extract_archive(destination, tmp_path / "out")
    assert sorted(names) == sorted(files)
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_extraction_unpacks_a_built_bundle(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", sorted(FILES), umask=0o022, mtime=0)
    destination = tmp_path / "b.tar.gz"
    write_archive(all_files(root), destination)
    out = tmp_path / "out"
    assert sorted(extract_archive(destination, out)) == sorted(FILES)
    assert (out / "pkg" / "mod.py").read_text() == "X = 1\n"
    assert os.access(out / "run.sh", os.X_OK)
    shutil.rmtree(out)


def test_a_file_vanishing_while_bundling_is_a_bundle_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", sorted(FILES), umask=0o022, mtime=0)
    files = all_files(root)
    (root / "pkg" / "mod.py").unlink()
    with pytest.raises(BundleError, match=r"pkg/mod\.py: cannot read it for the bundle: No such file"):
        write_archive(files, tmp_path / "b.tar.gz")
    with pytest.raises(BundleError, match="cannot write the bundle"):
        write_archive({"app.py": str(root / "app.py")}, tmp_path / "missing-dir" / "b.tar.gz")

"""Safe extraction against hostile archives built here: every escaping or special member is
refused with a line naming the archive, the member and why; nothing is written outside the
target, and a refused archive leaves nothing behind. The checks are flyte-deploy's own, so
they hold on a Python whose tarfile has no ``data`` filter (emulated by removing it)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from flyte_deploy.bundle.extract import extract_archive
from flyte_deploy.errors import BundleError, ExitCode


def member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"pwned\n", mode: int = 0o644
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def hostile(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    """A tar.gz holding exactly ``members``, in order (tarfile writes what it is given)."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


SYM, LNK = tarfile.SYMTYPE, tarfile.LNKTYPE
CASES = {
    "dotdot": ([member("../escape.py")], "'../escape.py' has '..' in its name"),
    "dotdot-inside": ([member("ok/../../escape.py")], "has '..' in its name"),
    "absolute": ([member("/tmp/escape.py")], "'/tmp/escape.py' has an absolute name"),
    "symlink-absolute": ([member("link", SYM, "/etc/passwd")], "'link' is a symlink to '/etc/passwd', an absolute"),
    "symlink-up": ([member("link", SYM, "../../outside")], "is a symlink to '../../outside', outside the target"),
    "symlink-up-through-dir": ([member("a/link", SYM, "b/../../..")], "outside the target directory"),
    # the chain that gets through name checks on a Python without the data filter
    "symlink-chain": (
        [member("a", SYM, "."), member("a/b", SYM, ".."), member("a/b/escape.py")],
        "'a/b' is a symlink to '..', which resolves outside the target directory",
    ),
    "symlink-chain-deeper": (
        [
            member("d", tarfile.DIRTYPE),
            member("d/x", SYM, "."),
            member("d/x/y", SYM, "../.."),
            member("d/x/y/escape.py"),
        ],
        "'d/x/y' is a symlink to '../..', which resolves outside",
    ),
    # a link whose target is made to leave only by a link unpacked after it
    "symlink-order-game": (
        [member("l", SYM, "s/.."), member("s", SYM, ".")],
        "'l' is a symlink to 's/..', which resolves outside the target directory through links",
    ),
    "symlink-order-game-write": (
        [member("l", SYM, "s/.."), member("s", SYM, "."), member("l/escape.py")],
        "'l/escape.py' lies under a symlink that leads outside",
    ),
    "write-through-link": (
        [member("sub", tarfile.DIRTYPE), member("f", SYM, "sub/g"), member("f")],
        "'f' appears twice",
    ),
    "file-under-file": ([member("f"), member("f/x.py")], "'f/x.py' lies under a member that is not a directory"),
    "hardlink-absolute": ([member("hard", LNK, "/etc/passwd")], "'hard' is a hard link to '/etc/passwd'"),
    "hardlink-up": ([member("hard", LNK, "../outside/secret.txt")], "is a hard link to '../outside/secret.txt'"),
    "hardlink-later": (
        [member("hard", LNK, "f"), member("f")],
        ("is a hard link to 'f', which is not a regular file unpacked before it"),
    ),
    "hardlink-to-symlink": ([member("s", SYM, "x"), member("hard", LNK, "s")], "is a hard link to 's'"),
    "char-device": ([member("dev", tarfile.CHRTYPE)], "'dev' is a character device"),
    "block-device": ([member("disk", tarfile.BLKTYPE)], "'disk' is a block device"),
    "fifo": ([member("data.csv", tarfile.FIFOTYPE)], "'data.csv' is a FIFO"),
    "duplicate": ([member("a.py"), member("a.py")], "'a.py' appears twice"),
    "duplicate-spelled-otherwise": ([member("pkg/a.py"), member("./pkg//a.py")], "'./pkg//a.py' appears twice"),
    "file-as-target-dir": ([member(".")], "'.' has an empty name"),
}


@pytest.fixture(params=["with data filter", "without data filter"])
def python_tarfile(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """This Python's tarfile, or one as on Python 3.11.0-3.11.3 (no extraction filters).
    Either way, extraction must never hand members to tarfile's own extract methods."""
    if request.param == "without data filter":
        for name in ("data_filter", "tar_filter", "fully_trusted_filter"):
            monkeypatch.delattr(tarfile, name, raising=False)
        monkeypatch.delattr(tarfile.TarFile, "extraction_filter", raising=False)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("tarfile's own extraction was used")

    monkeypatch.setattr(tarfile.TarFile, "extractall", forbidden)
    monkeypatch.setattr(tarfile.TarFile, "extract", forbidden)
    return request.param


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_escaping_or_special_member_is_refused(case: str, tmp_path: Path, python_tarfile: str) -> None:
    members, message = CASES[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep\n")
    archive = hostile(tmp_path / f"{case}.tar.gz", *members)
    target = tmp_path / "work" / "target"
    with pytest.raises(BundleError) as refused:
        extract_archive(archive, target)
    assert str(refused.value).startswith(f"{archive}: member ") and message in str(refused.value)
    assert refused.value.exit_code == ExitCode.BUNDLE_FAILED and "\n" not in str(refused.value)
    assert list(target.iterdir()) == []  # what was unpacked before the refusal is gone
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith("escape")) == []
    assert (outside / "secret.txt").read_text() == "keep\n" and sorted(os.listdir(outside)) == ["secret.txt"]


def test_a_link_already_in_the_target_is_never_written_through(tmp_path: Path, python_tarfile: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "pkg").symlink_to(outside, target_is_directory=True)
    archive = hostile(tmp_path / "b.tar.gz", member("pkg/mod.py"))
    with pytest.raises(BundleError, match="'pkg/mod.py' lies under a symlink that leads outside"):
        extract_archive(archive, target)
    assert list(outside.iterdir()) == []


def test_files_and_links_already_in_the_target_are_replaced_not_followed(tmp_path: Path, python_tarfile: str) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    target = tmp_path / "target"
    target.mkdir()
    (target / "flows.py").write_text("OLD = 1\n")  # e.g. code the image already holds
    (target / "conf.py").symlink_to(outside)
    archive = hostile(tmp_path / "b.tar.gz", member("flows.py", data=b"NEW = 1\n"), member("conf.py", data=b"C = 1\n"))
    extract_archive(archive, target)
    assert (target / "flows.py").read_text() == "NEW = 1\n" and (target / "conf.py").read_text() == "C = 1\n"
    assert not (target / "conf.py").is_symlink() and outside.read_text() == "keep\n"


def test_links_that_stay_inside_and_hard_links_to_earlier_files_are_unpacked(
    tmp_path: Path, python_tarfile: str
) -> None:
    archive = hostile(
        tmp_path / "ok.tar.gz",
        member("./", tarfile.DIRTYPE),
        member("./pkg/", tarfile.DIRTYPE),
        member("pkg/mod.py", data=b"X = 1\n"),
        member("alias", SYM, "pkg"),
        member("pkg/up", SYM, ".."),
        member("copy.py", LNK, "pkg/mod.py"),
        member("run.sh", data=b"#!/bin/sh\n", mode=0o6777),
        member("c:/notes.txt"),
    )
    target = tmp_path / "target"
    names = extract_archive(archive, target)
    assert names == ["pkg", "pkg/mod.py", "alias", "pkg/up", "copy.py", "run.sh", "c:/notes.txt"]
    assert (target / "alias" / "mod.py").read_text() == "X = 1\n" and (target / "copy.py").read_text() == "X = 1\n"
    assert os.path.realpath(target / "pkg" / "up") == os.path.realpath(target)
    assert not (target / "copy.py").samefile(target / "pkg" / "mod.py")  # a copy, never a link
    # no set-uid, set-gid or world-writable bits survive
    assert stat.S_IMODE((target / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "pkg" / "mod.py").stat().st_mode) == 0o644


@pytest.mark.parametrize("damage", ["truncated", "not gzip", "empty"])
def test_a_damaged_archive_is_one_error_line(damage: str, tmp_path: Path) -> None:
    good = hostile(tmp_path / "good.tar.gz", member("a.py", data=os.urandom(200_000)))
    data = good.read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes({"truncated": data[: len(data) // 2], "not gzip": b"<html>Not Found</html>", "empty": b""}[damage])
    with pytest.raises(BundleError, match=r"bad\.tar\.gz: cannot unpack the bundle: ") as refused:
        extract_archive(bad, tmp_path / "target")
    assert "\n" not in str(refused.value)
    assert list((tmp_path / "target").iterdir()) == []

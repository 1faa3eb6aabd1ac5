"""Safe extraction of a bundle, the same on every Python: members are checked and written
here, one by one, never by ``tarfile.extractall`` (whose ``data`` filter Python 3.11.0-3.11.3
and 3.10 before 3.10.12 lack).

Refused, with a ``BundleError`` naming the archive, the member and why, before anything is
written: absolute names, names with ``..`` or NUL, two members of one name, symlinks with
an absolute target or one that leaves the target directory, hard links to anything but an
earlier regular file member (a hard link is unpacked as a copy), devices, FIFOs and every
other special member. While writing, a member whose directory resolves (through links
unpacked before it, or already in the target) outside the target is refused too; once
done, every unpacked link is resolved again, so no order of links (``a -> .``,
``a/b -> ..``, then ``a/b/x``; or ``l -> s/..`` before ``s -> .``) gets out. On refusal,
what was unpacked is removed. A file or link the target already held at a member's path
is replaced (unlinked first, never written through). Files are written ``0o755`` when the
owner may execute them and ``0o644`` otherwise; no owner, time or special bit is restored.
A ``./`` member (the target itself, as ``tar -C dir .`` writes) is skipped.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from pathlib import Path

from ..errors import BundleError
from .files import inside

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_KINDS = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO"}


class _Refused(Exception):
    """One member cannot be unpacked safely (the message says why)."""

    def __init__(self, member: tarfile.TarInfo, why: str) -> None:
        super().__init__(f"member {member.name!r} {why}")


def _normalized(member: tarfile.TarInfo) -> str:
    """The member's name, relative and without ``.`` parts (``""`` for the target directory
    itself); refused when it cannot be one."""
    name = member.name
    if "\0" in name:
        raise _Refused(member, "has a NUL byte in its name")
    if name.startswith("/"):
        raise _Refused(member, "has an absolute name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Refused(member, "has '..' in its name, which would escape the target directory")
    if not parts and not member.isdir():
        raise _Refused(member, "has an empty name")
    return "/".join(parts)


def _check_members(members: list[tarfile.TarInfo]) -> tuple[list[str], dict[str, tarfile.TarInfo]]:
    """Member checks that need no disk (module docstring): the normalized name of each
    member, and the regular file member each hard link copies (by link name)."""
    kinds: dict[str, bool] = {}  # name -> is a directory
    regular: dict[str, tarfile.TarInfo] = {}
    linked: dict[str, tarfile.TarInfo] = {}
    names: list[str] = []
    for member in members:
        name = _normalized(member)
        if not name:
            names.append(name)
            continue
        if name in kinds and not (member.isdir() and kinds[name]):
            raise _Refused(member, "appears twice in the archive")
        link = member.linkname
        if member.issym():
            if not link or link.startswith("/") or "\0" in link:
                raise _Refused(member, f"is a symlink to {link!r}, an absolute or empty target")
            if posixpath.normpath(posixpath.join("top", posixpath.dirname(name), link)).split("/")[0] != "top":
                raise _Refused(member, f"is a symlink to {link!r}, outside the target directory")
        elif member.islnk():
            source = regular.get(posixpath.normpath(link)) if link and not link.startswith("/") else None
            if source is None:
                raise _Refused(
                    member,
                    f"is a hard link to {link!r}, which is not a regular file unpacked before it"
                    " inside the target directory",
                )
            linked[link] = source
        elif not (member.isreg() or member.isdir()):
            raise _Refused(member, f"is {_KINDS.get(member.type, f'a special member (type {member.type!r})')}")
        if member.isreg():
            regular[name] = member
        kinds[name] = member.isdir()
        names.append(name)
    return names, linked


def _unpack(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    name: str,
    root: str,
    linked: dict[str, tarfile.TarInfo],
    created: list[str],
    links: list[tuple[tarfile.TarInfo, str]],
) -> None:
    """Write one checked member under ``root`` (a resolved directory)."""
    if not name:
        return  # the target directory itself
    parent = os.path.realpath(os.path.join(root, os.path.dirname(name)))
    if not inside(parent, root):
        raise _Refused(member, "lies under a symlink that leads outside the target directory")
    if not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise _Refused(member, "lies under a member that is not a directory")
        _makedirs(parent, root, created)
    path = os.path.join(parent, os.path.basename(name))
    if member.isdir():
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise _Refused(member, "is a directory where the target already has a file or link")
        if not os.path.isdir(path):
            os.mkdir(path, 0o755)
            created.append(path)
        return
    if os.path.isdir(path) and not os.path.islink(path):
        raise _Refused(member, "is a file where the target already has a directory")
    if os.path.lexists(path):
        os.unlink(path)  # a file or link the target held before: replaced, never written through
    if member.issym():
        target = os.path.realpath(os.path.join(parent, member.linkname))
        if not inside(target, root):
            raise _Refused(member, f"is a symlink to {member.linkname!r}, which resolves outside the target directory")
        os.symlink(member.linkname, path)
        created.append(path)
        links.append((member, path))
        return
    source = linked[member.linkname] if member.islnk() else member  # a hard link is unpacked as a copy
    data = tar.extractfile(source)
    assert data is not None
    mode = source.mode
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o755 if mode & 0o100 else 0o644
    )
    created.append(path)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(data, out, 1 << 20)


def _makedirs(directory: str, root: str, created: list[str]) -> None:
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        os.mkdir(path, 0o755)
        created.append(path)


def _remove(created: list[str]) -> None:
    for path in reversed(created):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def extract_archive(archive: Path, destination: Path) -> list[str]:
    """Unpack the bundle ``archive`` into ``destination`` (created if missing) as the
    module docstring says; return the member names."""
    destination.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(destination)
    created: list[str] = []
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            names, linked = _check_members(members)
            links: list[tuple[tarfile.TarInfo, str]] = []
            for member, name in zip(members, names, strict=True):
                _unpack(tar, member, name, root, linked, created, links)
            for member, path in links:
                if not inside(os.path.realpath(path), root):
                    raise _Refused(
                        member,
                        f"is a symlink to {member.linkname!r}, which resolves outside the target"
                        " directory through links unpacked after it",
                    )
    except _Refused as exc:
        _remove(created)
        raise BundleError(f"{archive}: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        _remove(created)
        raise BundleError(f"{archive}: cannot unpack the bundle: {type(exc).__name__}: {exc}") from None
    return [name for name in names if name]

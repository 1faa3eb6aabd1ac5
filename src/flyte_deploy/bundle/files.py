"""Path helpers of the bundle library: containment of resolved paths, and reading files of
the project tree without ever blocking (a FIFO, socket or device named like a file,
``CACHEDIR.TAG``, ``.gitignore``, ``data.csv``, is never opened for a blocking read)."""

from __future__ import annotations

import os
import stat

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def inside(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is the resolved ``root`` or lies under it."""
    return path == root or path.startswith(root + os.sep)


class NotRegularFile(OSError):
    """The path is not (or is no longer) a regular file."""


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """An open read-only descriptor of ``path`` and its ``fstat``, following symlinks.
    Opening never blocks (``O_NONBLOCK``: a FIFO without a writer opens at once) and
    anything but a regular file is ``NotRegularFile``; the descriptor is back in blocking
    mode, which regular files ignore anyway."""
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"{os.fspath(path)}: not a regular file")
        return fd, info
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int = -1) -> bytes | None:
    """The bytes of the regular file ``path`` (at most ``limit``, all when negative), or
    None when it is missing or not a regular file. Other ``OSError`` propagate."""
    try:
        fd, info = open_regular(path)
    except (FileNotFoundError, NotADirectoryError, NotRegularFile):
        return None
    try:
        size = info.st_size if limit < 0 else min(limit, info.st_size)
        chunks, remaining = [], size
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)

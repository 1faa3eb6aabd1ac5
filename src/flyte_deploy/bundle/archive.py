"""The deterministic archive: a tar stream of regular files with normalized metadata,
gzip-compressed, written in one pass.

Members sorted by name; mtime 0, uid/gid 0, no user or group names; mode 0o755 when the
owner may execute the file and 0o644 otherwise (umask and ownership play no part). The
same files give the same tar stream whatever their mtimes, order on disk or owners, and
its sha256 (``WrittenArchive.digest``, the content digest) names the bundle. The gzip
layer (no file name or time, fixed level) is deterministic only for one zlib build, so the
sha256 of the compressed bytes (``archive_digest``) serves integrity checks only.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import NamedTuple

from ..errors import BundleError
from ..hashing import HashingWriter
from .cache import FileDigest, signature, tar_mode
from .files import NotRegularFile, open_regular

ARCHIVE_NAME = "bundle.tar.gz"
#: the level written; the bundle's identity (content digest) does not depend on it
COMPRESS_LEVEL = 1
_FLUSH_AT = 1 << 20
_PENDING_CHUNKS = 4
_STREAM_ABOVE = 8 << 20
_BLOCK = 512
_RECORD = 20 * _BLOCK
_SHORT_ASCII_NAME = re.compile(rb"[\x20-\x7e]{1,100}")
# the constant part of a ustar header after the checksum: type "0", empty link name,
# POSIX magic, empty user/group names, device numbers and prefix
_HEADER_TAIL = b"0" + b"\0" * 100 + b"ustar\x0000" + b"\0" * (32 + 32 + 8 + 8 + 155 + 12)
_HEADER_TAIL_SUM = sum(_HEADER_TAIL) + 8 * ord(" ")


def tar_header(name: str, size: int, mode: int) -> bytes:
    """The tar header of a regular file with the normalized metadata. Short ASCII names
    get a plain ustar block built here (fast, and identical to what ``tarfile`` writes);
    others go through ``tarfile``'s PAX headers."""
    encoded = name.encode("utf-8", "surrogateescape")
    if size < 8**11 and _SHORT_ASCII_NAME.fullmatch(encoded):
        head = b"%s%07o\x000000000\x000000000\x00%011o\x0000000000000\x00" % (encoded.ljust(100, b"\0"), mode, size)
        return b"%s%06o\x00 %s" % (head, sum(head) + _HEADER_TAIL_SUM, _HEADER_TAIL)
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class WrittenArchive(NamedTuple):
    """What ``write_archive`` wrote: ``digest``, the sha256 of the uncompressed tar stream
    (the content digest, independent of the compressor); ``archive_digest`` and ``size``,
    the sha256 and byte count of the compressed file."""

    digest: str
    archive_digest: str
    size: int


def write_archive(
    files: Mapping[str, str],
    destination: Path,
    compresslevel: int | None = None,
    members: dict[str, FileDigest] | None = None,
) -> WrittenArchive:
    """Write the deterministic tar.gz of ``files`` (archive name -> path to read) to
    ``destination``, reading each file once, at zlib level ``compresslevel`` (default
    ``COMPRESS_LEVEL``). Anything but a regular file is a ``BundleError``. ``members``,
    when given, receives each file's signature and content sha256 (``cache.FileDigest``).

    The tar stream is cut into 1 MiB chunks that a second thread hashes, compresses and
    hashes again (zlib and hashlib release the GIL) while this one reads the next files."""
    content = hashlib.sha256()
    level = COMPRESS_LEVEL if compresslevel is None else compresslevel
    try:
        with open(destination, "wb") as out, ThreadPoolExecutor(max_workers=1) as compressor:
            sink = HashingWriter(out)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=level)
            pending: deque[Future[int]] = deque()

            def compress(chunk: bytes) -> int:
                content.update(chunk)
                return gz.write(chunk)

            def emit(chunk: bytes) -> None:
                pending.append(compressor.submit(compress, chunk))
                while len(pending) > _PENDING_CHUNKS:
                    pending.popleft().result()

            try:
                buffer = bytearray()
                written = 0
                for name in sorted(files):
                    written += _add_file(buffer, emit, name, files[name], members)
                    if len(buffer) >= _FLUSH_AT:
                        emit(bytes(buffer))
                        buffer.clear()
                end = 2 * _BLOCK
                end += -(written + end) % _RECORD
                buffer += bytes(end)
                emit(bytes(buffer))
            finally:
                wait(pending)  # never close the stream under the compressing thread
            while pending:
                pending.popleft().result()
            gz.close()
    except OSError as exc:
        raise BundleError(f"{destination}: cannot write the bundle: {exc.strerror or exc}") from None
    return WrittenArchive(content.hexdigest(), sink.sha256.hexdigest(), sink.size)


def _add_file(
    buffer: bytearray, emit: Callable[[bytes], None], name: str, path: str, members: dict[str, FileDigest] | None
) -> int:
    """Append one member to ``buffer`` (a large file goes to ``emit`` in chunks); return
    the number of tar bytes it took. With ``members``, record its signature and sha256."""
    try:
        fd, info = open_regular(path)
    except NotRegularFile:
        raise BundleError(f"{path}: not a regular file (it was replaced while bundling?)") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read it for the bundle: {exc.strerror}") from None
    try:
        mode = tar_mode(info.st_mode)
        size = info.st_size
        sha = hashlib.sha256() if members is not None else None
        if size <= _STREAM_ABOVE:
            # a regular file reads short only at its end, so one read gets it all
            data = os.read(fd, size + 1)
            if len(data) > size:
                raise BundleError(f"{path}: the file grew while it was being bundled")
            size = len(data)
            if sha is not None:
                sha.update(data)
            header = tar_header(name, size, mode)
            buffer += header
            buffer += data
        else:
            header = tar_header(name, size, mode)
            buffer += header
            emit(bytes(buffer))
            buffer.clear()
            remaining = size
            while remaining:
                chunk = os.read(fd, min(remaining, _FLUSH_AT))
                if not chunk:
                    raise BundleError(f"{path}: the file shrank while it was being bundled")
                if sha is not None:
                    sha.update(chunk)
                emit(chunk)
                remaining -= len(chunk)
        padding = -size % _BLOCK
        buffer += bytes(padding)
        if members is not None and sha is not None and size == info.st_size:  # else it changed meanwhile
            members[name] = FileDigest(signature(info), sha.digest())
        return len(header) + size + padding
    except OSError as exc:
        raise BundleError(f"{path}: cannot read it for the bundle: {exc.strerror}") from None
    finally:
        os.close(fd)

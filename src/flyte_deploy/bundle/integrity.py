"""Integrity of stored bundles: a bundle is named by its content digest (the sha256 of its
uncompressed tar stream, ``<digest>.tar.gz``), so whoever holds the name can check the
bytes. ``verify_bundle`` is the one check, used before a stored bundle is reused by an
upload and before the runtime (or ``flyte-deploy run``, or the Flyte adapter) unpacks a
downloaded one. A bundle that does not decompress (truncated, not gzip) fails it too."""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import Iterable
from typing import IO

from ..errors import BundleIntegrityError
from ..storage import redact_url

_CHUNK = 1 << 20
_NAME = re.compile(r"([0-9a-f]{64})\.tar\.gz")


def digest_in_name(uri: str) -> str | None:
    """The content digest a bundle's URI or path names (``.../<sha256>.tar.gz``), or None."""
    match = _NAME.fullmatch(uri.rstrip("/").rsplit("/", 1)[-1])
    return match.group(1) if match else None


def _chunks(stream: IO[bytes]) -> Iterable[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def content_digest(chunks: Iterable[bytes | memoryview]) -> str:
    """The sha256 of the tar stream inside the gzip data ``chunks``; ``ValueError`` when
    the data is not one complete gzip stream."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer, checked
    sha = hashlib.sha256()
    try:
        for chunk in chunks:
            sha.update(inflate.decompress(chunk))
            if inflate.eof and inflate.unused_data.strip(b"\0"):
                raise ValueError("data after the end of the gzip stream")
        sha.update(inflate.flush())
    except zlib.error as exc:
        raise ValueError(f"not a valid gzip stream ({exc})") from None
    if not inflate.eof:
        raise ValueError("truncated: the gzip stream ends early")
    return sha.hexdigest()


def file_sha256(stream: IO[bytes]) -> str:
    """The sha256 of the (compressed) bytes of ``stream``."""
    sha = hashlib.sha256()
    for chunk in _chunks(stream):
        sha.update(chunk)
    return sha.hexdigest()


def verify_bundle(
    path_or_bytes: str | os.PathLike[str] | bytes | IO[bytes], expected_digest: str, *, source: str | None = None
) -> str:
    """Check that the bundle ``path_or_bytes`` (a local path, its bytes, or a binary
    stream) holds the tar stream whose sha256 is ``expected_digest``; return the digest.

    A mismatch, or data that is not one complete gzip stream, is a
    ``BundleIntegrityError`` naming ``source`` (default: the path; credentials stripped)
    and both digests."""
    shown = redact_url(
        source or (os.fspath(path_or_bytes) if isinstance(path_or_bytes, (str, os.PathLike)) else "(in memory)")
    )
    try:
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = memoryview(path_or_bytes)
            actual = content_digest(data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK))
        elif isinstance(path_or_bytes, (str, os.PathLike)):
            with open(path_or_bytes, "rb") as stream:
                actual = content_digest(_chunks(stream))
        else:
            actual = content_digest(_chunks(path_or_bytes))
    except ValueError as exc:
        raise BundleIntegrityError(f"bundle {shown} is damaged: {exc}; expected sha256 {expected_digest}") from None
    except OSError as exc:
        raise BundleIntegrityError(f"bundle {shown} cannot be read: {exc.strerror or exc}") from None
    if actual != expected_digest:
        raise BundleIntegrityError(
            f"bundle {shown} does not match its digest: its tar stream has sha256 {actual}, expected {expected_digest}"
        )
    return actual

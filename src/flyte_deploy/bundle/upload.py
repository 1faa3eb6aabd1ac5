"""Uploading a bundle to its content-addressed fsspec URL (``<storage>/<content
digest>.tar.gz``; file://, memory://, s3:// via s3fs, gs:// via gcsfs, ...).

* Reuse, verified: the name is the sha256 of the uncompressed tar stream, so an object
  already at the URL is reused when its bytes prove it: the same bytes as the local
  archive (size and ``Bundle.archive_digest``, one read without decompressing), or else,
  when another zlib compressed the same files (another size, another archive sha256), a
  tar stream whose sha256 is the digest in the name (``integrity.verify_bundle``). A
  damaged, truncated or swapped object is replaced by uploading again. Reading the
  object costs a download on an object store. A bundle whose ``path`` is the local object
  itself (``build`` verified it and wrote no archive: a no-change redeploy) is left there.
* Atomic: on a local filesystem the archive is copied under a temporary name, checked (size
  and ``Bundle.archive_digest``) and only then renamed into place; object stores publish an
  object only once its upload (a PUT, or a completed multipart or resumable upload) is
  complete. A crashed upload therefore leaves no object, never a truncated one.
* Checked: after an upload to an object store the stored size must be the bundle's (reading
  the object back to hash it would cost a download). A mismatch is retried, and the retry
  uploads again rather than trusting the object it found wrong.
* Retries: failures other than permanent ones (permission denied, missing bucket, bad
  options, HTTP 4xx) are retried ``upload.retries`` times (default 3) with exponential
  backoff starting at ``upload.backoff`` seconds (default 0.5, capped at 8).
* Otherwise an ``UploadError`` names the URL, without credentials; the lifecycle stops
  before registering anything.

Filesystem options (endpoint, credentials) come from ``flyte_deploy.storage.storage_options``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BundleIntegrityError, DiskFull, UploadError, environment_error
from ..storage import filesystem, redact_url, scrub
from ..types import Bundle
from .integrity import file_sha256, verify_bundle

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_DELAY = 8.0
PERMANENT_ERRORS = (
    PermissionError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    ImportError,
    ValueError,
    TypeError,
)


class _BadCopy(Exception):
    """What an upload stored differs from the bundle's archive (retried)."""


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: access denied, no such bucket, bad options, or an
    HTTP client error other than timeout (408) and throttling (429)."""
    if isinstance(exc, PERMANENT_ERRORS) or environment_error(exc) is not None:  # e.g. a full disk
        return True
    code = getattr(exc, "code", None)
    return isinstance(code, int) and 400 <= code < 500 and code not in (408, 429)


def _is_local(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def _object_size(fs: Any, path: str) -> int | None:
    """The size of the object at ``path``, None when there is none (other errors propagate,
    so that a transient failure is retried rather than taken for absence)."""
    fs.invalidate_cache(path)
    try:
        return int(fs.size(path))
    except FileNotFoundError:
        return None


def _check_local_copy(copy: str, bundle: Bundle) -> None:
    size = os.path.getsize(copy)
    if size != bundle.size:
        raise _BadCopy(f"the copy has {size} bytes, the bundle {bundle.size}")
    if bundle.archive_digest:
        with open(copy, "rb") as handle:
            digest = file_sha256(handle)
        if digest != bundle.archive_digest:
            raise _BadCopy(f"the copy's sha256 is {digest}, the bundle's {bundle.archive_digest}")


def _verified_present(fs: Any, path: str, bundle: Bundle) -> bool:
    """Whether an object at ``path`` holds ``bundle`` (module docstring); False when
    there is none or it is damaged. Errors reading it propagate (and are retried)."""
    if _is_local(fs) and bundle.path is not None and os.path.realpath(path) == os.path.realpath(bundle.path):
        return True  # the builder verified and chose the stored object itself
    try:
        size = _object_size(fs, path)
        if size is None:
            return False
        if size == bundle.size and bundle.archive_digest:
            with fs.open(path, "rb") as stream:
                if file_sha256(stream) == bundle.archive_digest:
                    return True
        with fs.open(path, "rb") as stream:
            verify_bundle(stream, str(bundle.digest))
    except (BundleIntegrityError, FileNotFoundError):  # damaged, or removed meanwhile
        return False
    return True


def _put(fs: Any, bundle: Bundle, path: str) -> None:
    """Upload the archive to ``path``, checked as the module docstring says."""
    source = str(bundle.path)
    if not _is_local(fs):
        fs.put_file(source, path)
        size = _object_size(fs, path)
        if size != bundle.size:
            raise _BadCopy(f"the stored object has {size} bytes, the bundle {bundle.size}")
        return
    partial = f"{path}.partial-{uuid.uuid4().hex}"
    try:
        fs.put_file(source, partial)
        _check_local_copy(partial, bundle)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def upload(
    bundle: Bundle,
    uri: str,
    options: Mapping[str, Any] | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Put ``bundle`` at ``uri`` unless an object holding it is already there; return ``uri``."""
    if bundle.path is None:
        raise UploadError(f"bundle {bundle.digest} has no local archive to upload to {redact_url(uri)}")
    shown = redact_url(uri)
    try:
        fs, path = filesystem(uri, options)
    except Exception as exc:  # noqa: BLE001 - any failure to open the storage is the user's to see
        raise UploadError(
            f"cannot open the storage for {shown}: {scrub(f'{type(exc).__name__}: {exc}', options)}"
        ) from None
    attempts = max(1, retries + 1)
    check_present = True
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            if not (check_present and _verified_present(fs, path, bundle)):
                check_present = False  # absent or damaged: this deploy's upload replaces it
                _put(fs, bundle, path)
            return uri
        except Exception as exc:  # noqa: BLE001 - classified below: permanent or retried
            last = exc
            if is_permanent(exc):
                break
            if attempt + 1 < attempts:
                sleep(min(MAX_DELAY, backoff * 2**attempt))
    assert last is not None
    if isinstance(environment_error(last), DiskFull):  # not the storage's fault: its own exit code
        raise DiskFull(f"uploading the bundle to {shown}: {scrub(str(environment_error(last)), options)}") from None
    tried = "" if is_permanent(last) else f" after {attempts} attempt(s)"
    raise UploadError(
        f"uploading the bundle to {shown} failed{tried}: {scrub(f'{type(last).__name__}: {last}', options)}"
    ) from None

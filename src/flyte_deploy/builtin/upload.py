"""Built-in ``upload_bundle``: put the bundle at its content-addressed fsspec URL
(``<storage>/<content digest>.tar.gz``; file://, memory://, s3:// via s3fs, gs:// via gcsfs, ...).

* Skip: the name is the sha256 of the uncompressed tar stream, so any object already at the
  URL holds the same files, possibly compressed by another zlib (another size, another
  archive sha256): its presence alone means nothing is uploaded again. This is sound because
  nothing publishes a partial object at the URL (next point).
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

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DiskFull, UploadError, UsageError, environment_error
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..storage import filesystem, redact_url, scrub, storage_options
from ..types import Bundle

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_DELAY = 8.0
PERMANENT_ERRORS = (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError, ImportError,
                    ValueError, TypeError)


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
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != bundle.archive_digest:
            raise _BadCopy(f"the copy's sha256 is {digest}, the bundle's {bundle.archive_digest}")


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


def upload(bundle: Bundle, uri: str, options: Mapping[str, Any] | None = None, *, retries: int = DEFAULT_RETRIES,
           backoff: float = DEFAULT_BACKOFF, sleep: Callable[[float], None] = time.sleep) -> str:
    """Put ``bundle`` at ``uri`` unless an object is already there; return ``uri``."""
    if bundle.path is None:
        raise UploadError(f"bundle {bundle.digest} has no local archive to upload to {redact_url(uri)}")
    shown = redact_url(uri)
    try:
        fs, path = filesystem(uri, options)
    except Exception as exc:  # noqa: BLE001 - any failure to open the storage is the user's to see
        raise UploadError(f"cannot open the storage for {shown}: {scrub(f'{type(exc).__name__}: {exc}', options)}"
                          ) from None
    attempts = max(1, retries + 1)
    trust_present = True
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            if not (trust_present and _object_size(fs, path) is not None):
                _put(fs, bundle, path)
            return uri
        except Exception as exc:  # noqa: BLE001 - classified below: permanent or retried
            last = exc
            if isinstance(exc, _BadCopy):
                trust_present = False  # what is at the URL may be what this upload got wrong
            if is_permanent(exc):
                break
            if attempt + 1 < attempts:
                sleep(min(MAX_DELAY, backoff * 2 ** attempt))
    assert last is not None
    if isinstance(environment_error(last), DiskFull):  # not the storage's fault: its own exit code
        raise DiskFull(f"uploading the bundle to {shown}: {scrub(str(environment_error(last)), options)}") from None
    tried = "" if is_permanent(last) else f" after {attempts} attempt(s)"
    raise UploadError(f"uploading the bundle to {shown} failed{tried}:"
                      f" {scrub(f'{type(last).__name__}: {last}', options)}") from None


def _number(session: DeploySession, key: str, default: float) -> float:
    value = session.config.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a number, got {value!r}") from None
    if number < 0:
        raise UsageError(f"{key} must not be negative, got {value!r}")
    return number


@hookimpl(trylast=True)
def upload_bundle(session: DeploySession, bundle: Bundle, uri: str) -> str:
    return upload(bundle, uri, storage_options(session.config), retries=int(_number(session, "upload.retries",
                                                                                     DEFAULT_RETRIES)),
                  backoff=_number(session, "upload.backoff", DEFAULT_BACKOFF))

"""Built-in ``upload_bundle``: put the bundle at its content-addressed fsspec URL
(``<storage>/<sha256>.tar.gz``; file://, memory://, s3:// via s3fs, gs:// via gcsfs, ...).

* Skip: an object already at the URL with the bundle's size is the same bundle (its name
  is the sha256 of its bytes), so nothing is uploaded again.
* Atomic: on a local filesystem the archive is written under a temporary name and renamed;
  object stores publish an object only once its upload completes. After the upload the
  object's size is checked.
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

from ..errors import UploadError, UsageError
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..storage import filesystem, redact_url, scrub, storage_options
from ..types import Bundle

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_DELAY = 8.0
PERMANENT_ERRORS = (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError, ImportError,
                    ValueError, TypeError)


class _IncompleteUpload(Exception):
    """The object's size after an upload differs from the bundle's (retried)."""


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: access denied, no such bucket, bad options, or an
    HTTP client error other than timeout (408) and throttling (429)."""
    if isinstance(exc, PERMANENT_ERRORS):
        return True
    code = getattr(exc, "code", None)
    return isinstance(code, int) and 400 <= code < 500 and code not in (408, 429)


def _is_local(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def _object_size(fs: Any, path: str) -> int | None:
    fs.invalidate_cache(path)
    try:
        return int(fs.size(path))
    except FileNotFoundError:
        return None


def _put(fs: Any, source: str, path: str) -> None:
    if not _is_local(fs):
        fs.put_file(source, path)
        return
    partial = f"{path}.partial-{uuid.uuid4().hex}"
    try:
        fs.put_file(source, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def upload(bundle: Bundle, uri: str, options: Mapping[str, Any] | None = None, *, retries: int = DEFAULT_RETRIES,
           backoff: float = DEFAULT_BACKOFF, sleep: Callable[[float], None] = time.sleep) -> str:
    """Put ``bundle`` at ``uri`` unless an object of its size is already there; return ``uri``."""
    if bundle.path is None:
        raise UploadError(f"bundle {bundle.digest} has no local archive to upload to {redact_url(uri)}")
    shown = redact_url(uri)
    try:
        fs, path = filesystem(uri, options)
    except Exception as exc:  # noqa: BLE001 - any failure to open the storage is the user's to see
        raise UploadError(f"cannot open the storage for {shown}: {scrub(f'{type(exc).__name__}: {exc}', options)}"
                          ) from None
    attempts = max(1, retries + 1)
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            if _object_size(fs, path) == bundle.size:
                return uri
            _put(fs, str(bundle.path), path)
            size = _object_size(fs, path)
            if size != bundle.size:
                raise _IncompleteUpload(f"the stored object has {size} bytes, the bundle {bundle.size}")
            return uri
        except Exception as exc:  # noqa: BLE001 - classified below: permanent or retried
            last = exc
            if is_permanent(exc):
                break
            if attempt + 1 < attempts:
                sleep(min(MAX_DELAY, backoff * 2 ** attempt))
    assert last is not None
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

"""Built-in ``upload_bundle``: put the bundle at its content-addressed URL, reusing an
object already there only once verified (``flyte_deploy.bundle.upload``; docs/bundles.md).
``[tool.flyte-deploy.upload]`` sets ``retries`` and ``backoff``."""

from __future__ import annotations

from ..bundle.upload import DEFAULT_BACKOFF, DEFAULT_RETRIES, upload
from ..errors import UsageError
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..storage import storage_options
from ..types import Bundle


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
    return upload(
        bundle,
        uri,
        storage_options(session.config),
        retries=int(_number(session, "upload.retries", DEFAULT_RETRIES)),
        backoff=_number(session, "upload.backoff", DEFAULT_BACKOFF),
    )

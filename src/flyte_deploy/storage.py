"""fsspec helpers shared by the upload phase, the local backend and ``run``.

Options for the bundle storage's filesystem (``storage`` URL) come from, later winning:

* fsspec's own environment variables, ``FSSPEC_<PROTOCOL>_<OPTION>`` (e.g.
  ``FSSPEC_S3_ENDPOINT_URL``), and each library's usual ones (``AWS_ACCESS_KEY_ID``,
  ``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``, ...);
* ``[tool.flyte-deploy.storage_options]`` in pyproject.toml, e.g. ``endpoint_url`` and
  ``client_kwargs`` for s3fs, ``project``/``token``/``endpoint_url`` for gcsfs;
* ``FLYTE_DEPLOY_STORAGE_OPTIONS``: a JSON object, merged over the pyproject table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import UsageError, register_secret
from .errors import scrub as scrub_text
from .errors import secret_values as _secret_values

if TYPE_CHECKING:
    from .config import Config

OPTIONS_TABLE = "storage_options"
OPTIONS_ENV = "FLYTE_DEPLOY_STORAGE_OPTIONS"


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str | None:
    """The filesystem path of a ``file://`` URL or a plain path; None for other URLs."""
    if not is_local(url):
        return None
    return unquote(urlsplit(url).path) if url.startswith("file://") else url


def filesystem(url: str, options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path of ``url``; local paths create parent dirs on write.
    ``options`` are passed to the filesystem (ignored for local paths)."""
    import fsspec  # and its backends: only when storage is opened

    if is_local(url):
        return fsspec.core.url_to_fs(url, auto_mkdir=True)
    return fsspec.core.url_to_fs(url, **dict(options or {}))


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def storage_options(config: Config) -> dict[str, Any]:
    """The filesystem options for the bundle storage (module docstring)."""
    table = config.pyproject.get(OPTIONS_TABLE, config.pyproject.get("storage-options", {}))
    if not isinstance(table, dict):
        raise UsageError(f"{config.pyproject_path}: [tool.flyte-deploy.{OPTIONS_TABLE}] must be a table")
    options = dict(table)
    raw = config.environ.get(OPTIONS_ENV)
    if raw:
        try:
            from_env = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{OPTIONS_ENV} is not valid JSON: {exc.msg} at character {exc.pos}") from None
        if not isinstance(from_env, dict):
            raise UsageError(f"{OPTIONS_ENV} must be a JSON object, got {type(from_env).__name__}")
        options.update(from_env)
    register_secret(*secret_values(options))
    return options


def redact_url(url: str) -> str:
    """``url`` without a user name or password (``s3://key:secret@bucket`` -> ``s3://bucket``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def secret_values(options: Mapping[str, Any]) -> list[str]:
    """The secret values of filesystem ``options`` (``errors.secret_values``)."""
    return _secret_values(options)


def scrub(text: str, options: Mapping[str, Any] | None = None) -> str:
    """``text`` without credentials (``errors.scrub``), the secret ``options`` included."""
    return scrub_text(text, secret_values(options or {}))

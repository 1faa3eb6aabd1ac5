"""fsspec helpers shared by the upload phase, the local backend and ``run``.

Options for the bundle storage's filesystem (``storage`` URL) come from, later winning:

* fsspec's own environment variables, ``FSSPEC_<PROTOCOL>_<OPTION>`` (e.g.
  ``FSSPEC_S3_ENDPOINT_URL``), and each library's usual ones (``AWS_ACCESS_KEY_ID``,
  ``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``, ...);
* ``[tool.flyte-deploy.storage_options]`` in pyproject.toml, e.g. ``endpoint_url`` and
  ``client_kwargs`` for s3fs, ``project``/``token``/``endpoint_url`` for gcsfs;
* ``FLYTE_DEPLOY_STORAGE_OPTIONS``: a JSON object, merged over the pyproject table.

The options are those of fsspec's own implementation of the protocol (s3fs, gcsfs), even when
a library imported in this process replaced it in fsspec's registry (the Flyte SDK registers
obstore for ``s3`` and ``gs``). A child process that fetches a bundle (``run``, ``serve``)
gets them through ``storage_environment``: as ``FLYTE_DEPLOY_STORAGE_OPTIONS`` for
flyte-deploy's runtime and, for S3, translated into the variables the Flyte SDK's storage
layer reads (its ``FLYTE_AWS_*``, obstore's ``AWS_*``) for the SDK's ``a0`` and ``fserve``.
Other stores reach the SDK through the environment ``run`` and ``serve`` inherit
(``GOOGLE_APPLICATION_CREDENTIALS``, ...).
"""

from __future__ import annotations

import importlib
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
    cls = _fsspec_class(fsspec.utils.get_protocol(url))
    return cls(**{**cls._get_kwargs_from_urls(url), **dict(options or {})}), cls._strip_protocol(url)


def _fsspec_class(protocol: str) -> Any:
    """fsspec's own filesystem class for ``protocol`` (module docstring), else the registered one."""
    from fsspec.registry import get_filesystem_class, known_implementations

    known = known_implementations.get(protocol)
    if known is None:
        return get_filesystem_class(protocol)
    module, _, name = known["class"].rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:  # as fsspec says it: which package to install
        raise ImportError(known.get("err") or str(exc)) from exc


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


#: s3fs options (top level, else in ``client_kwargs`` under boto3's names) and the variables
#: the Flyte SDK's S3 storage reads for them (its ``FLYTE_AWS_*``, and obstore's own ``AWS_*``)
S3_VARIABLES: dict[tuple[str | None, str], str] = {
    ("endpoint_url", "endpoint_url"): "FLYTE_AWS_ENDPOINT",
    ("key", "aws_access_key_id"): "FLYTE_AWS_ACCESS_KEY_ID",
    ("secret", "aws_secret_access_key"): "FLYTE_AWS_SECRET_ACCESS_KEY",
    ("token", "aws_session_token"): "AWS_SESSION_TOKEN",
    (None, "region_name"): "AWS_REGION",
}


def storage_environment(url: str, options: Mapping[str, Any]) -> dict[str, str]:
    """The environment through which a child process reaches the bundle storage at ``url``
    with filesystem ``options`` (module docstring). Secrets go only here, never in argv."""
    env = {OPTIONS_ENV: json.dumps(dict(options))} if options else {}
    protocol = urlsplit(url).scheme
    if protocol in ("s3", "s3a"):
        env.update(_s3_environment(options))
    return env


def _s3_environment(options: Mapping[str, Any]) -> dict[str, str]:
    client = options.get("client_kwargs") or {}
    env: dict[str, str] = {}
    for (option, boto_name), variable in S3_VARIABLES.items():
        value = options.get(option) if option else None
        value = value or client.get(boto_name)
        if value:
            env[variable] = str(value)
    if options.get("anon"):
        env["AWS_SKIP_SIGNATURE"] = "true"
    style = ((options.get("config_kwargs") or {}).get("s3") or {}).get("addressing_style")
    if style:
        env["FLYTE_AWS_S3_ADDRESSING_STYLE"] = str(style)
    return env

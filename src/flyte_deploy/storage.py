"""fsspec helpers shared by the upload phase, the local backend and ``run``."""

from __future__ import annotations

from typing import Any

import fsspec


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of ``url``; local paths create parent dirs on write."""
    if "://" not in url or url.startswith("file://"):
        return fsspec.core.url_to_fs(url, auto_mkdir=True)
    return fsspec.core.url_to_fs(url)


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])

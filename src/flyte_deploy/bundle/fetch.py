"""Fetching a stored bundle for a run: download it, verify it against the digest in its
name, and only then unpack it (what the runtime does with ``--tgz``)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BundleIntegrityError, RunError
from ..storage import filesystem, redact_url, scrub
from .extract import extract_archive
from .integrity import digest_in_name, verify_bundle


def fetch_bundle(uri: str, dest: Path, options: Mapping[str, Any] | None = None) -> list[str]:
    """Download the bundle at ``uri`` (fsspec, with filesystem ``options``), check it
    (``verify_bundle``) and unpack it into ``dest``; return the member names.

    A URI whose name carries no digest, or a bundle that does not match it, is a
    ``BundleIntegrityError``; a failed download a ``RunError``; an unsafe member a
    ``BundleError``. Messages name the URI without credentials."""
    shown = redact_url(uri)
    expected = digest_in_name(uri)
    if expected is None:
        raise BundleIntegrityError(f"cannot verify the code bundle {shown}: its name is not <sha256>.tar.gz")
    with tempfile.TemporaryDirectory(prefix="flyte-deploy-bundle-") as scratch:
        local = Path(scratch) / "bundle.tar.gz"
        try:
            fs, path = filesystem(uri, options)
            fs.get_file(path, str(local))
        except Exception as exc:  # noqa: BLE001 - any failure to fetch is reported, scrubbed
            raise RunError(
                f"cannot fetch the code bundle {shown}: {scrub(f'{type(exc).__name__}: {exc}', options)}"
            ) from None
        verify_bundle(local, expected, source=uri)
        return extract_archive(local, dest)

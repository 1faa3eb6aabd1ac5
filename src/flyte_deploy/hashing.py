"""A write-through sink that hashes what passes, shared by the bundle and image-layer
writers (both compute digests while streaming, reading nothing twice)."""

from __future__ import annotations

import hashlib
from typing import IO


class HashingWriter:
    """Writes to ``out`` and keeps the sha256 (``sha256``) and byte count (``size``) of
    everything written."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()

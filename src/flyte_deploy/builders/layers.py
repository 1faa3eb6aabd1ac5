"""Reproducible image layers: the same files give the same bytes and digests.

A layer is a PAX tar (sorted entries, explicit parent directories, mtime 0, uid/gid 0,
no user names, modes 0755/0644, symlinks kept) compressed with gzip (mtime 0, no name).
One pass computes both the ``diff_id`` (uncompressed sha256) and the blob ``digest``.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..hashing import HashingWriter
from .registry import OCI_LAYER_GZIP

SKIP_NAMES = frozenset({"__pycache__", ".git", ".DS_Store"})


@dataclass(frozen=True)
class LayerBlob:
    """A compressed layer on disk with its digests; ``label`` says what it holds."""

    path: Path
    digest: str
    diff_id: str
    size: int
    media_type: str = OCI_LAYER_GZIP
    label: str = ""

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def _walk(source: Path, arcname: str) -> Iterable[tuple[str, Path]]:
    yield arcname, source
    if source.is_dir() and not source.is_symlink():
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES)
            rel = Path(root).relative_to(source)
            for name in sorted([*dirs, *(f for f in files if f not in SKIP_NAMES and not f.endswith(".pyc"))]):
                yield str(PurePosixPath(arcname, *rel.parts, name)), Path(root, name)


def _tarinfo(name: str, path: Path | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, os.readlink(path)
    elif stat.S_ISDIR(st.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.type, info.size = tarfile.REGTYPE, st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info


def write_layer(entries: Iterable[tuple[str, Path]], dest: Path, label: str = "") -> LayerBlob:
    """Write a layer holding each ``(path in image, local file or directory)`` to ``dest``.

    Directories are added recursively (without ``__pycache__``, ``.git`` and ``*.pyc``);
    missing parent directories get explicit entries. Later entries for the same path win.
    """
    members: dict[str, Path | None] = {}
    for image_path, source in entries:
        arcname = str(PurePosixPath(image_path.lstrip("/")))
        for arc, path in _walk(Path(source), arcname):
            members[arc] = path
    for arc in list(members):
        for parent in PurePosixPath(arc).parents:
            if str(parent) != "." and str(parent) not in members:
                members[str(parent)] = None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as raw:
        compressed = HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            plain = HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for arc in sorted(members):
                    member = members[arc]
                    info = _tarinfo(arc, member)
                    if info.isreg():
                        with member.open("rb") as handle:  # type: ignore[union-attr]
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    return LayerBlob(
        path=dest,
        digest=f"sha256:{compressed.sha256.hexdigest()}",
        diff_id=f"sha256:{plain.sha256.hexdigest()}",
        size=compressed.size,
        label=label,
    )


def cached_layer(image_path: str, source: Path, cache: Path, label: str = "") -> LayerBlob:
    """The layer of an immutable ``source`` directory (a cached package set), written once
    to ``cache`` (plus ``cache``.json with its digests) and reused afterwards."""
    meta = cache.with_name(cache.name + ".json")
    if cache.is_file() and meta.is_file():
        data = json.loads(meta.read_text())
        return LayerBlob(path=cache, digest=data["digest"], diff_id=data["diff_id"], size=data["size"], label=label)
    # concurrent builds each write their own
    handle, name = tempfile.mkstemp(prefix=f".{cache.name}.", dir=cache.parent)
    os.close(handle)
    blob = write_layer([(image_path, source)], Path(name))
    Path(name).replace(cache)
    meta_tmp = Path(name).with_suffix(".json")
    meta_tmp.write_text(json.dumps({"digest": blob.digest, "diff_id": blob.diff_id, "size": blob.size}))
    meta_tmp.replace(meta)
    return LayerBlob(path=cache, digest=blob.digest, diff_id=blob.diff_id, size=blob.size, label=label)

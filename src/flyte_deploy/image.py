"""The ``Image`` spec: an immutable description of a container image.

An ``Image`` is a value: every ``with_*`` method returns a new one. Its ``content_hash``
covers the base, every layer and the content of every file a layer refers to, so the tag
(and therefore the URI) changes exactly when what would be built changes.
Building is the ``build_image`` phase's job (see ``flyte_deploy.builtin.image``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import UsageError

DEFAULT_PYTHON = "3.11"
DEBIAN_BASE = "python:{py}-slim-bookworm"
DEFAULT_NAME = "flyte-deploy"
DEFAULT_WORKDIR = "/root"


@dataclass(frozen=True)
class Layer:
    """One step of an image spec. ``kind`` is pip, requirements, apt, env, commands,
    source or workdir; ``values`` its ordered arguments."""

    kind: str
    values: tuple[Any, ...]

    @property
    def needs_run(self) -> bool:
        """True when building this layer needs RUN steps inside the image."""
        return self.kind in ("apt", "commands")


def _hash_path(path: Path, digest: hashlib._Hash) -> None:
    if path.is_file():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
        for name in sorted(files):
            full = Path(root, name)
            digest.update(str(full.relative_to(path)).encode())
            digest.update(full.read_bytes())


@dataclass(frozen=True)
class Image:
    """A container image spec (Flyte style).

    Build one with ``Image.from_debian_base()``, ``Image.from_base(uri)`` or
    ``Image.from_dockerfile(path)`` and refine it with the ``with_*`` methods.
    """

    base: str | None = None
    dockerfile: str | None = None
    python_version: str = DEFAULT_PYTHON
    layers: tuple[Layer, ...] = ()
    registry: str | None = None
    name: str = DEFAULT_NAME
    platform: str = "linux/amd64"
    prebuilt: bool = False
    install_runtime: bool = True
    #: the tag another SDK computed for this spec (the ``flyte`` adapter pins the URI
    #: ``flyte`` computes); None: our own content hash names it
    pinned_tag: str | None = None
    #: why no builder can build this spec (a layer kind we do not have); the build phase
    #: refuses it with this reason before anything is registered
    unbuildable: str | None = None

    # constructors -------------------------------------------------------------------
    @classmethod
    def default(cls) -> Image:
        """The image used when an environment names none: Debian + Python + the runtime."""
        return cls.from_debian_base()

    @classmethod
    def from_debian_base(
        cls,
        python_version: str | tuple[int, int] = DEFAULT_PYTHON,
        *,
        registry: str | None = None,
        name: str = DEFAULT_NAME,
        platform: str = "linux/amd64",
    ) -> Image:
        """Debian bookworm with the given Python, plus the runtime that loads task bundles."""
        py = ".".join(map(str, python_version)) if isinstance(python_version, tuple) else str(python_version)
        if not re.fullmatch(r"3\.\d+", py):
            raise UsageError(f"Image.from_debian_base: python_version must look like '3.11', got {py!r}")
        return cls(base=DEBIAN_BASE.format(py=py), python_version=py, registry=registry, name=name, platform=platform)

    @classmethod
    def from_base(cls, uri: str) -> Image:
        """An existing image used as is (nothing is built unless layers are added).

        ``uri`` is a registry reference, or ``oci:PATH[:TAG]`` for an OCI image layout on
        disk (the daemonless builder reads it directly)."""
        if not isinstance(uri, str) or not uri.strip():
            raise UsageError(f"Image.from_base needs an image URI, got {uri!r}")
        return cls(base=uri, prebuilt=True, install_runtime=False)

    @classmethod
    def from_dockerfile(
        cls, path: str | os.PathLike[str], *, registry: str | None = None, name: str = DEFAULT_NAME
    ) -> Image:
        """The user's own Dockerfile; its directory is the build context."""
        p = Path(path).resolve()
        if not p.is_file():
            raise UsageError(f"Image.from_dockerfile: {path} is not a file")
        return cls(dockerfile=str(p), registry=registry, name=name, install_runtime=False)

    # refinements --------------------------------------------------------------------
    def _with(self, kind: str, *values: Any) -> Image:
        if not values:
            raise UsageError(f"Image.with_{kind} needs at least one value")
        return replace(self, layers=self.layers + (Layer(kind, tuple(values)),), prebuilt=False)

    def with_pip_packages(self, *packages: str) -> Image:
        return self._with("pip", *packages)

    def with_requirements(self, path: str | os.PathLike[str]) -> Image:
        p = Path(path).resolve()
        if not p.is_file():
            raise UsageError(f"Image.with_requirements: {path} is not a file")
        return self._with("requirements", str(p))

    def with_apt_packages(self, *packages: str) -> Image:
        return self._with("apt", *packages)

    def with_env_vars(self, env_vars: dict[str, str]) -> Image:
        return self._with("env", *sorted((str(k), str(v)) for k, v in env_vars.items()))

    def with_commands(self, *commands: str) -> Image:
        return self._with("commands", *commands)

    def with_source_folder(self, src: str | os.PathLike[str], dst: str = ".") -> Image:
        p = Path(src).resolve()
        if not p.is_dir():
            raise UsageError(f"Image.with_source_folder: {src} is not a directory")
        return self._with("source", str(p), dst)

    def with_workdir(self, workdir: str) -> Image:
        return self._with("workdir", workdir)

    def with_registry(self, registry: str) -> Image:
        return replace(self, registry=registry.rstrip("/"))

    def with_name(self, name: str) -> Image:
        return replace(self, name=name)

    # identity -----------------------------------------------------------------------
    @property
    def needs_build(self) -> bool:
        return not self.prebuilt

    @property
    def needs_run(self) -> bool:
        return self.dockerfile is not None or any(layer.needs_run for layer in self.layers)

    def identity(self) -> dict[str, Any]:
        """The spec as canonical JSON-able data (paths are hashed, not included)."""
        return {
            "base": self.base,
            "dockerfile": bool(self.dockerfile),
            "python": self.python_version,
            "platform": self.platform,
            "runtime": _runtime_fingerprint() if self.install_runtime and not self.prebuilt else False,
            "layers": [
                [layer.kind, [v for v in layer.values if not _is_local_path(layer, v)]] for layer in self.layers
            ],
        }

    @property
    def content_hash(self) -> str:
        """sha256 over the spec and the content of every file it refers to."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True, separators=(",", ":")).encode())
        if self.dockerfile:
            _hash_path(Path(self.dockerfile).parent, digest)
        for layer in self.layers:
            if layer.kind in ("requirements", "source"):
                _hash_path(Path(layer.values[0]), digest)
        return digest.hexdigest()

    @property
    def tag(self) -> str:
        return self.pinned_tag or self.content_hash[:20]

    @property
    def uri(self) -> str:
        """Where the built image lives: ``[registry/]name:tag``; a prebuilt base as is."""
        if self.prebuilt:
            return str(self.base)
        prefix = f"{self.registry}/" if self.registry else ""
        return f"{prefix}{self.name}:{self.tag}"

    @property
    def workdir(self) -> str:
        """The working directory of the built image: the last ``with_workdir``, else /root."""
        found = [layer.values[0] for layer in self.layers if layer.kind == "workdir"]
        return str(found[-1]) if found else DEFAULT_WORKDIR

    def base_uri(self, base_registry: str | None = None) -> str | None:
        """Where to pull the base from: a base named without a registry (Docker Hub, like
        the Debian default) is looked up in ``base_registry`` (``image.base_registry``, a
        Docker Hub mirror) when one is configured. Not part of the content hash."""
        if not self.base or not base_registry or self.base.startswith("oci:"):
            return self.base
        first = self.base.split("/", 1)[0]
        if "/" in self.base and ("." in first or ":" in first or first == "localhost"):
            if first not in ("docker.io", "index.docker.io", "registry-1.docker.io"):
                return self.base
            rest = self.base.split("/", 1)[1]
        else:
            rest = self.base
        if "/" not in rest:
            rest = f"library/{rest}"
        return f"{base_registry.rstrip('/')}/{rest}"

    def resolved(self, registry: str | None) -> Image:
        """This spec with ``registry`` filled in when it has none."""
        if self.prebuilt or self.registry or not registry:
            return self
        return replace(self, registry=registry.rstrip("/"))


def _runtime_fingerprint() -> str:
    from .builders.python import runtime_fingerprint

    return runtime_fingerprint()


def _is_local_path(layer: Layer, value: Any) -> bool:
    return layer.kind in ("requirements", "source") and value == layer.values[0]

"""The daemonless ``oci`` builder: assembles an image without any container engine.

The image is the base's layers (from a registry, or an OCI layout given as
``oci:PATH[:TAG]``) plus reproducible layers for the Python packages (installed on the host
for the image's platform), the flyte-deploy runtime and each source folder; its config is
the base's with ``Env``, ``WorkingDir`` and labels updated and ``created`` fixed, so an
unchanged spec gives the same digests. Blobs go up over the OCI distribution API, skipping
those the registry has (and mounting base layers across repositories). Specs that need
``RUN`` steps (apt packages, commands, a Dockerfile) are refused with a pointer to the
``docker`` builder.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ImageBuildError
from ..image import Image
from ..session import DeploySession
from ..types import ImageBuilder, ImageRef
from . import existing_digest, registry_client, report
from .dockerfile import image_path, source_folders
from .layers import LayerBlob, cached_layer, write_layer
from .python import RUNTIME_DIR, SITE_PACKAGES, install_packages, python_env, write_runtime
from .registry import (
    INDEX_TYPES,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ImageNotFound,
    Reference,
    RegistryClient,
    sha256_digest,
)

NAME = "oci"
EPOCH = "1970-01-01T00:00:00Z"
_DOCKER_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class BaseImage:
    """A base image's manifest (and its digest) and config, and how to copy one of its blobs
    into a registry."""

    uri: str
    digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    copy_blob: Callable[[RegistryClient, str, dict[str, Any]], None]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return [
            {**layer, "mediaType": _DOCKER_LAYER_TYPES.get(layer["mediaType"], layer["mediaType"])}
            for layer in self.manifest.get("layers", [])
        ]


def load_base(session: DeploySession, uri: str, platform: str) -> BaseImage:
    """Read the base's manifest and config from an OCI layout or a registry."""
    if uri.startswith("oci:"):
        return _layout_base(uri, platform)
    ref = Reference.parse(uri)
    source = registry_client(session.config, ref.registry)
    try:
        manifest, _, digest = source.image_manifest(ref.repository, ref.ref, platform)
    except ImageNotFound:
        raise ImageNotFound(f"base image {uri} not found in registry {ref.registry}") from None
    config = json.loads(source.get_blob(ref.repository, manifest["config"]["digest"]))

    def copy_blob(target: RegistryClient, repository: str, descriptor: dict[str, Any]) -> None:
        digest = descriptor["digest"]
        if target.blob_exists(repository, digest):
            return
        if target.registry == source.registry and target.mount_blob(repository, digest, ref.repository):
            return
        with tempfile.TemporaryDirectory(prefix="flyte-deploy-blob-") as tmp:
            path = source.download_blob(ref.repository, digest, Path(tmp) / "blob")
            target.push_blob(repository, digest, path)

    return BaseImage(uri, digest, manifest, config, copy_blob)


def _layout_base(uri: str, platform: str) -> BaseImage:
    text = uri[len("oci:") :]
    path, _, tag = text.rpartition(":") if ":" in text else (text, "", "")
    layout = Path(path or text)
    index_file = layout / "index.json"
    if not index_file.is_file():
        raise ImageNotFound(f"base image {uri}: {layout} is not an OCI image layout (no index.json)")
    blobs = layout / "blobs"

    def read(digest: str) -> bytes:
        algorithm, _, hexdigest = digest.partition(":")
        try:
            return (blobs / algorithm / hexdigest).read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(f"base image {uri}: blob {digest} is missing from the layout") from None

    entries = json.loads(index_file.read_text())["manifests"]
    if tag:
        entries = [e for e in entries if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if len(entries) != 1:
        raise ImageNotFound(
            f"base image {uri}: the layout has {len(entries)} images"
            f"{' tagged ' + repr(tag) if tag else ''}; name exactly one with oci:PATH:TAG"
        )
    digest = entries[0]["digest"]
    manifest = json.loads(read(digest))
    if entries[0].get("mediaType") in INDEX_TYPES or "manifests" in manifest:
        os_name, arch = platform.split("/")[:2]
        match = [
            m
            for m in manifest["manifests"]
            if m.get("platform", {}).get("os") == os_name and m["platform"].get("architecture") == arch
        ]
        if not match:
            raise ImageNotFound(f"base image {uri} has no {platform} variant")
        digest = match[0]["digest"]
        manifest = json.loads(read(digest))
    config = json.loads(read(manifest["config"]["digest"]))

    def copy_blob(target: RegistryClient, repository: str, descriptor: dict[str, Any]) -> None:
        algorithm, _, hexdigest = descriptor["digest"].partition(":")
        blob = blobs / algorithm / hexdigest
        if not blob.is_file():
            raise ImageNotFound(f"base image {uri}: blob {descriptor['digest']} is missing from the layout")
        target.push_blob(repository, descriptor["digest"], blob)

    return BaseImage(uri, digest, manifest, config, copy_blob)


def refuse_run_steps(image: Image, environment: str) -> None:
    """The oci builder cannot execute anything inside the image: say what needs RUN steps."""
    if not image.needs_run:
        return
    if image.dockerfile:
        what = f"a Dockerfile ({image.dockerfile})"
    else:
        kinds = sorted(
            {"apt packages" if layer.kind == "apt" else "commands" for layer in image.layers if layer.needs_run}
        )
        what = " and ".join(kinds)
    raise ImageBuildError(
        f"image for environment {environment!r} needs RUN steps ({what}), which the"
        ' daemonless oci builder cannot run; set image.builder = "docker" (or a plugin\'s'
        " builder)"
    )


@dataclass
class Assembly:
    """The base, the new layers (in order) and whether any carries Python content."""

    base: BaseImage
    layers: list[LayerBlob]
    python: bool


def assemble(session: DeploySession, environment: str, image: Image, work: Path) -> Assembly:
    """Read the base and write the new layers under ``work``."""
    base_uri = image.base_uri(session.config.get("image.base_registry"))
    if not base_uri:
        raise ImageBuildError(f"image for environment {environment!r} has no base image")
    base = load_base(session, base_uri, image.platform)
    layers: list[LayerBlob] = []
    site = install_packages(image, work / "build.log")
    if site is not None:
        report(session, environment, "python packages ready for " + image.platform)
        layers.append(
            cached_layer(
                SITE_PACKAGES,
                site,
                site.with_name(site.name + ".layer.tar.gz"),
                label=f"python packages at {SITE_PACKAGES}",
            )
        )
    if image.install_runtime:
        runtime = write_runtime(work / "runtime")
        layers.append(
            write_layer(
                [(RUNTIME_DIR, runtime)],
                work / "layers" / "runtime.tar.gz",
                label=f"flyte-deploy runtime at {RUNTIME_DIR}",
            )
        )
    python = bool(layers)
    for index, (src, dst) in enumerate(source_folders(image)):
        layers.append(
            write_layer(
                [(image_path(image, dst), src)],
                work / "layers" / f"source-{index}.tar.gz",
                label=f"source folder at {image_path(image, dst)}",
            )
        )
    return Assembly(base, layers, python)


def image_config(image: Image, assembly: Assembly) -> dict[str, Any]:
    """The new image config: the base's plus diff_ids, Env, WorkingDir, labels, history."""
    base, layers = assembly.base, assembly.layers
    config = json.loads(json.dumps(base.config))
    inner = config.setdefault("config", {})
    env = dict(item.split("=", 1) for item in inner.get("Env") or [] if "=" in item)
    if assembly.python:
        env.update(python_env(inner.get("Env")))
    for layer in image.layers:
        if layer.kind == "env":
            env.update({str(k): str(v) for k, v in layer.values})
    inner["Env"] = [f"{k}={v}" for k, v in env.items()]
    inner["WorkingDir"] = image.workdir
    inner["Labels"] = {**(inner.get("Labels") or {}), "dev.flyte-deploy.spec": image.content_hash}
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", [])) + [layer.diff_id for layer in layers]
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = list(config.get("history") or []) + [
        {"created": EPOCH, "created_by": f"flyte-deploy oci builder: {layer.label}"} for layer in layers
    ]
    config["created"] = EPOCH
    return config


def build(session: DeploySession, environment: str, image: Image) -> ImageRef:
    """Make ``image.uri`` exist in its registry (see module docstring)."""
    refuse_run_steps(image, environment)
    digest = existing_digest(session.config, image.uri)
    if digest:
        report(session, environment, f"{image.uri} already in registry")
        return ImageRef(environment=environment, uri=image.uri, builder=NAME, digest=digest, note="already in registry")
    report(session, environment, f"building {image.uri} (oci)")
    target = Reference.parse(image.uri)
    with (
        tempfile.TemporaryDirectory(prefix="flyte-deploy-oci-") as tmp,
        registry_client(session.config, target.registry) as client,
    ):
        assembly = assemble(session, environment, image, Path(tmp))
        base, layers = assembly.base, assembly.layers
        config_bytes = canonical_json(image_config(image, assembly))
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config_bytes), "size": len(config_bytes)},
            "layers": base.layers + [layer.descriptor() for layer in layers],
            # the spec's base name (not the mirror it came from) keeps digests location-independent
            "annotations": {
                "org.opencontainers.image.base.name": str(image.base),
                "org.opencontainers.image.base.digest": base.digest,
            },
        }
        for descriptor in base.layers:
            base.copy_blob(client, target.repository, descriptor)
        uploaded = sum(client.push_blob(target.repository, layer.digest, layer.path) for layer in layers)
        client.push_blob(target.repository, manifest["config"]["digest"], config_bytes)
        digest = client.put_manifest(target.repository, target.ref, canonical_json(manifest), OCI_MANIFEST)
    report(session, environment, f"pushed {image.uri} ({uploaded} new layer(s), {digest[:19]})")
    return ImageRef(environment=environment, uri=image.uri, builder=NAME, built=True, digest=digest)


BUILDER = ImageBuilder(
    name=NAME,
    build=build,
    description="daemonless: base + reproducible Python/runtime/source layers, pushed over the OCI distribution API",
    auto_priority=20,
)

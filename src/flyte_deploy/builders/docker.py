"""The ``docker`` builder: builds with a Docker daemon through the Docker Engine SDK.

The build context is the generated Dockerfile with the host-resolved Python packages, the
runtime and the source folders (see ``builders.dockerfile``), or the user's Dockerfile and
its directory. Builds use the host network (no bridge is needed). Pushes carry the
credentials of ``image.registry_username``/``image.registry_password`` or, failing those,
the user's docker config. The daemon is ``DOCKER_HOST``'s (or the default socket).
A failing step is reported with its instruction and the tail of its log.

The Engine SDK drives the daemon's classic builder (the SDK has no BuildKit session); the
Dockerfile it builds is BuildKit-compatible, so a plugin builder may hand it to BuildKit.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..config import Config
from ..errors import ImageBuildError
from ..image import Image
from ..session import DeploySession
from ..types import ImageBuilder, ImageRef
from . import existing_digest, registry_client, report
from .dockerfile import prepare_context
from .python import log_tail
from .registry import Reference

NAME = "docker"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def docker_client(timeout: int = 600) -> Any:
    """A ``docker.DockerClient`` for the daemon of ``DOCKER_HOST`` (or the default socket)."""
    import docker

    return docker.from_env(timeout=timeout)


def daemon_answers() -> bool:
    """True when a Docker daemon answers a ping within a few seconds."""
    try:
        client = docker_client(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure to reach or talk to the daemon means "not available"
        return False


def _auth_config(config: Config, registry: str) -> dict[str, str] | None:
    with registry_client(config, registry) as client:
        creds = client.credentials
    return {"username": creds.username, "password": creds.password} if creds else None


def _follow_build(stream: Iterable[dict[str, Any]], log: Path, environment: str) -> None:
    step = "build"
    with log.open("a", encoding="utf-8") as out:
        for chunk in stream:
            text = chunk.get("stream") or chunk.get("status") or ""
            if text:
                out.write(text if text.endswith("\n") else text + "\n")
                out.flush()
                found = _STEP.match(text.strip())
                if found:
                    step = found.group(3)
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                out.write(message + "\n")
                out.flush()
                raise ImageBuildError(f"image for environment {environment!r}: step {step!r} failed: "
                                      f"{message.strip().splitlines()[-1] if message.strip() else 'error'}"
                                      + log_tail(log))


def _push(client: Any, config: Config, uri: str, environment: str, log: Path) -> str | None:
    ref = Reference.parse(uri)
    repository = uri.rsplit(":", 1)[0]
    digest = None
    stream = client.api.push(repository, tag=ref.tag, auth_config=_auth_config(config, ref.registry),
                             stream=True, decode=True)
    with log.open("a", encoding="utf-8") as out:
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                cause = message.strip().splitlines()[-1] if message.strip() else "error"
                if "unauthorized" in cause.lower() or "authentication required" in cause.lower():
                    raise ImageBuildError(f"registry {ref.registry} refused authentication while pushing {uri}:"
                                          f" {cause}")
                raise ImageBuildError(f"image for environment {environment!r}: push of {uri} failed: {cause}")
            if chunk.get("status"):
                out.write(f"{chunk['status']} {chunk.get('progress', '')}\n")
            digest = (chunk.get("aux") or {}).get("Digest") or digest
    return digest


def build(session: DeploySession, environment: str, image: Image) -> ImageRef:
    """Build ``image`` with the daemon and push it to ``image.uri``, unless it is there."""
    config = session.config
    digest = existing_digest(config, image.uri)
    if digest:
        report(session, environment, f"{image.uri} already in registry")
        return ImageRef(environment=environment, uri=image.uri, builder=NAME, digest=digest,
                        note="already in registry")
    base = image.base_uri(config.get("image.base_registry"))
    if base and base.startswith("oci:"):
        raise ImageBuildError(f"image for environment {environment!r}: base {base} is an OCI layout, which the"
                              " docker builder cannot pull; push it to a registry or use image.builder = \"oci\"")
    report(session, environment, f"building {image.uri} (docker)")
    with tempfile.TemporaryDirectory(prefix="flyte-deploy-docker-") as tmp:
        log = Path(tmp) / "build.log"
        context = prepare_context(image, base, Path(tmp) / "context", log)
        try:
            client = docker_client()
        except Exception as exc:  # the SDK raises DockerException for a missing daemon
            raise ImageBuildError(f"the Docker daemon does not answer: {str(exc).splitlines()[0]}") from None
        try:
            stream = client.api.build(path=str(context.directory), dockerfile=context.dockerfile, tag=image.uri,
                                      rm=True, forcerm=True, decode=True, network_mode="host",
                                      labels={"dev.flyte-deploy.spec": image.content_hash})
            _follow_build(stream, log, environment)
            report(session, environment, f"built {image.uri}, pushing")
            digest = _push(client, config, image.uri, environment, log)
        except ImageBuildError:
            raise
        except Exception as exc:  # docker.errors.APIError and friends: one line, with the log tail
            raise ImageBuildError(f"image for environment {environment!r}: docker failed: "
                                  f"{str(exc).splitlines()[0]}" + log_tail(log)) from None
        finally:
            client.close()
    report(session, environment, f"pushed {image.uri} ({(digest or '?')[:19]})")
    return ImageRef(environment=environment, uri=image.uri, builder=NAME, built=True, digest=digest)


BUILDER = ImageBuilder(name=NAME, build=build, available=daemon_answers,
                       description="Docker Engine SDK against a daemon (DOCKER_HOST)",
                       auto_priority=10)

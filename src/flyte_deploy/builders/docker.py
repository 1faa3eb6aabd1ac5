"""The ``docker`` builder: builds with a Docker daemon through the Docker Engine SDK.

The build context is the generated Dockerfile with the host-resolved Python packages, the
runtime and the source folders (see ``builders.dockerfile``), or the user's Dockerfile and
its directory. Builds use the host network (no bridge is needed). Pushes carry the
credentials of ``image.registry_username``/``image.registry_password`` or, failing those,
the user's docker config. The daemon is ``DOCKER_HOST``'s (or the default socket).
A failing step is reported with its instruction and the tail of its log.

BuildKit is used where the daemon offers it: the build goes to the Engine API's ``/build``
with ``version=2`` (the context travels as the request body, so no BuildKit session is
needed) and BuildKit's progress trace is decoded to name the failing step and show its own
log lines. A daemon that refuses BuildKit, or ``image.docker_buildkit = false``, gets the
classic builder through the SDK's ``images.build``.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ImageBuildError
from ..image import Image
from ..session import DeploySession
from ..types import ImageBuilder, ImageRef
from . import existing_digest, registry_client, report, require_base
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
                raise ImageBuildError(
                    f"image for environment {environment!r}: step {step!r} failed: "
                    f"{message.strip().splitlines()[-1] if message.strip() else 'error'}" + log_tail(log)
                )


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def protobuf_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """``(field number, value)`` pairs of one protobuf message (wire format only)."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


class BuildKitTrace:
    """Follows BuildKit's ``moby.buildkit.trace`` messages (``StatusResponse``: vertexes=1,
    logs=3; ``Vertex``: digest=1, name=3, error=7; ``VertexLog``: vertex=1, msg=4)."""

    def __init__(self) -> None:
        self.names: dict[bytes, str] = {}
        self.logs: dict[bytes, list[str]] = {}
        self.failed: tuple[str, str] | None = None

    def feed(self, aux: str, out: Any) -> None:
        for number, value in protobuf_fields(base64.b64decode(aux)):
            if number == 1 and isinstance(value, bytes):
                vertex = dict(protobuf_fields(value))
                digest, name = vertex.get(1, b""), bytes(vertex.get(3, b"")).decode(errors="replace")
                if digest not in self.names:
                    out.write(f"# {name}\n")
                self.names[digest] = name  # type: ignore[index]
                if vertex.get(7) and self.failed is None:
                    self.failed = (name, bytes(vertex[7]).decode(errors="replace"))
            elif number == 3 and isinstance(value, bytes):
                entry = dict(protobuf_fields(value))
                text = bytes(entry.get(4, b"")).decode(errors="replace")
                self.logs.setdefault(entry.get(1, b""), []).extend(text.splitlines())  # type: ignore[arg-type]
                out.write(text)

    def tail(self, name: str, lines: int = 12) -> str:
        digest = next((d for d, n in self.names.items() if n == name), None)
        return "".join(f"\n  | {line}" for line in self.logs.get(digest, [])[-lines:]) if digest else ""


def context_archive(directory: Path, dockerfile: str) -> Any:
    """The build context as a tar file object: ``.dockerignore`` honoured, the Dockerfile
    first and every header plain (integer mtimes, no owners), because BuildKit recognises
    a tar body by its first header and takes anything else for a bare Dockerfile."""
    import tarfile

    from docker.utils.build import exclude_paths

    ignore = directory / ".dockerignore"
    patterns = (
        [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
        if ignore.is_file()
        else []
    )
    names = sorted(
        exclude_paths(str(directory), patterns, dockerfile=dockerfile), key=lambda name: (name != dockerfile, name)
    )
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, the caller reads and closes it
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(str(directory / name), arcname=name)
            if info is None:  # sockets and the like
                continue
            info.mtime, info.uid, info.gid, info.uname, info.gname = int(info.mtime), 0, 0, "", ""
            if info.isfile():
                with (directory / name).open("rb") as source:
                    tar.addfile(info, source)
            else:
                tar.addfile(info)
    handle.seek(0)
    return handle


def _buildkit_stream(
    client: Any, directory: Path, dockerfile: str, tag: str, labels: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """POST the context to ``/build?version=2`` (private SDK helpers do the HTTP and auth
    headers, as the SDK's own ``build`` does)."""
    body = context_archive(directory, dockerfile)
    api = client.api
    headers = {"Content-Type": "application/x-tar"}
    api._set_auth_headers(headers)
    params = {
        "t": tag,
        "dockerfile": dockerfile,
        "version": "2",
        "networkmode": "host",
        "rm": "1",
        "forcerm": "1",
        "labels": json.dumps(labels),
    }
    try:
        response = api._post(api._url("/build"), data=body, params=params, headers=headers, stream=True, timeout=None)
    finally:
        body.close()
    api._raise_for_status(response)
    return api._stream_helper(response, decode=True)


def _follow_buildkit(stream: Iterable[dict[str, Any]], log: Path, environment: str) -> None:
    trace = BuildKitTrace()
    with log.open("a", encoding="utf-8") as out:
        for chunk in stream:
            if chunk.get("id") == "moby.buildkit.trace" and chunk.get("aux"):
                trace.feed(chunk["aux"], out)
                out.flush()
            elif chunk.get("stream"):
                out.write(chunk["stream"])
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                name, cause = trace.failed or ("build", message)
                step = re.sub(r"^\[[^\]]*\] ", "", name)
                cause = cause.strip().splitlines()[-1] if cause.strip() else "error"
                tail = trace.tail(name) if trace.failed else ""
                raise ImageBuildError(
                    f"image for environment {environment!r}: step {step!r} failed: {cause}" + (tail or log_tail(log))
                )


def _build(client: Any, config: Config, context: Any, image: Image, environment: str, log: Path) -> str:
    """Build with BuildKit when the daemon has it (and it is not switched off), else with
    the classic builder; returns which one built."""
    labels = {"dev.flyte-deploy.spec": image.content_hash}
    if str(config.get("image.docker_buildkit")).lower() not in ("false", "0", "no"):
        from docker.errors import APIError

        try:
            stream = _buildkit_stream(client, context.directory, context.dockerfile, image.uri, labels)
        except APIError as exc:
            if "buildkit" not in str(exc).lower():
                raise
            with log.open("a", encoding="utf-8") as out:
                out.write(f"BuildKit unavailable ({str(exc).splitlines()[0]}); using the classic builder\n")
        else:
            _follow_buildkit(stream, log, environment)
            return "buildkit"
    stream = client.api.build(
        path=str(context.directory),
        dockerfile=context.dockerfile,
        tag=image.uri,
        rm=True,
        forcerm=True,
        decode=True,
        network_mode="host",
        labels=labels,
    )
    _follow_build(stream, log, environment)
    return "classic"


def _push(client: Any, config: Config, uri: str, environment: str, log: Path) -> str | None:
    ref = Reference.parse(uri)
    repository = uri.rsplit(":", 1)[0]
    digest = None
    stream = client.api.push(
        repository, tag=ref.tag, auth_config=_auth_config(config, ref.registry), stream=True, decode=True
    )
    with log.open("a", encoding="utf-8") as out:
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                cause = message.strip().splitlines()[-1] if message.strip() else "error"
                if "unauthorized" in cause.lower() or "authentication required" in cause.lower():
                    raise ImageBuildError(
                        f"registry {ref.registry} refused authentication while pushing {uri}: {cause}"
                    )
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
        return ImageRef(environment=environment, uri=image.uri, builder=NAME, digest=digest, note="already in registry")
    base = image.base_uri(config.get("image.base_registry"))
    if base and base.startswith("oci:"):
        raise ImageBuildError(
            f"image for environment {environment!r}: base {base} is an OCI layout, which the"
            ' docker builder cannot pull; push it to a registry or use image.builder = "oci"'
        )
    if base and not image.dockerfile:
        require_base(config, base)
    report(session, environment, f"building {image.uri} (docker)")
    with tempfile.TemporaryDirectory(prefix="flyte-deploy-docker-") as tmp:
        log = Path(tmp) / "build.log"
        context = prepare_context(image, base, Path(tmp) / "context", log)
        try:
            client = docker_client()
        except Exception as exc:  # the SDK raises DockerException for a missing daemon
            raise ImageBuildError(f"the Docker daemon does not answer: {str(exc).splitlines()[0]}") from None
        try:
            how = _build(client, config, context, image, environment, log)
            report(session, environment, f"built {image.uri} ({how} builder), pushing")
            digest = _push(client, config, image.uri, environment, log)
        except ImageBuildError:
            raise
        except Exception as exc:  # docker.errors.APIError and friends: one line, with the log tail
            raise ImageBuildError(
                f"image for environment {environment!r}: docker failed: {str(exc).splitlines()[0]}" + log_tail(log)
            ) from None
        finally:
            client.close()
    report(session, environment, f"pushed {image.uri} ({(digest or '?')[:19]})")
    return ImageRef(environment=environment, uri=image.uri, builder=NAME, built=True, digest=digest)


BUILDER = ImageBuilder(
    name=NAME,
    build=build,
    available=daemon_answers,
    description="Docker Engine SDK against a daemon (DOCKER_HOST)",
    auto_priority=10,
)

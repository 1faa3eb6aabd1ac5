"""A small OCI distribution (registry v2) client: references, credentials, blobs and manifests.

Auth follows the distribution spec: a request answered ``401`` is retried with Basic
credentials or with a Bearer token fetched from the challenge's realm. Credentials come from
explicit arguments (``image.registry_username`` / ``image.registry_password``) or the user's
docker config (``$DOCKER_CONFIG/config.json``: ``auths``, ``credHelpers``, ``credsStore``).
Loopback registries and those listed in ``image.insecure_registries`` are spoken to over
plain HTTP, every other one over HTTPS. Every failure is an ``ImageBuildError`` subclass with
a one-line cause; passwords and tokens never appear in messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ImageBuildError, register_secret

if TYPE_CHECKING:  # httpx is imported when a client is made, not when the builders load
    import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

DOCKER_HUB = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_CHUNK = 1 << 20


class RegistryUnreachable(ImageBuildError):
    """Nothing answers at the registry's address."""


class RegistryAuthError(ImageBuildError):
    """The registry refused the credentials (or wants some and none are configured)."""


class ImageNotFound(ImageBuildError):
    """A manifest or blob the build needs is not in the registry."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Reference:
    """``registry/repository[:tag][@digest]``, with Docker Hub names normalised."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, uri: str) -> Reference:
        text = uri.strip()
        for prefix in ("docker://", "https://", "http://"):
            text = text.removeprefix(prefix)
        digest = None
        if "@" in text:
            text, digest = text.split("@", 1)
        first, _, rest = text.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, text
        tag = None
        last_slash = path.rfind("/")
        if ":" in path[last_slash + 1 :]:
            path, tag = path.rsplit(":", 1)
        if registry in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
            if "/" not in path:
                path = f"library/{path}"
        if not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", path):
            raise ImageBuildError(f"invalid image reference {uri!r}: bad repository name {path!r}")
        if tag is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
            raise ImageBuildError(f"invalid image reference {uri!r}: bad tag {tag!r}")
        if digest is None and tag is None:
            tag = "latest"
        return cls(registry, path, tag, digest)

    @property
    def ref(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or str(self.tag)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __post_init__(self) -> None:
        register_secret(self.password)  # never shown in any message (errors.scrub)

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r}, password=***)"


def _registry_key(server: str) -> str:
    key = re.sub(r"^https?://", "", server).split("/", 1)[0]
    return DOCKER_HUB if key in _DOCKER_HUB_ALIASES else key


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def docker_config_credentials(registry: str, path: Path | None = None) -> Credentials | None:
    """Credentials for ``registry`` from the docker config (auths, credHelpers, credsStore)."""
    path = path or docker_config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RegistryAuthError(f"cannot read docker config {path}: {exc}") from None
    wanted = _registry_key(registry)
    helper = data.get("credHelpers", {}).get(wanted) or next(
        (h for server, h in data.get("credHelpers", {}).items() if _registry_key(server) == wanted), None
    )
    for server, entry in data.get("auths", {}).items():
        if _registry_key(server) != wanted or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return Credentials(user, password)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
    helper = helper or data.get("credsStore")
    if helper:
        return _credential_helper(helper, registry, path)
    return None


def _credential_helper(helper: str, registry: str, config: Path) -> Credentials | None:
    program = f"docker-credential-{helper}"
    for server in (registry, f"https://{registry}"):
        try:
            proc = subprocess.run([program, "get"], input=server, capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise RegistryAuthError(
                f"{config} names credential helper {helper!r}, but {program} is not installed"
            ) from None
        if proc.returncode == 0:
            data = json.loads(proc.stdout)
            return Credentials(data.get("Username", ""), data.get("Secret", ""))
    return None


def is_insecure(registry: str, insecure_registries: tuple[str, ...] = ()) -> bool:
    """Plain HTTP for loopback addresses and explicitly listed registries."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.") or registry in insecure_registries


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryClient:
    """One registry, spoken to over the OCI distribution API. Thread-safe."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        insecure_registries: tuple[str, ...] = (),
        timeout: float = 60.0,
        docker_config: Path | None = None,
    ) -> None:
        self.registry = registry
        scheme = "http" if is_insecure(registry, insecure_registries) else "https"
        self.base_url = f"{scheme}://{registry}"
        self._explicit = credentials
        self._docker_config = docker_config
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()
        import httpx

        self._http = httpx.Client(timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # auth --------------------------------------------------------------------------
    @property
    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._credentials_loaded:
                self._credentials = self._explicit or docker_config_credentials(self.registry, self._docker_config)
                self._credentials_loaded = True
            return self._credentials

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic and self.credentials:
            creds = self.credentials
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, params = _parse_challenge(challenge)
        creds = self.credentials
        if scheme == "basic":
            if creds is None:
                raise RegistryAuthError(
                    f"registry {self.registry} requires credentials and none are configured"
                    f" (docker login {self.registry}, or image.registry_username/password)"
                )
            self._basic = True
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryAuthError(f"registry {self.registry} asks for unsupported auth {scheme!r}")
        query: list[tuple[str, str | int | float | bool | None]] = [("service", params.get("service", self.registry))]
        query += [("scope", s) for s in scope.split()]
        auth = (creds.username, creds.password) if creds else None
        import httpx

        try:
            resp = self._http.get(params["realm"], params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(
                f"token service of {self.registry} ({params['realm']}) is unreachable: {type(exc).__name__}"
            ) from None
        if resp.status_code in (401, 403):
            raise RegistryAuthError(self._refused())
        if resp.status_code != 200:
            raise RegistryAuthError(f"token service of {self.registry} answered {resp.status_code}")
        body = resp.json()
        self._tokens[scope] = body.get("token") or body.get("access_token") or ""

    def _refused(self) -> str:
        creds = self.credentials
        who = f"user {creds.username!r}" if creds else "anonymous access"
        return f"registry {self.registry} refused authentication ({who})"

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str = "",
        headers: dict[str, str] | None = None,
        content: Any = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Send a request, authenticating on ``401``; a status outside ``ok`` (and not
        404, which callers interpret) raises ``ImageBuildError``."""
        import httpx

        full = url if url.startswith("http") else f"{self.base_url}{url}"
        for attempt in range(2):
            hdrs = {**(headers or {}), **self._auth_header(scope)}
            try:
                req = self._http.build_request(
                    method, full, headers=hdrs, params=params, content=content() if callable(content) else content
                )
                resp = self._http.send(req, stream=stream)
            except httpx.ConnectError as exc:
                raise RegistryUnreachable(
                    f"registry {self.registry} is unreachable ({self.base_url}): {_short(exc)}"
                ) from None
            except httpx.HTTPError as exc:
                raise RegistryUnreachable(
                    f"registry {self.registry} failed: {type(exc).__name__}: {_short(exc)}"
                ) from None
            if resp.status_code == 401 and attempt == 0 and "www-authenticate" in resp.headers:
                resp.close()
                self._authenticate(resp.headers["www-authenticate"], scope)
                continue
            if resp.status_code == 401:
                resp.close()
                raise RegistryAuthError(self._refused())
            if resp.status_code == 403:
                resp.close()
                raise RegistryAuthError(f"registry {self.registry} denied {method} {url} for {self._who()}")
            if resp.status_code not in ok and resp.status_code != 404:
                detail = _error_detail(resp)
                raise ImageBuildError(
                    f"registry {self.registry}: {method} {url} answered {resp.status_code}"
                    f"{': ' + detail if detail else ''}"
                )
            return resp
        raise AssertionError("unreachable")

    def _who(self) -> str:
        creds = self.credentials
        return f"user {creds.username!r}" if creds else "anonymous access"

    # API ---------------------------------------------------------------------------
    def ping(self) -> None:
        """Check that the registry answers and accepts our credentials."""
        self.request("GET", "/v2/", ok=(200,))

    def manifest_digest(self, repository: str, ref: str) -> str | None:
        """The digest of a manifest, or ``None`` when the registry does not have it."""
        resp = self.request(
            "HEAD",
            f"/v2/{repository}/manifests/{ref}",
            scope=_scope(repository, "pull"),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if resp.status_code == 404:
            return None
        digest = resp.headers.get("docker-content-digest")
        if digest:
            return digest
        return self.get_manifest(repository, ref)[2]

    def get_manifest(self, repository: str, ref: str) -> tuple[bytes, str, str]:
        """``(bytes, media type, digest)`` of a manifest; ``ImageNotFound`` when missing."""
        resp = self.request(
            "GET",
            f"/v2/{repository}/manifests/{ref}",
            scope=_scope(repository, "pull"),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if resp.status_code == 404:
            raise ImageNotFound(f"image {self.registry}/{repository}:{ref} not found in the registry")
        body = resp.content
        media_type = resp.headers.get("content-type", "").split(";")[0] or json.loads(body).get("mediaType", "")
        return body, media_type, sha256_digest(body)

    def image_manifest(self, repository: str, ref: str, platform: str = "linux/amd64") -> tuple[dict, bytes, str]:
        """The image manifest for ``platform``, following an index: ``(manifest, bytes, digest)``."""
        body, media_type, digest = self.get_manifest(repository, ref)
        manifest = json.loads(body)
        if media_type in INDEX_TYPES or manifest.get("manifests"):
            os_name, arch = platform.split("/")[:2]
            for entry in manifest.get("manifests", []):
                plat = entry.get("platform", {})
                if plat.get("os") == os_name and plat.get("architecture") == arch:
                    return self.image_manifest(repository, entry["digest"], platform)
            raise ImageNotFound(f"image {self.registry}/{repository}:{ref} has no {platform} variant")
        return manifest, body, digest

    def blob_exists(self, repository: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=_scope(repository, "pull"))
        return resp.status_code == 200

    def get_blob(self, repository: str, digest: str) -> bytes:
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=_scope(repository, "pull"))
        if resp.status_code == 404:
            raise ImageNotFound(f"blob {digest} of {self.registry}/{repository} not found")
        if sha256_digest(resp.content) != digest:
            raise ImageBuildError(f"blob {digest} of {self.registry}/{repository} does not match its digest")
        return resp.content

    def download_blob(self, repository: str, digest: str, dest: Path) -> Path:
        """Stream a blob to ``dest``, verifying its digest."""
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=_scope(repository, "pull"), stream=True)
        try:
            if resp.status_code == 404:
                raise ImageNotFound(f"blob {digest} of {self.registry}/{repository} not found")
            hasher = hashlib.sha256()
            with dest.open("wb") as out:
                for chunk in resp.iter_bytes(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
        finally:
            resp.close()
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise ImageBuildError(f"blob {digest} of {self.registry}/{repository} does not match its digest")
        return dest

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; ``True`` when the registry mounted it (201)."""
        scope = f"{_scope(repository, 'pull,push')} {_scope(from_repository, 'pull')}"
        resp = self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scope=scope,
            params={"mount": digest, "from": from_repository},
            ok=(201, 202),
        )
        if resp.status_code == 202 and resp.headers.get("location"):  # not mounted: cancel the session
            self.request("DELETE", resp.headers["location"], scope=scope, ok=(200, 202, 204))
        return resp.status_code == 201

    def push_blob(self, repository: str, digest: str, source: bytes | Path) -> bool:
        """Upload a blob unless the registry has it; ``True`` when it was uploaded."""
        if self.blob_exists(repository, digest):
            return False
        scope = _scope(repository, "pull,push")
        resp = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope, ok=(202,))
        location = resp.headers.get("location")
        if resp.status_code == 404 or not location:
            raise ImageBuildError(f"registry {self.registry} did not start an upload for {repository}")
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        content = source if isinstance(source, bytes) else (lambda: _read_file(source))
        sep = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            scope=scope,
            content=content,
            ok=(201,),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        return True

    def put_manifest(self, repository: str, ref: str, body: bytes, media_type: str) -> str:
        """Store a manifest under a tag (or digest); returns its digest."""
        resp = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{ref}",
            scope=_scope(repository, "pull,push"),
            content=body,
            headers={"Content-Type": media_type},
            ok=(201,),
        )
        if resp.status_code == 404:
            raise ImageBuildError(
                f"registry {self.registry} refused manifest {repository}:{ref}: {_error_detail(resp)}"
            )
        return resp.headers.get("docker-content-digest") or sha256_digest(body)


def _scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def _read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _error_detail(resp: httpx.Response) -> str:
    import httpx

    try:
        resp.read()
        errors = resp.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError, httpx.HTTPError):
        return ""

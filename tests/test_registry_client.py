"""The OCI distribution client against real registries (Debian docker-registry on
127.0.0.1): blobs, manifests, mounts, Basic auth from explicit credentials and from the
docker config, and the one-line errors for refused auth, missing images and dead servers."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from flyte_deploy.builders.registry import (
    DOCKER_HUB,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Credentials,
    ImageNotFound,
    Reference,
    RegistryAuthError,
    RegistryClient,
    RegistryUnreachable,
    docker_config_credentials,
    sha256_digest,
)
from tests.fixtures.processes import free_port

pytestmark = pytest.mark.servers


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("python:3.11", (DOCKER_HUB, "library/python", "3.11", None)),
        ("docker.io/org/app", (DOCKER_HUB, "org/app", "latest", None)),
        ("127.0.0.1:5000/team/app:v1", ("127.0.0.1:5000", "team/app", "v1", None)),
        ("localhost/app@sha256:" + "a" * 64, ("localhost", "app", None, "sha256:" + "a" * 64)),
        ("ghcr.io/org/app:1.0", ("ghcr.io", "org/app", "1.0", None)),
    ],
)
def test_references_are_normalised(uri, expected):
    ref = Reference.parse(uri)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


def test_bad_references_are_rejected():
    from flyte_deploy import ImageBuildError

    with pytest.raises(ImageBuildError, match="bad repository name 'Upper/Case'"):
        Reference.parse("127.0.0.1:5000/Upper/Case:1")


def _push_image(client: RegistryClient, repository: str, tag: str) -> tuple[bytes, bytes, str]:
    layer = os.urandom(4096)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    assert client.push_blob(repository, sha256_digest(layer), layer) is True
    assert client.push_blob(repository, sha256_digest(layer), layer) is False  # already there: skipped
    client.push_blob(repository, sha256_digest(config), config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(layer), "size": len(layer)}],
        }
    ).encode()
    digest = client.put_manifest(repository, tag, manifest, OCI_MANIFEST)
    return layer, manifest, digest


def test_push_and_pull_round_trip(registry, tmp_path):
    with RegistryClient(registry.address) as client:
        client.ping()
        assert client.manifest_digest("rt/app", "v1") is None
        layer, manifest, digest = _push_image(client, "rt/app", "v1")
        assert digest == sha256_digest(manifest)
        assert client.manifest_digest("rt/app", "v1") == digest
        body, media_type, got = client.get_manifest("rt/app", "v1")
        assert (body, media_type, got) == (manifest, OCI_MANIFEST, digest)
        assert client.get_blob("rt/app", sha256_digest(layer)) == layer
        path = client.download_blob("rt/app", sha256_digest(layer), tmp_path / "blob")
        assert path.read_bytes() == layer
        # a cross-repository mount makes the blob appear in another repository without upload
        assert client.mount_blob("rt/other", sha256_digest(layer), "rt/app") is True
        assert client.blob_exists("rt/other", sha256_digest(layer))
    # skopeo, an independent client, sees the same manifest digest
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{registry.address}/rt/app:v1"],
        check=True,
        capture_output=True,
    ).stdout
    assert sha256_digest(out) == digest


def test_missing_manifest_is_image_not_found(registry):
    with (
        RegistryClient(registry.address) as client,
        pytest.raises(ImageNotFound, match=f"^image {registry.address}/nothing/here:v9 not found in the registry$"),
    ):
        client.get_manifest("nothing/here", "v9")


def test_unreachable_registry_is_one_line():
    address = f"127.0.0.1:{free_port()}"
    with RegistryClient(address) as client, pytest.raises(RegistryUnreachable) as info:
        client.ping()
    assert str(info.value).startswith(f"registry {address} is unreachable (http://{address}):")
    assert "\n" not in str(info.value)


def test_auth_registry_without_credentials_says_so(auth_registry, tmp_path):
    with (
        RegistryClient(auth_registry.address, docker_config=tmp_path / "none.json") as client,
        pytest.raises(RegistryAuthError, match="requires credentials and none are configured"),
    ):
        client.ping()


def test_auth_registry_refuses_a_wrong_password_without_leaking_it(auth_registry, tmp_path):
    creds = Credentials(auth_registry.username, "wrong-password-123")
    with RegistryClient(auth_registry.address, credentials=creds) as client, pytest.raises(RegistryAuthError) as info:
        client.ping()
    assert str(info.value) == f"registry {auth_registry.address} refused authentication (user 'flyte')"
    assert "wrong-password-123" not in repr(creds) and "wrong-password-123" not in str(info.value)


def test_auth_registry_accepts_explicit_credentials(auth_registry):
    creds = Credentials(auth_registry.username, auth_registry.password)
    with RegistryClient(auth_registry.address, credentials=creds) as client:
        _, _, digest = _push_image(client, "auth/app", "v1")
        assert client.manifest_digest("auth/app", "v1") == digest


def test_credentials_come_from_the_docker_config(auth_registry, tmp_path, monkeypatch):
    token = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"http://{auth_registry.address}": {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert docker_config_credentials(auth_registry.address) == Credentials(
        auth_registry.username, auth_registry.password
    )
    assert docker_config_credentials("other.example:5000") is None
    with RegistryClient(auth_registry.address) as client:
        _, _, digest = _push_image(client, "auth/fromconfig", "v1")
        assert client.manifest_digest("auth/fromconfig", "v1") == digest


def test_credential_helpers_are_asked(auth_registry, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fdtest"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'printf \'{{"ServerURL":"%s","Username":"{auth_registry.username}",'
        f'"Secret":"{auth_registry.password}"}}\' "$server"\n'
    )
    helper.chmod(0o755)
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {auth_registry.address: "fdtest"}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    with RegistryClient(auth_registry.address) as client:
        client.ping()
        assert client.credentials == Credentials(auth_registry.username, auth_registry.password)


def test_bearer_token_auth(token_registry):
    creds = Credentials(token_registry.username, token_registry.password)
    with RegistryClient(token_registry.address, credentials=creds) as client:
        _, manifest, digest = _push_image(client, "token/app", "v1")
        assert client.get_manifest("token/app", "v1")[2] == digest
    scopes = [scope for r in token_registry.issuer.requests if r["user"] for scope in r["scope"]]
    assert "repository:token/app:pull,push" in scopes and "repository:token/app:pull" in scopes


def test_bearer_token_auth_refused(token_registry):
    with (
        RegistryClient(token_registry.address, credentials=Credentials("flyte", "bad-token-pw")) as client,
        pytest.raises(
            RegistryAuthError,
            match=f"^registry {token_registry.address} refused authentication"
            r" \(user 'flyte'\)$",
        ),
    ):
        client.manifest_digest("token/app", "v1")

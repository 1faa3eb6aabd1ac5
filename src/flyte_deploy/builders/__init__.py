"""Image builders: ``oci`` (daemonless, ``builders.oci``) and ``docker`` (Docker Engine SDK,
``builders.docker``), plus what they share: the registry client (``builders.registry``),
reproducible layers (``builders.layers``), Python content (``builders.python``) and the
generated Dockerfile (``builders.dockerfile``).

Configuration keys read here:

* ``image.registry``: where built images are pushed (``host[:port][/prefix]``);
* ``image.base_registry``: a Docker Hub mirror for bases named without a registry;
* ``image.insecure_registries``: registries spoken to over plain HTTP (loopback always is);
* ``image.registry_username`` / ``image.registry_password``: credentials for ``image.registry``
  (otherwise the docker config's are used).

The docker builder talks to the daemon of ``DOCKER_HOST`` (or the default socket).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from .registry import Credentials, ImageNotFound, Reference, RegistryClient

if TYPE_CHECKING:
    from ..config import Config
    from ..session import DeploySession


def registry_client(config: Config, registry: str) -> RegistryClient:
    """A client for ``registry``; explicit credentials apply to ``image.registry`` only."""
    credentials = None
    target = str(config.get("image.registry") or "").split("/", 1)[0]
    username = config.get("image.registry_username")
    if username and registry == target:
        credentials = Credentials(str(username), str(config.get("image.registry_password") or ""))
    return RegistryClient(
        registry, credentials=credentials, insecure_registries=tuple(config.get_list("image.insecure_registries"))
    )


def existing_digest(config: Config, uri: str) -> str | None:
    """The manifest digest of ``uri`` when its registry already has it, else ``None``."""
    ref = Reference.parse(uri)
    with registry_client(config, ref.registry) as client:
        return client.manifest_digest(ref.repository, ref.ref)


def require_base(config: Config, uri: str) -> None:
    """Raise ``ImageNotFound`` (one line) unless the base image ``uri`` is in its registry."""
    ref = Reference.parse(uri)
    with registry_client(config, ref.registry) as client:
        if client.manifest_digest(ref.repository, ref.ref) is None:
            raise ImageNotFound(f"base image {uri} not found in registry {ref.registry}")


def report(session: DeploySession, environment: str, message: str) -> None:
    """One progress line for one image (builds run concurrently, one line per step);
    silent with ``quiet``."""
    if session.config.get("quiet"):
        return
    session.console.print(
        f"[bold]image[/bold] [cyan]{environment}[/cyan]: {escape(message)}", highlight=False, soft_wrap=True
    )

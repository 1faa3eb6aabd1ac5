"""Built-in ``build_image``: dispatch to the image builder named by ``image.builder``.

Builders come from ``register_image_builders`` and ``image.builder`` is resolved when the
session opens (``selection.py``): this plugin offers ``docker`` (Docker Engine SDK, chosen
by ``auto`` when a daemon answers) and ``oci`` (daemonless, the ``auto`` fallback);
plugins add more. ``auto`` picks the available builder with the lowest
``auto_priority``. A prebuilt image (``Image.from_base``) is used as is; an image with no
registry is not built and says so. Every build prints progress lines per image.
"""

from __future__ import annotations

from ..builders import docker as docker_builder
from ..builders import oci as oci_builder
from ..builders import report
from ..errors import FlyteDeployError, ImageBuildError
from ..hookspecs import hookimpl
from ..image import Image
from ..sdk import TaskEnvironment
from ..selection import AUTO
from ..session import DeploySession
from ..types import ImageBuilder, ImageRef


@hookimpl
def register_image_builders() -> list[ImageBuilder]:
    return [docker_builder.BUILDER, oci_builder.BUILDER]


def select_builder(session: DeploySession) -> ImageBuilder:
    """The builder ``image.builder`` names (checked when the session opened), or for
    ``auto`` the available one with the lowest ``auto_priority``."""
    builders = session.selection.image_builders
    if session.selection.image_builder != AUTO:
        return builders[session.selection.image_builder]
    candidates = sorted(
        (b for b in builders.values() if b.auto_priority is not None), key=lambda b: b.auto_priority or 0
    )
    for builder in candidates:
        if builder.available():
            return builder
    raise ImageBuildError(
        "no image builder is available here (tried: "
        + (", ".join(b.name for b in candidates) or "none registered")
        + ")"
    )


@hookimpl(trylast=True)
def build_image(session: DeploySession, environment: TaskEnvironment, image: Image) -> ImageRef:
    if image.prebuilt:
        return ImageRef(environment=environment.name, uri=image.uri, builder="-", note="prebuilt")
    if not image.registry:
        return ImageRef(
            environment=environment.name, uri=image.uri, builder="-", note="not built: no image.registry configured"
        )
    if image.unbuildable:
        raise ImageBuildError(
            f"environment {environment.name}: image {image.uri} cannot be built here:"
            f" {image.unbuildable}; build it elsewhere and pass --image {environment.name}=URI"
        )
    builder = select_builder(session)
    try:
        return builder.build(session, environment.name, image)
    except FlyteDeployError as exc:
        report(session, environment.name, f"failed: {str(exc).splitlines()[0]}")
        raise

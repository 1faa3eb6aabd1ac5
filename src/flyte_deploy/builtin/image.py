"""Built-in ``build_image``: dispatch to the image builder named by ``image.builder``.

Builders come from ``register_image_builders``: this plugin offers ``docker`` (Docker
Engine SDK, chosen by ``auto`` when a daemon answers) and ``oci`` (daemonless, the ``auto``
fallback); plugins add more. ``auto`` picks the available builder with the lowest
``auto_priority``. A prebuilt image (``Image.from_base``) is used as is; an image with no
registry is not built and says so. Every build prints progress lines per image.
"""

from __future__ import annotations

from ..builders import docker as docker_builder
from ..builders import oci as oci_builder
from ..builders import report
from ..errors import FlyteDeployError, ImageBuildError, PluginError, UsageError
from ..hookspecs import hookimpl
from ..image import Image
from ..sdk import TaskEnvironment
from ..session import DeploySession
from ..types import ImageBuilder, ImageRef


@hookimpl
def register_image_builders() -> list[ImageBuilder]:
    return [docker_builder.BUILDER, oci_builder.BUILDER]


def image_builders(session: DeploySession) -> dict[str, ImageBuilder]:
    """Every registered builder by name; two with one name is a ``PluginError``."""
    builders: dict[str, ImageBuilder] = {}
    for batch in session.hook.register_image_builders():
        for builder in batch:
            if not isinstance(builder, ImageBuilder):
                raise PluginError(f"register_image_builders returned {builder!r}, not an ImageBuilder")
            if builder.name in builders:
                raise PluginError(f"two image builders are named {builder.name!r}")
            builders[builder.name] = builder
    return builders


def select_builder(session: DeploySession) -> ImageBuilder:
    name = str(session.config.get("image.builder"))
    builders = image_builders(session)
    if name == "auto":
        candidates = sorted((b for b in builders.values() if b.auto_priority is not None),
                            key=lambda b: b.auto_priority)
        for builder in candidates:
            if builder.available():
                return builder
        raise ImageBuildError("no image builder is available here (tried: "
                              + (", ".join(b.name for b in candidates) or "none registered") + ")")
    if name not in builders:
        raise UsageError(f"image.builder {name!r} is unknown; available: {', '.join(sorted(builders)) or 'none'}")
    return builders[name]


@hookimpl(trylast=True)
def build_image(session: DeploySession, environment: TaskEnvironment, image: Image) -> ImageRef:
    if image.prebuilt:
        return ImageRef(environment=environment.name, uri=image.uri, builder="-", note="prebuilt")
    if not image.registry:
        return ImageRef(environment=environment.name, uri=image.uri, builder="-",
                        note="not built: no image.registry configured")
    if image.unbuildable:
        raise ImageBuildError(f"environment {environment.name}: image {image.uri} cannot be built here:"
                              f" {image.unbuildable}; build it elsewhere and pass --image {environment.name}=URI")
    builder = select_builder(session)
    try:
        return builder.build(session, environment.name, image)
    except FlyteDeployError as exc:
        report(session, environment.name, f"failed: {str(exc).splitlines()[0]}")
        raise

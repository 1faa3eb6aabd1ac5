"""A ``flyte.Image`` as our ``flyte_deploy.image.Image`` spec, pinned to the SDK's URI.

* ``"auto"`` (or no image) is ``flyte.Image.from_debian_base()``, as in the SDK.
* A string, an ``Image.from_base`` image and the released default images are used as is
  (prebuilt: the SDK never builds them either).
* A clone with layers keeps the SDK's registry, name and tag (``flyte.Image.uri``): our
  builders build its layers on its base and push exactly that URI; a configured
  ``image.registry`` fills in a missing registry, as the SDK's own configured registry does.
  The flyte base images hold the SDK's runtime, so ours is not installed.
* A layer our builders do not have (uv/poetry/pixi projects, wheels, build secrets, pip
  options, single files), or an ``Image.from_ref_name`` image, makes a spec marked
  ``unbuildable``: the build phase refuses it, naming the environment and the reason,
  before anything is registered, unless ``--image NAME=URI`` replaces it.
"""

from __future__ import annotations

from typing import Any

from ...image import Image, Layer
from . import sdk_internals

#: our builders build a single platform; this one when the SDK asks for several
PREFERRED_PLATFORM = "linux/amd64"


def image_spec(native: Any) -> Image:
    """Our spec for the image ``native`` (``flyte.Image``, a URI string, ``"auto"`` or None)."""
    import flyte

    if native is None or native == "auto":
        native = flyte.Image.from_debian_base()
    if isinstance(native, str):
        return Image.from_base(native)
    ref_name = sdk_internals.image_ref_name(native)
    if ref_name is not None:
        return Image(
            name=ref_name,
            pinned_tag="unresolved",
            install_runtime=False,
            unbuildable=f"it is Image.from_ref_name({ref_name!r}): pass --image {ref_name}=URI",
        )
    if not sdk_internals.image_is_built(native):
        return Image.from_base(native.uri)
    layers: list[Layer] = []
    problems: list[str] = []
    for kind, values, problem in sdk_internals.image_layers(native):
        if problem:
            problems.append(f"layer {kind}: {problem}")
        elif kind != "dockerignore":
            layers.append(Layer(kind, values))
    if any(kind == "dockerignore" for kind, _, _ in sdk_internals.image_layers(native)) and any(
        layer.kind == "source" for layer in layers
    ):
        problems.append("a .dockerignore filters its source folders, which our builders copy whole")
    platforms = tuple(native.platform)
    uri = native.uri
    return Image(
        base=native.base_image,
        dockerfile=str(native.dockerfile) if native.dockerfile else None,
        python_version=".".join(str(part) for part in native.python_version[:2]),
        layers=tuple(layers),
        registry=native.registry,
        name=native.name,
        platform=PREFERRED_PLATFORM if PREFERRED_PLATFORM in platforms or not platforms else platforms[0],
        install_runtime=False,
        pinned_tag=uri.rsplit(":", 1)[1],
        unbuildable="; ".join(problems) or None,
    )


__all__ = ["image_spec"]

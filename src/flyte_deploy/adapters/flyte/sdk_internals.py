"""Every use of the Flyte SDK's non-public API, in one place, pinned to the tested range.

The public API (``flyte.extras.serialize``, ``flyte.models.SerializationContext`` and
``CodeBundle``, ``flyte.Image.uri``) covers serialization itself. What ``flyte deploy`` adds
around it, and what an image spec is made of, are only reachable through these names;
``tests/test_flyte_sdk_internals.py`` fails when an SDK release moves or changes them.
Nothing here re-implements the SDK: each function calls, reads or constructs the SDK's
own object.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: the flyte releases this module is tested with (also the ``flyte-deploy[flyte]`` extra)
SUPPORTED_RANGE = ">=2.12,<2.13"


def sdk_version() -> str:
    import flyte

    return str(flyte.__version__)


def unsupported_version() -> str | None:
    """Why the installed flyte is outside ``SUPPORTED_RANGE``, or None when it is inside."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(sdk_version())
    except InvalidVersion:
        return f"flyte {sdk_version()} has no release version"
    if SpecifierSet(SUPPORTED_RANGE).contains(version, prereleases=True):
        return None
    return f"flyte {version} is installed; the flyte adapter supports flyte{SUPPORTED_RANGE}"


# -- deploy-time additions that flyte deploy makes to the serialized spec -------------------


def image_cache(lookup: dict[str, str]) -> Any:
    """The SDK's ``ImageCache`` mapping environment names to image URIs (what
    ``--image-cache`` carries to the runtime)."""
    from flyte._internal.image_cache import ImageCache

    return ImageCache(image_lookup=dict(lookup))


def local_sys_paths(root_dir: Path) -> dict[str, str]:
    """The ``_F_SYS_PATH`` env var: the sys.path entries under ``root_dir``, relative to it."""
    from flyte._utils.module_loader import local_sys_paths_env

    return dict(local_sys_paths_env(root_dir))


def with_local_sys_paths(task: Any, root_dir: Path) -> Any:
    """A copy of ``task`` whose env vars carry ``local_sys_paths``, as ``flyte deploy``
    registers it; the runtime re-adds them to its sys.path."""
    task_copy = copy.copy(task)
    task_copy.env_vars = {**(task.env_vars or {}), **local_sys_paths(root_dir)}
    return task_copy


def add_deploy_documentation(spec: Any, task: Any) -> None:
    """What ``flyte deploy`` (not its dry run) adds to a serialized spec: the environment's
    description, the docstring's descriptions of inputs and outputs, and the
    documentation entity's short and long descriptions (the source link is ours)."""
    from flyte._deploy import _update_interface_inputs_and_outputs_docstring
    from flyte._utils.description_parser import parse_description
    from flyteidl2.task import task_definition_pb2

    env = task.parent_env() if task.parent_env else None
    if env is not None and env.description:
        spec.environment.description = env.description
    spec.task_template.interface.CopyFrom(
        _update_interface_inputs_and_outputs_docstring(spec.task_template.interface, task.native_interface)
    )
    docstring = task.interface.docstring
    short = parse_description(docstring.short_description, 255) if docstring and docstring.short_description else None
    long = parse_description(docstring.long_description, 2048) if docstring and docstring.long_description else None
    spec.documentation.CopyFrom(task_definition_pb2.DocumentationEntity(short_description=short, long_description=long))


def task_triggers(task: Any, spec: Any) -> list[Any]:
    """The ``TaskTrigger`` messages of the task's triggers, as ``flyte deploy`` sends them
    with ``DeployTask`` (inputs inline: offloading them needs a control plane)."""
    if not task.triggers:
        return []
    from flyte._internal.runtime.trigger_serde import to_task_trigger

    async def convert() -> list[Any]:
        return [
            await to_task_trigger(
                t=trigger,
                task_name=task.name,
                task_inputs=spec.task_template.interface.inputs,
                task_default_inputs=list(spec.default_inputs),
            )
            for trigger in task.triggers
        ]

    return asyncio.run(convert())


# -- apps: the SDK has no public app serializer ---------------------------------------------


def app_declaring_line(app: Any) -> int | None:
    """The line of the user's code that constructed the ``AppEnvironment`` ``app`` (the
    frame the SDK records for its resolver), or None when it recorded none."""
    frame = app._caller_frame
    return int(frame.lineno) if frame is not None else None


def translate_app(app: Any, context: Any) -> Any:
    """The flyteidl2 ``app.App`` of ``app`` under the ``SerializationContext`` ``context``,
    from the SDK's own translation (what ``flyte deploy`` sends to ``CreateApp``). The SDK
    prints ``VERSION: ...`` to stdout while doing it; that line is swallowed, so stdout
    stays the command's own (``--output json``). Its warnings about the git repository of
    the current directory are dropped too: they concern the tree link it puts in
    ``metadata.source_code``, which the adapter replaces."""
    import contextlib
    import io
    import logging

    from flyte.app._runtime import translate_app_env_to_idl

    def not_about_git(record: logging.LogRecord) -> bool:
        return Path(record.pathname).parent.name != "git"

    sdk_logger = logging.getLogger("flyte")
    sdk_logger.addFilter(not_about_git)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return translate_app_env_to_idl(app, context)
    finally:
        sdk_logger.removeFilter(not_about_git)


def add_app_local_sys_paths(spec: Any, root_dir: Path) -> None:
    """What ``flyte deploy`` (whose ``flyte.init`` syncs local sys paths by default) adds to
    an app's container env: the ``local_sys_paths`` entry, set in place when the app
    declares the variable itself, else appended (the SDK's ``dict.update`` order)."""
    if not spec.spec.HasField("container"):
        return
    env = spec.spec.container.env
    for key, value in local_sys_paths(root_dir).items():
        entry = next((e for e in env if e.key == key), None)
        if entry is None:
            entry = env.add(key=key)
        entry.value = value


# -- reading an image spec ----------------------------------------------------------------


def image_is_built(image: Any) -> bool:
    """Whether the SDK builds this image (a clone with layers) rather than using its base
    URI as is (``Image.from_base``, the released default images)."""
    return bool(image._is_cloned)


def image_ref_name(image: Any) -> str | None:
    """The name of an ``Image.from_ref_name`` image (resolved only by ``--image NAME=URI``)."""
    return image._ref_name


def image_layers(image: Any) -> Iterator[tuple[str, tuple[Any, ...], str | None]]:
    """The image's layers as ``(kind, values, why not buildable)``: kinds are our
    ``flyte_deploy.image.Layer`` kinds (pip, requirements, apt, commands, env, workdir,
    source, dockerignore), or the SDK's class name for a layer we cannot build (then the
    reason is set)."""
    from flyte import _image as layers

    for layer in image._layers:
        kind = type(layer)
        secrets = getattr(layer, "secret_mounts", None)
        if secrets:
            yield kind.__name__, (), "it mounts build secrets"
        elif kind is layers.Requirements:
            yield "requirements", (str(layer.file),), _pip_options(layer)
        elif kind is layers.PipPackages:
            yield "pip", tuple(layer.packages or ()), _pip_options(layer)
        elif kind is layers.AptPackages:
            yield "apt", tuple(layer.packages), None
        elif kind is layers.Commands:
            yield "commands", tuple(layer.commands), None
        elif kind is layers.Env:
            yield "env", tuple(tuple(pair) for pair in layer.env_vars), None
        elif kind is layers.WorkDir:
            yield "workdir", (layer.workdir,), None
        elif kind is layers.CopyConfig and layer.path_type == 1:
            yield "source", (str(layer.src), layer.dst), None
        elif kind is layers.DockerIgnore:
            yield "dockerignore", (layer.path,), None
        else:
            yield kind.__name__, (), "flyte-deploy's builders have no such layer"


def _pip_options(layer: Any) -> str | None:
    if layer.index_url or layer.extra_index_urls or layer.pre or layer.extra_args:
        return "it sets pip options (index URLs, --pre, extra arguments)"
    return None


__all__ = [
    "SUPPORTED_RANGE",
    "add_app_local_sys_paths",
    "add_deploy_documentation",
    "app_declaring_line",
    "image_cache",
    "image_is_built",
    "image_layers",
    "image_ref_name",
    "local_sys_paths",
    "sdk_version",
    "task_triggers",
    "translate_app",
    "unsupported_version",
    "with_local_sys_paths",
]

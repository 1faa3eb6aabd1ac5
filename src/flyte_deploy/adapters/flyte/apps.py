"""A flyte app's ``app.App``, and what its deployed version depends on.

The SDK has no public app serializer, so ``serialize_app`` calls its own translation
(``sdk_internals.translate_app``, what ``flyte deploy`` sends to ``CreateApp``) under the
very ``SerializationContext`` the plan's tasks get (``serialize.serialization_context``:
version, project/domain/org, our bundle, the image cache with the app's own built image,
the root dir). Around it, as for tasks: the local sys paths ``flyte deploy`` adds to the
container env, the ``APP_VERSION_LABEL`` label with the deploy version, and our source link
in place of the SDK's (docs/serialization.md, Apps).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import SerializationError
from ...gitstatus import PUBLIC_FORGES, session_cache
from ...session import DeploySession
from ...types import APP_VERSION_LABEL, DeployPlan, SerializedApp
from . import sdk_internals
from .serialize import serialization_context, settings

if TYPE_CHECKING:
    from .views import FlyteApp

#: the app's callables, hashed by their source (their reprs name only the function)
_HOOKS = ("_server", "_on_startup", "_on_shutdown")


def source_link(session: DeploySession, app: FlyteApp) -> str | None:
    """The github.com/gitlab.com link to the line constructing ``app`` (with the line anchor
    only in a clean tree), as the built-in ``attach_source_link`` makes for a task's ``def``
    line; None when its file is in no such repository."""
    if app.source_file is None:
        return None
    found = session_cache(session).file_in_repository(app.source_file)
    if found is None:
        return None
    status, path = found
    if status.remote is None or status.remote.host not in PUBLIC_FORGES:
        return None
    return status.build_url(path, app.line)


def serialize_app(session: DeploySession, app: FlyteApp, plan: DeployPlan) -> SerializedApp:
    """The ``SerializedApp`` of ``app``; a ``SerializationError`` naming its file:line when
    the SDK cannot serialize it."""
    config = session.config
    project, domain, org = str(config.get("project")), str(config.get("domain")), str(config.get("org") or "")
    context = serialization_context(session, plan, project, domain, org)
    try:
        spec = sdk_internals.translate_app(app.native, context)
    except Exception as exc:  # noqa: BLE001 - the SDK raises ValueError, NotImplementedError, its own errors...
        raise SerializationError(
            f"{app.location}: app {app.name}: the flyte SDK cannot serialize it: {type(exc).__name__}: {exc}"
        ) from None
    sdk_internals.add_app_local_sys_paths(spec, plan.root_dir)
    spec.metadata.labels[APP_VERSION_LABEL] = str(plan.version)
    spec.metadata.ClearField("source_code")
    link = source_link(session, app)
    if link:
        spec.metadata.source_code.link = link
    return SerializedApp(environment=app.name, spec=spec)


def _source(func: Any) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return func.__code__.co_code.hex()


def app_identity(app: FlyteApp, root_dir: Path) -> dict[str, Any]:
    """What a deployed version of ``app`` depends on besides the bundle and the image URIs:
    the settings of the SDK's object (port, scaling, resources, secrets, env vars, links,
    parameters, timeouts, ...), the source of its server, startup and shutdown functions,
    its declaring module relative to the root dir and the import roots the runtime re-adds.
    The app's module itself is in the bundle, whose digest the version hashes."""
    native = app.native
    hooks = {name: _source(getattr(native, name)) for name in _HOOKS if getattr(native, name, None) is not None}
    try:
        module = Path(app.source_file or "").resolve().relative_to(root_dir.resolve()).as_posix()
    except ValueError:
        module = Path(app.source_file or "").name
    return {
        "sdk": "flyte",
        "kind": "app",
        "type": f"{type(native).__module__}.{type(native).__qualname__}",
        "flyte": sdk_internals.sdk_version(),
        "settings": settings(native, exclude=_HOOKS),
        "hooks": hooks,
        "module": module,
        "depends_on": sorted(d.name for d in app.depends_on),
        "sys_paths": sdk_internals.local_sys_paths(root_dir),
    }


__all__ = ["app_identity", "serialize_app", "source_link"]

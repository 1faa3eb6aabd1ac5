"""The ``flyte`` adapter: deploys ``flyte.TaskEnvironment`` and ``flyte.app.AppEnvironment``
objects (and subclasses) as written.

Registered as the built-in plugin ``flyte`` when the Flyte SDK is importable; it imports
``flyte`` only once the user's code has. Discovery finds the SDK's environments and apps
through ``find_environments``/``adapt_environment`` (views in ``views``); ``serialize_task``
asks the SDK's serializer for each flyte task's spec (``serialize``) and ``serialize_app``
its app translation for each app (``apps``); an environment's or app's image is our spec
pinned to the SDK's URI (``images``). Every use of the SDK's non-public API is in
``sdk_internals``, pinned to ``SUPPORTED_RANGE``.
"""

from __future__ import annotations

import sys
from types import ModuleType

from ...environments import Environment, Task
from ...errors import UsageError
from ...hookspecs import hookimpl
from ...session import DeploySession
from ...types import DeployPlan, SerializedApp, SerializedTask
from . import apps, sdk_internals
from .serialize import serialize
from .views import SDK, FlyteApp, FlyteTask, is_flyte_environment, view_of


def check_supported() -> None:
    """A ``UsageError`` when the installed flyte is outside the tested range."""
    problem = sdk_internals.unsupported_version()
    if problem:
        raise UsageError(f"{problem} (pip install 'flyte-deploy[flyte]')")


@hookimpl
def find_environments(module: ModuleType) -> dict[str, Environment]:
    if "flyte" not in sys.modules:
        return {}  # the user's code never imported flyte: it defines no flyte environment
    found: dict[str, Environment] = {
        var: view_of(value) for var, value in vars(module).items() if is_flyte_environment(value)
    }
    if found:
        check_supported()
    return found


@hookimpl
def adapt_environment(obj: object) -> Environment | None:
    if not is_flyte_environment(obj):
        return None
    check_supported()
    return view_of(obj)


@hookimpl
def serialize_task(
    session: DeploySession, environment: Environment, task: Task, plan: DeployPlan
) -> SerializedTask | None:
    if getattr(task, "sdk", None) != SDK:
        return None
    assert isinstance(task, FlyteTask)
    return serialize(session, task, plan)


@hookimpl
def serialize_app(session: DeploySession, environment: Environment, plan: DeployPlan) -> SerializedApp | None:
    if not isinstance(environment, FlyteApp):
        return None
    return apps.serialize_app(session, environment, plan)

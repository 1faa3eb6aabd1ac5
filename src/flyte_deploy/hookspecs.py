"""Every hook of a deploy, in lifecycle order.

Kinds of hook:

* *phase* hooks are ``firstresult``: the first non-``None`` result wins. Built-in defaults
  are registered first and marked ``trylast``, so any plugin that returns a result
  overrides them, and one that returns ``None`` passes.
* *collecting* hooks gather one result per plugin (``check_plan``, ``register_image_builders``).
* *historic* hooks (``add_hookspecs``, ``configure``) are replayed to plugins registered late.
* policy plugins wrap phases with ``wrapper=True`` or implement ``check_plan``.

The order of calls for one deploy is documented in ``docs/plugins/lifecycle.md`` and
enforced by ``tests/test_lifecycle_order.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pluggy

if TYPE_CHECKING:
    from types import ModuleType

    from .config import Config
    from .environments import Environment
    from .image import Image
    from .pluginmanager import DeployPluginManager
    from .sdk import Task, TaskEnvironment
    from .session import DeploySession
    from .types import (
        Bundle, DeployPlan, DeployRequest, DeployResult, Discovery, ImageRef, Registration,
        SerializedTask, SourceLink, Violation,
    )

PROJECT = "flyte_deploy"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- bootstrap ------------------------------------------------------------------------


@hookspec(historic=True)
def add_hookspecs(pluginmanager: "DeployPluginManager") -> None:
    """Add new hookspecs for other plugins to implement (``pluginmanager.add_hookspecs(module)``).

    Called once per plugin as it is registered (historic: late plugins see it too).

    :returns: nothing.
    """


@hookspec(historic=True)
def configure(config: "Config") -> None:
    """Set a plugin up once the configuration is complete, before any deploy phase.

    Historic: a plugin registered later (pyproject, ``deployconf.py``, policy) is called
    on registration. Register sub-plugins with ``config.pluginmanager.register``.

    :param config: the resolved configuration (``config.get(key)``, ``config.plugin_config(name)``).
    :returns: nothing.
    """


@hookspec
def unconfigure(config: "Config") -> None:
    """Release what ``configure`` set up. Always called once the command ends, even on errors.

    :returns: nothing.
    """


@hookspec
def register_image_builders() -> "Sequence[Any]":
    """Offer image builders, selected by name with ``image.builder`` in the configuration.

    Collecting hook: every plugin may return a list of ``ImageBuilder`` objects (see
    ``flyte_deploy.builders``). Two builders with one name are an error naming both plugins.

    :returns: a list of builders (may be empty).
    """


# -- reporting ------------------------------------------------------------------------


@hookspec
def deploy_start(session: "DeploySession", plan: "DeployPlan") -> None:
    """Called once before discovery; ``plan.request`` says what the user asked for.

    :returns: nothing.
    """


@hookspec
def phase_finished(session: "DeploySession", phase: str, duration: float, detail: str) -> None:
    """Called after each lifecycle phase with its name, wall time in seconds and a short
    human description of its outcome (for progress displays, telemetry, logs).

    :returns: nothing.
    """


@hookspec
def deploy_finish(session: "DeploySession", result: "DeployResult | None", error: "BaseException | None") -> None:
    """Called once at the end: with the result on success, with the error otherwise.

    :returns: nothing.
    """


# -- the six named phases, plus version, policy, upload and registration ---------------


@hookspec(firstresult=True)
def discover_environments(session: "DeploySession", request: "DeployRequest") -> "Discovery | None":
    """Load the user's files and find ``TaskEnvironment`` objects; select the requested ones.

    First phase. Stops at the first non-None result.

    :param request: mode (file/all/recursive/objects), path and environment variable names.
    :returns: a ``Discovery`` (all environments, the selected ones, the modules imported),
        or ``None`` to let another plugin (ultimately the built-in importer) discover.
        Raise ``DiscoveryError`` naming the file and line at fault.
    """


@hookspec
def find_environments(module: "ModuleType") -> "Mapping[str, Environment]":
    """Find the environments a user module defines, for the built-in discovery.

    Collecting hook: each SDK adapter returns the module variables bound to environments
    of its SDK, by variable name, as objects satisfying ``environments.Environment`` (our
    own SDK's built-in returns ``flyte_deploy.TaskEnvironment`` objects, the ``flyte``
    adapter views of ``flyte.TaskEnvironment`` objects). One SDK object is adapted to one
    view object, however often it is found.

    :returns: variable name to environment (may be empty).
    """


@hookspec(firstresult=True)
def adapt_environment(obj: object) -> "Environment | None":
    """Turn an object given to the Python API (``fd.deploy(env)``) into an environment.

    Stops at the first non-None result.

    :returns: the object's ``environments.Environment`` view, or ``None`` when it is not
        an environment of this plugin's SDK.
    """


@hookspec(firstresult=True)
def resolve_dependencies(
    session: "DeploySession", selected: "Sequence[TaskEnvironment]"
) -> "Sequence[TaskEnvironment] | None":
    """Order the deployment: the selected environments plus the transitive closure of
    their ``depends_on``, each once, dependencies before dependents.

    Called after ``discover_environments``. Stops at the first non-None result.

    :returns: the ordered environments, or ``None`` to defer. Raise ``DependencyError``
        on a cycle (naming it) or on two environments sharing a name.
    """


@hookspec(firstresult=True)
def build_bundle(session: "DeploySession", plan: "DeployPlan") -> "Bundle | None":
    """Package the code every environment of the plan shares into one archive.

    Called after ``resolve_dependencies`` with ``plan.environments``, ``plan.copy_style``,
    ``plan.root_dir`` and ``plan.discovery`` set. Must not upload anything.
    Stops at the first non-None result.

    :returns: a ``Bundle`` (``Bundle(copy_style="none")`` when there is no bundle), or
        ``None`` to defer. Raise ``BundleError`` naming the offending file.
    """


@hookspec(firstresult=True)
def compute_version(session: "DeploySession", plan: "DeployPlan") -> "str | None":
    """Derive the deploy version when the user gave none.

    Called after ``build_bundle`` with ``plan.bundle`` and ``plan.images`` set. Not called
    when ``--version`` is given. Stops at the first non-None result.

    :returns: the version string, or ``None`` to defer.
    """


@hookspec(firstresult=True)
def serialize_task(
    session: "DeploySession", environment: "TaskEnvironment", task: "Task", plan: "DeployPlan"
) -> "SerializedTask | None":
    """Turn one task into the ``TaskSpec`` the backend registers.

    Called for every task of every planned environment after ``compute_version``, with
    ``plan.version``, ``plan.bundle_uri`` and ``plan.images`` set. Stops at the first
    non-None result.

    :returns: a ``SerializedTask``, or ``None`` to defer (e.g. a plugin claiming only some
        task types). Raise ``SerializationError`` naming the task and parameter.
    """


@hookspec(firstresult=True)
def attach_source_link(
    session: "DeploySession", task: "Task", serialized: "SerializedTask"
) -> "SourceLink | None":
    """Find a link from the task back to its source line.

    Called once per serialized task, right after ``serialize_task``. The result's URL is
    stored in the spec's ``documentation.source_code.link``. Stops at the first non-None
    result; when every plugin returns ``None`` the task simply has no link (never an error).

    :returns: a ``SourceLink``, or ``None``.
    """


@hookspec
def check_plan(session: "DeploySession", plan: "DeployPlan") -> "Sequence[Violation]":
    """Police the whole plan before anything is built, uploaded, pushed or registered.

    Collecting hook: every plugin returns a list of ``Violation`` (or an empty list).
    Each violation's ``plugin`` is set to the name of the plugin that returned it. All
    violations of all plugins are reported together and the deploy stops with exit
    code 6. ``flyte-deploy check`` runs everything up to and including this hook.

    :returns: the violations found (possibly empty).
    """


@hookspec(firstresult=True)
def build_image(session: "DeploySession", environment: "TaskEnvironment", image: "Image") -> "ImageRef | None":
    """Make sure the environment's image exists at ``image.uri``, building and pushing it if needed.

    Called after ``check_plan``, for each distinct image, concurrently for independent
    environments. The URI the tasks run is ``image.uri`` (fixed by the spec's content
    hash), so a builder must push there. Stops at the first non-None result.

    :returns: an ``ImageRef``, or ``None`` to defer. Raise ``ImageBuildError`` with the
        one-line cause (and the failing step's log tail).
    """


@hookspec(firstresult=True)
def upload_bundle(session: "DeploySession", bundle: "Bundle", uri: str) -> "str | None":
    """Put the bundle archive at ``uri`` (any fsspec URL), unless it is already there.

    Called after the images are ready and before any registration; not called when the
    copy style is ``none``. Stops at the first non-None result.

    :returns: the URI the bundle is stored at, or ``None`` to defer. Raise ``UploadError``.
    """


@hookspec(firstresult=True)
def register_environment(
    session: "DeploySession", environment: "TaskEnvironment", tasks: "Sequence[SerializedTask]",
    plan: "DeployPlan",
) -> "Sequence[Registration] | None":
    """Register one environment's serialized tasks with the configured backend.

    Called per environment, in deploy order (dependencies first), after the upload.
    Backends check ``session.config.backend`` and return ``None`` when it is not theirs.
    Stops at the first non-None result.

    :returns: one ``Registration`` per task, or ``None`` when this plugin is not the
        selected backend. Raise ``RegistrationError`` naming the task refused.
    """

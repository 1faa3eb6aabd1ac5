"""Every hook of a deploy, in lifecycle order, each declared with its contract.

``@spec(Contract(...))`` (see ``contracts.py``) states once what a hook returns, whether an
answer is required, its kind and whether results are stamped with the plugin's name; the
plugin manager, the typed phase calls (``hookcalls.py``), the hook reference
(docs/plugins/hooks.md) and its meta-test all read it from here.

Kinds of hook:

* *firstresult* phases: the first non-``None`` result wins. Built-in defaults are
  registered first and marked ``trylast``, so any plugin that returns a result
  overrides them, and one that returns ``None`` passes.
* *collecting* hooks call every implementation and gather the results.
* *historic* hooks (``add_hookspecs``, ``configure``) are replayed to plugins registered late.
* policy plugins wrap phases with ``wrapper=True`` or implement ``check_plan``.

The order of calls for one deploy is documented in ``docs/plugins/lifecycle.md`` and
enforced by ``tests/test_lifecycle_order.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pluggy

from .contracts import PROJECT, Contract, Kind, hookspec, spec
from .environments import Environment
from .types import (
    Backend,
    Bundle,
    Discovery,
    ImageBuilder,
    ImageRef,
    Registration,
    SerializedApp,
    SerializedTask,
    SourceLink,
    Violation,
)

if TYPE_CHECKING:
    from types import ModuleType

    from .config import Config
    from .diffing import Diff
    from .environments import Task
    from .image import Image
    from .pluginmanager import DeployPluginManager
    from .session import DeploySession
    from .types import DeployPlan, DeployRequest, DeployResult, PhaseReport

hookimpl = pluggy.HookimplMarker(PROJECT)

#: hooks every implementation of which is called for its effect
NOTHING = Contract("collecting")
PHASE: Kind = "firstresult"

# -- bootstrap ------------------------------------------------------------------------


@spec(Contract("historic"))
def add_hookspecs(pluginmanager: DeployPluginManager) -> None:
    """Add new hookspecs for other plugins to implement (``pluginmanager.add_hookspecs(module)``).

    Called once per plugin as it is registered (historic: late plugins see it too).

    :param pluginmanager: the command's plugin manager.
    :returns: nothing.
    """


@spec(Contract("historic"))
def configure(config: Config) -> None:
    """Set a plugin up once the configuration is complete, before any deploy phase.

    Historic: a plugin registered later is called on registration. Sub-plugins registered
    with ``config.pluginmanager.register(obj)`` are checked, attributed and listed like any
    other plugin.

    :param config: the resolved configuration (``config.get(key)``, ``config.plugin_config(name)``).
    :returns: nothing.
    """


@spec(NOTHING)
def unconfigure(config: Config) -> None:
    """Release what ``configure`` set up. Always called once the command ends, even on errors.

    :param config: the configuration ``configure`` saw.
    :returns: nothing.
    """


@spec(Contract("collecting", (list, tuple), ImageBuilder, stamped=True))
def register_image_builders() -> Sequence[ImageBuilder] | None:
    """Offer image builders, selected by name with ``image.builder`` in the configuration.

    Called once per command, right after ``configure``. Two builders with one name are an
    error naming both plugins; an ``image.builder`` no plugin offers is a usage error.

    :returns: a list of ``ImageBuilder`` (may be empty; ``None`` offers none).
    """


@spec(Contract("collecting", (list, tuple), Backend, stamped=True))
def register_backends() -> Sequence[Backend] | None:
    """Offer deploy backends, selected by name with ``backend`` in the configuration.

    Called once per command, right after ``configure`` and before discovery. Two backends
    with one name are an error naming both plugins; a ``backend`` no plugin offers is a
    usage error listing the known ones.

    :returns: a list of ``Backend`` (may be empty; ``None`` offers none).
    """


# -- reporting ------------------------------------------------------------------------


@spec(NOTHING)
def deploy_start(session: DeploySession, plan: DeployPlan) -> None:
    """Called once before discovery; ``plan.request`` says what the user asked for.

    :param session: the deploy session (``session.backend`` is the selected backend).
    :param plan: the plan, with ``request``, ``root_dir`` and ``copy_style`` set.
    :returns: nothing.
    """


@spec(NOTHING)
def phase_finished(session: DeploySession, report: PhaseReport) -> None:
    """Called once per lifecycle phase, when it passed and when it failed, with its
    ``PhaseReport`` (phase, outcome, duration, detail, error): for progress displays,
    telemetry and logs.

    :param session: the deploy session.
    :param report: how the phase went.
    :returns: nothing.
    """


@spec(NOTHING)
def deploy_finish(session: DeploySession, result: DeployResult | None, error: BaseException | None) -> None:
    """Called once at the end: with the result on success, with the error otherwise.

    :param session: the deploy session.
    :param result: what was deployed, or ``None`` when the deploy failed.
    :param error: the exception that stopped the deploy, or ``None``.
    :returns: nothing.
    """


# -- the six named phases, plus version, policy, upload and registration ---------------


@spec(Contract(PHASE, Discovery, required=True))
def discover_environments(session: DeploySession, request: DeployRequest) -> Discovery | None:
    """Load the user's files and find ``TaskEnvironment`` objects; select the requested ones.

    First phase. Raise ``DiscoveryError`` naming the file and line at fault.

    :param session: the deploy session.
    :param request: mode (file/all/recursive/objects), path and environment variable names.
    :returns: a ``Discovery`` (all environments, the selected ones, the modules imported),
        or ``None`` to let another plugin (ultimately the built-in importer) discover.
    """


@spec(Contract("collecting", Mapping))
def find_environments(module: ModuleType) -> Mapping[str, Environment] | None:
    """Find the environments a user module defines, for the built-in discovery.

    Each SDK adapter returns the module variables bound to environments of its SDK, by
    variable name, as objects satisfying ``environments.Environment`` (our own SDK's
    built-in returns ``flyte_deploy.TaskEnvironment`` objects, the ``flyte`` adapter views of
    ``flyte.TaskEnvironment`` objects). One SDK object is adapted to one view object,
    however often it is found.

    :param module: a module the built-in discovery imported.
    :returns: variable name to environment; ``None`` or an empty mapping when the module
        defines none of this plugin's SDK.
    """


@spec(Contract(PHASE, Environment))
def adapt_environment(obj: object) -> Environment | None:
    """Turn an object given to the Python API (``fd.deploy(env)``) into an environment.

    :param obj: one of the objects passed to ``deploy()``.
    :returns: the object's ``environments.Environment`` view, or ``None`` when it is not
        an environment of this plugin's SDK (an object no plugin adapts is a ``UsageError``).
    """


@spec(Contract(PHASE, (list, tuple), Environment, required=True))
def resolve_dependencies(session: DeploySession, selected: Sequence[Environment]) -> Sequence[Environment] | None:
    """Order the deployment: the selected environments plus the transitive closure of
    their ``depends_on``, each once, dependencies before dependents.

    Called after ``discover_environments``. Raise ``DependencyError`` on a cycle (naming
    it) or on two environments sharing a name.

    :param session: the deploy session.
    :param selected: the environments the user selected.
    :returns: the ordered environments, or ``None`` to defer.
    """


@spec(Contract(PHASE, Bundle, required=True))
def build_bundle(session: DeploySession, plan: DeployPlan) -> Bundle | None:
    """Package the code every environment of the plan shares into one archive.

    Called after ``resolve_dependencies`` with ``plan.environments``, ``plan.copy_style``,
    ``plan.root_dir`` and ``plan.discovery`` set. The environments' ``include`` entries
    (``included_paths()``) belong in the bundle with every copy style. Must not upload
    anything. Raise ``BundleError`` naming the offending file.

    :param session: the deploy session.
    :param plan: the plan so far.
    :returns: a ``Bundle`` (``Bundle(copy_style="none")`` when there is no bundle), or
        ``None`` to defer.
    """


@spec(Contract(PHASE, str, required=True))
def compute_version(session: DeploySession, plan: DeployPlan) -> str | None:
    """Derive the deploy version when the user gave none.

    Called after ``build_bundle`` with ``plan.bundle`` and ``plan.images`` set. Not called
    when ``--version`` is given.

    :param session: the deploy session.
    :param plan: the plan so far.
    :returns: the version string, or ``None`` to defer.
    """


@spec(Contract(PHASE, SerializedTask, required=True))
def serialize_task(
    session: DeploySession, environment: Environment, task: Task, plan: DeployPlan
) -> SerializedTask | None:
    """Turn one task into the ``TaskSpec`` the backend registers.

    Called for every task of every planned environment after ``compute_version``, with
    ``plan.version``, ``plan.bundle_uri`` and ``plan.images`` set. Raise
    ``SerializationError`` naming the task and parameter.

    :param session: the deploy session.
    :param environment: the task's environment.
    :param task: the task to serialize.
    :param plan: the plan so far.
    :returns: a ``SerializedTask``, or ``None`` to defer (e.g. a plugin claiming only some
        task types).
    """


@spec(Contract(PHASE, SerializedApp, required=True))
def serialize_app(session: DeploySession, environment: Environment, plan: DeployPlan) -> SerializedApp | None:
    """Turn one app environment (``environments.is_app``) into the ``app.App`` the backend
    registers.

    Called for every app environment of the plan, in deploy order, in the same phase as
    ``serialize_task`` (so with ``plan.version``, ``plan.bundle_uri`` and ``plan.images``
    set); the results are ``plan.apps``, which ``check_plan`` sees. Raise
    ``SerializationError`` naming the app environment's file and line.

    :param session: the deploy session.
    :param environment: the app environment.
    :param plan: the plan so far.
    :returns: a ``SerializedApp``, or ``None`` to defer (e.g. an adapter for another SDK's apps).
    """


@spec(Contract(PHASE, SourceLink))
def attach_source_link(session: DeploySession, task: Task, serialized: SerializedTask) -> SourceLink | None:
    """Find a link from the task back to its source line.

    Called once per serialized task, right after ``serialize_task``. The result's URL is
    stored in the spec's ``documentation.source_code.link``.

    :param session: the deploy session.
    :param task: the task.
    :param serialized: what ``serialize_task`` returned for it.
    :returns: a ``SourceLink``, or ``None``; when every plugin returns ``None`` the task
        simply has no link (never an error).
    """


@spec(Contract("collecting", (list, tuple), Violation, stamped=True))
def check_plan(session: DeploySession, plan: DeployPlan) -> Sequence[Violation] | None:
    """Police the whole plan before anything is built, uploaded, pushed or registered.

    All violations of all plugins are reported together and the deploy stops with exit
    code 6. ``flyte-deploy check`` runs everything up to and including this hook.

    :param session: the deploy session.
    :param plan: the whole plan: environments, serialized tasks, bundle, images, version.
    :returns: the violations found (an empty list, or ``None``, when all is well).
    """


@spec(Contract(PHASE, ImageRef, required=True))
def build_image(session: DeploySession, environment: Environment, image: Image) -> ImageRef | None:
    """Make sure the environment's image exists at ``image.uri``, building and pushing it if needed.

    Called after ``check_plan``, for each distinct image, concurrently for independent
    environments. The URI the tasks run is ``image.uri`` (fixed by the spec's content
    hash), so a builder must push there. Raise ``ImageBuildError`` with the one-line cause.

    :param session: the deploy session (``image.builder`` was selected when it opened).
    :param environment: the first planned environment using the image.
    :param image: the image spec to build.
    :returns: an ``ImageRef``, or ``None`` to defer.
    """


@spec(Contract(PHASE, str, required=True))
def upload_bundle(session: DeploySession, bundle: Bundle, uri: str) -> str | None:
    """Put the bundle archive at ``uri`` (any fsspec URL), unless it is already there.

    Called after the images are ready and before any registration; not called when there
    is no bundle (copy style ``none`` and nothing included). Raise ``UploadError``.

    :param session: the deploy session.
    :param bundle: the bundle ``build_bundle`` returned.
    :param uri: where it goes: ``<storage>/<digest>.tar.gz``.
    :returns: the URI the bundle is stored at, or ``None`` to defer.
    """


@spec(Contract(PHASE, (list, tuple), Registration, required=True))
def register_environment(
    session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask], plan: DeployPlan
) -> Sequence[Registration] | None:
    """Register one environment's serialized tasks with the selected backend.

    Called per environment, in deploy order (dependencies first), after the upload. The
    built-in hands them to ``session.backend.register``. Raise ``RegistrationError``
    naming the task refused.

    :param session: the deploy session.
    :param environment: the environment to register.
    :param tasks: its serialized tasks.
    :param plan: the whole plan.
    :returns: one ``Registration`` per task, or ``None`` to defer.
    """


@spec(Contract(PHASE, Registration, required=True))
def register_app(
    session: DeploySession, environment: Environment, app: SerializedApp, plan: DeployPlan
) -> Registration | None:
    """Register one serialized app with the selected backend.

    Called per app environment, in deploy order (the task environments it depends on are
    registered first), after the upload. The built-in hands it to
    ``session.backend.register_app``. Raise ``RegistrationError`` naming the app refused.

    :param session: the deploy session.
    :param environment: the app environment.
    :param app: what ``serialize_app`` returned for it.
    :param plan: the whole plan.
    :returns: the app's ``Registration`` (``kind="app"``), or ``None`` to defer.
    """


# -- diff -------------------------------------------------------------------------------


@spec(Contract("collecting", (list, tuple), Violation, stamped=True))
def check_diff(session: DeploySession, diff: Diff) -> Sequence[Violation] | None:
    """Police what a deploy would change, for ``flyte-deploy diff``.

    Called once per diff, after the plan passed ``check_plan`` and the backend was read;
    all violations of all plugins are reported together with the diff and the command
    exits with code 6 (e.g. refuse an interface change to a task of the production domain).

    :param session: the session of the diff (a dry run).
    :param diff: the ``flyte_deploy.diffing.Diff``: backend, project, domain, planned version
        and one entry per task and app (``kind``; ``new``, ``unchanged``, ``changed`` with its
        field changes, ``removed``).
    :returns: the violations found (an empty list, or ``None``, when all is well).
    """


__all__ = ["hookimpl", "hookspec"]

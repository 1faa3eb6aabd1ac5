"""Typed calls of every hook (as tox 4's ``Plugin`` facade): one method per hookspec,
with the spec's parameters and the result type its contract guarantees, so a type
checker catches a wrong argument or result at the call site.

Firstresult phases whose contract is ``required`` return their result or raise
``PluginError`` when no plugin answered; collecting hooks return the items of every
plugin's list, in call order. Results were checked (and stamped) per implementation by
the plugin manager before they get here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import pluggy

from .contracts import contract_of
from .errors import PluginError

if TYPE_CHECKING:
    from types import ModuleType

    from .config import Config
    from .diffing import Diff
    from .environments import Environment, Task
    from .image import Image
    from .pluginmanager import DeployPluginManager
    from .session import DeploySession
    from .types import (
        Backend,
        Bundle,
        DeployPlan,
        DeployRequest,
        DeployResult,
        Discovery,
        ImageBuilder,
        ImageRef,
        PhaseReport,
        Registration,
        SerializedApp,
        SerializedTask,
        SourceLink,
        Violation,
    )


class HookCalls:
    """The hooks of one plugin manager, called by name with typed arguments."""

    def __init__(self, hook: pluggy.HookRelay) -> None:
        self._hook = hook

    def _first(self, name: str, **kwargs: Any) -> Any:
        caller: pluggy.HookCaller = getattr(self._hook, name)
        result = caller(**kwargs)
        contract = contract_of(caller)
        if result is None and contract is not None and contract.required:
            raise PluginError(f"no plugin handled {name}; is its built-in disabled (-p no:...)?")
        return result

    def _collect(self, name: str, **kwargs: Any) -> list[Any]:
        caller: pluggy.HookCaller = getattr(self._hook, name)
        return [item for batch in caller(**kwargs) for item in batch]

    # -- bootstrap ----------------------------------------------------------------------

    def add_hookspecs(self, pluginmanager: DeployPluginManager) -> None:
        self._hook.add_hookspecs.call_historic(kwargs={"pluginmanager": pluginmanager})

    def configure(self, config: Config) -> None:
        self._hook.configure.call_historic(kwargs={"config": config})

    def unconfigure(self, config: Config) -> None:
        self._hook.unconfigure(config=config)

    def register_image_builders(self) -> list[ImageBuilder]:
        return self._collect("register_image_builders")

    def register_backends(self) -> list[Backend]:
        return self._collect("register_backends")

    # -- reporting ----------------------------------------------------------------------

    def deploy_start(self, session: DeploySession, plan: DeployPlan) -> None:
        self._hook.deploy_start(session=session, plan=plan)

    def phase_finished(self, session: DeploySession, report: PhaseReport) -> None:
        self._hook.phase_finished(session=session, report=report)

    def deploy_finish(self, session: DeploySession, result: DeployResult | None, error: BaseException | None) -> None:
        self._hook.deploy_finish(session=session, result=result, error=error)

    # -- phases -------------------------------------------------------------------------

    def discover_environments(self, session: DeploySession, request: DeployRequest) -> Discovery:
        return cast("Discovery", self._first("discover_environments", session=session, request=request))

    def find_environments(self, module: ModuleType) -> list[Mapping[str, Environment]]:
        caller: pluggy.HookCaller = self._hook.find_environments
        return [found for found in caller(module=module) if found]

    def adapt_environment(self, obj: object) -> Environment | None:
        return cast("Environment | None", self._first("adapt_environment", obj=obj))

    def resolve_dependencies(self, session: DeploySession, selected: Sequence[Environment]) -> Sequence[Environment]:
        return cast("Sequence[Environment]", self._first("resolve_dependencies", session=session, selected=selected))

    def build_bundle(self, session: DeploySession, plan: DeployPlan) -> Bundle:
        return cast("Bundle", self._first("build_bundle", session=session, plan=plan))

    def compute_version(self, session: DeploySession, plan: DeployPlan) -> str:
        return cast(str, self._first("compute_version", session=session, plan=plan))

    def serialize_task(
        self, session: DeploySession, environment: Environment, task: Task, plan: DeployPlan
    ) -> SerializedTask:
        return cast(
            "SerializedTask",
            self._first("serialize_task", session=session, environment=environment, task=task, plan=plan),
        )

    def serialize_app(self, session: DeploySession, environment: Environment, plan: DeployPlan) -> SerializedApp:
        return cast("SerializedApp", self._first("serialize_app", session=session, environment=environment, plan=plan))

    def attach_source_link(self, session: DeploySession, task: Task, serialized: SerializedTask) -> SourceLink | None:
        return cast(
            "SourceLink | None", self._first("attach_source_link", session=session, task=task, serialized=serialized)
        )

    def check_plan(self, session: DeploySession, plan: DeployPlan) -> list[Violation]:
        return self._collect("check_plan", session=session, plan=plan)

    def build_image(self, session: DeploySession, environment: Environment, image: Image) -> ImageRef:
        return cast("ImageRef", self._first("build_image", session=session, environment=environment, image=image))

    def upload_bundle(self, session: DeploySession, bundle: Bundle, uri: str) -> str:
        return cast(str, self._first("upload_bundle", session=session, bundle=bundle, uri=uri))

    def register_environment(
        self, session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask], plan: DeployPlan
    ) -> Sequence[Registration]:
        return cast(
            "Sequence[Registration]",
            self._first("register_environment", session=session, environment=environment, tasks=tasks, plan=plan),
        )

    def register_app(
        self, session: DeploySession, environment: Environment, app: SerializedApp, plan: DeployPlan
    ) -> Registration:
        return cast(
            "Registration",
            self._first("register_app", session=session, environment=environment, app=app, plan=plan),
        )

    # -- diff ---------------------------------------------------------------------------

    def check_diff(self, session: DeploySession, diff: Diff) -> list[Violation]:
        return self._collect("check_diff", session=session, diff=diff)


__all__ = ["HookCalls"]

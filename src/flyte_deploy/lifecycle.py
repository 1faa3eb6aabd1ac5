"""The deploy lifecycle: calls the phase hooks in order and checks what they return.

Order: deploy_start, discover_environments, resolve_dependencies, build_bundle,
compute_version (unless a version was given), serialize_task + attach_source_link per
task, check_plan, then (unless dry run) build_image per distinct image, upload_bundle,
register_environment per environment, and finally deploy_finish.
Nothing is uploaded, pushed or registered before every task serialized and every policy
passed.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import PluginError, PolicyViolation, RegistrationError, UsageError
from .image import Image
from .environments import Environment
from .session import DeploySession
from .types import (
    COPY_STYLES, Bundle, DeployPlan, DeployRequest, DeployResult, Discovery, ImageRef, Registration,
    SerializedTask, SourceLink, Violation,
)

#: what each hook must return (besides None); checked for every implementation
RESULT_TYPES: dict[str, type | tuple[type, ...]] = {
    "discover_environments": Discovery,
    "resolve_dependencies": (list, tuple),
    "build_bundle": Bundle,
    "compute_version": str,
    "serialize_task": SerializedTask,
    "attach_source_link": SourceLink,
    "check_plan": (list, tuple),
    "build_image": ImageRef,
    "upload_bundle": str,
    "register_environment": (list, tuple),
    "register_image_builders": (list, tuple),
}

#: element types of the list-valued results
ITEM_TYPES: dict[str, type] = {
    "resolve_dependencies": Environment,
    "check_plan": Violation,
    "register_environment": Registration,
}


def check_result(hook_name: str, result: Any, info: Any) -> None:
    """Raise ``PluginError`` naming the plugin when ``result`` is not of the hook's type."""
    if result is None or hook_name not in RESULT_TYPES:
        return
    expected = RESULT_TYPES[hook_name]
    if not isinstance(result, expected):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise PluginError(f"{info.describe()} returned {type(result).__name__} from {hook_name}, expected {names}")
    item_type = ITEM_TYPES.get(hook_name)
    if item_type is not None:
        for item in result:
            if not isinstance(item, item_type):
                raise PluginError(f"{info.describe()} returned a {type(item).__name__} in the list from"
                                  f" {hook_name}, expected {item_type.__name__}")


def call_phase(session: DeploySession, name: str, describe: Callable[[Any], str] | None = None,
               **kwargs: Any) -> Any:
    """Call a firstresult phase hook; a phase nobody handled is a ``PluginError``. With
    ``describe``, report the phase's outcome through ``phase_finished``."""
    started = time.perf_counter()
    result = getattr(session.hook, name)(session=session, **kwargs)
    if result is None and name not in ("attach_source_link",):
        raise PluginError(f"no plugin handled {name}; is its built-in disabled (-p no:...)?")
    if describe is not None:
        session.hook.phase_finished(session=session, phase=name, duration=time.perf_counter() - started,
                                    detail=describe(result))
    return result


def resolve_images(plan_envs: Sequence[Environment], registry: str | None,
                   overrides: Mapping[str, str]) -> dict[str, Image]:
    """The image of each environment: ``--image NAME=URI`` (by environment or image name)
    wins, else the environment's spec with the configured registry filled in. A NAME that
    names no planned environment or image is a ``UsageError``."""
    known = {env.name for env in plan_envs} | {env.image.name for env in plan_envs}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(f"--image {unknown[0]}=...: no environment or image of this deploy is named {unknown[0]!r}"
                         f" (environments: {', '.join(sorted(env.name for env in plan_envs))})")
    images: dict[str, Image] = {}
    for env in plan_envs:
        uri = overrides.get(env.name) or overrides.get(env.image.name)
        images[env.name] = Image.from_base(uri) if uri else env.image.resolved(registry)
    return images


def deploy(
    session: DeploySession,
    request: DeployRequest,
    *,
    version: str | None = None,
    copy_style: str | None = None,
    image_overrides: Mapping[str, str] | None = None,
) -> DeployResult:
    """Run one deploy (or a dry run / check when ``session.dry_run``) and return its result."""
    config = session.config
    style = copy_style or str(config.get("copy_style"))
    if style not in COPY_STYLES:
        raise UsageError(f"copy style {style!r} is not one of {', '.join(COPY_STYLES)}")
    if style == "none" and not version:
        raise UsageError("--copy-style none needs an explicit --version: there is no bundle to derive one from")
    with tempfile.TemporaryDirectory(prefix="flyte-deploy-") as scratch:
        plan = DeployPlan(request=request, root_dir=config.root_dir, copy_style=style, scratch_dir=Path(scratch))
        session.hook.deploy_start(session=session, plan=plan)
        try:
            result = _deploy(session, plan, version, dict(image_overrides or {}))
        except BaseException as exc:
            session.hook.deploy_finish(session=session, result=None, error=exc)
            raise
        session.hook.deploy_finish(session=session, result=result, error=None)
        return result


def _deploy(session: DeploySession, plan: DeployPlan, version: str | None, overrides: dict[str, str]) -> DeployResult:
    plan.discovery = call_phase(
        session, "discover_environments",
        lambda d: f"{len(d.selected)} selected of {len(d.environments)} environment(s) found",
        request=plan.request)
    if not plan.discovery.selected:
        raise UsageError("nothing to deploy: no TaskEnvironment selected")
    plan.environments = tuple(call_phase(
        session, "resolve_dependencies", lambda envs: "deploy order: " + " -> ".join(e.name for e in envs),
        selected=plan.discovery.selected))
    plan.images = resolve_images(plan.environments, session.config.get("image.registry"), overrides)
    plan.bundle = call_phase(session, "build_bundle", lambda b: b.summary, plan=plan)
    if plan.bundle.digest:
        plan.bundle_uri = f"{session.config.storage_url.rstrip('/')}/{plan.bundle.filename}"
    plan.version = version or call_phase(session, "compute_version", lambda v: f"version {v}", plan=plan)

    started = time.perf_counter()
    for env in plan.environments:
        for task in env.tasks.values():
            serialized = call_phase(session, "serialize_task", environment=env, task=task, plan=plan)
            link = call_phase(session, "attach_source_link", task=task, serialized=serialized)
            if link is not None:
                serialized.spec.documentation.source_code.link = link.url
            plan.tasks.append(serialized)
    session.hook.phase_finished(session=session, phase="serialize_task", duration=time.perf_counter() - started,
                                detail=f"{len(plan.tasks)} task(s)")

    violations = [v for batch in session.hook.check_plan(session=session, plan=plan) for v in batch]
    if violations:
        raise PolicyViolation(violations, plan=plan)

    backend = session.config.backend
    if session.dry_run:
        return dry_run_result(plan, backend)

    images = build_images(session, plan)
    if plan.bundle.digest and plan.bundle_uri:
        plan.bundle_uri = call_phase(session, "upload_bundle", lambda uri: f"bundle at {uri}", bundle=plan.bundle,
                                     uri=plan.bundle_uri)
    registrations: list[Registration] = []
    started = time.perf_counter()
    for index, env in enumerate(plan.environments):
        try:
            registrations += call_phase(session, "register_environment", environment=env,
                                        tasks=plan.tasks_of(env.name), plan=plan)
        except RegistrationError as exc:
            if not (exc.registered or exc.not_registered):  # backend did not say: the whole env failed
                exc = RegistrationError(exc.message, not_registered=[t.name for t in plan.tasks_of(env.name)],
                                        hint=exc.hint)
            later = [t.name for e in plan.environments[index + 1:] for t in plan.tasks_of(e.name)]
            raise exc.with_progress([r.task for r in registrations], later) from exc
    session.hook.phase_finished(session=session, phase="register_environment", duration=time.perf_counter() - started,
                                detail=f"{len(registrations)} task(s) registered with {backend}")
    return _result(plan, backend, images, tuple(registrations), dry_run=False)


def build_images(session: DeploySession, plan: DeployPlan) -> tuple[ImageRef, ...]:
    """Build each distinct image once, independent ones concurrently; map refs back to
    every environment using them."""
    started = time.perf_counter()
    first_env: dict[str, Environment] = {}
    for env in plan.environments:
        first_env.setdefault(plan.images[env.name].uri, env)
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(first_env)))) as pool:
        futures = {uri: pool.submit(call_phase, session, "build_image", None, environment=env,
                                    image=plan.images[env.name])
                   for uri, env in first_env.items()}
        built = {uri: future.result() for uri, future in futures.items()}
    refs = []
    for env in plan.environments:
        ref = built[plan.images[env.name].uri]
        refs.append(ImageRef(environment=env.name, uri=ref.uri, builder=ref.builder, built=ref.built,
                             digest=ref.digest, note=ref.note))
    session.hook.phase_finished(session=session, phase="build_image", duration=time.perf_counter() - started,
                                detail=f"{sum(r.built for r in built.values())} built, {len(built)} distinct")
    return tuple(refs)


def dry_run_result(plan: DeployPlan, backend: str) -> DeployResult:
    """What ``plan`` would deploy, with nothing built or registered (dry run, check)."""
    images = tuple(ImageRef(environment=name, uri=image.uri, builder="-", note="dry run: not built")
                   for name, image in plan.images.items())
    return _result(plan, backend, images, (), dry_run=True)


def _result(plan: DeployPlan, backend: str, images: tuple[ImageRef, ...], registrations: tuple[Registration, ...],
            dry_run: bool) -> DeployResult:
    assert plan.version is not None
    return DeployResult(version=plan.version, backend=backend, dry_run=dry_run,
                        environments=tuple(e.name for e in plan.environments), tasks=tuple(plan.tasks),
                        images=images, bundle=plan.bundle, bundle_uri=plan.bundle_uri,
                        registrations=registrations)


__all__ = ["call_phase", "check_result", "deploy", "dry_run_result", "resolve_images"]

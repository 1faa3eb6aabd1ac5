"""The deploy lifecycle: calls the phase hooks in order, through the typed ``session.calls``.

Order: deploy_start, discover_environments, resolve_dependencies, build_bundle,
compute_version (unless a version was given), serialize_task per task and serialize_app per
app environment, attach_source_link per task, check_plan, then (unless dry run) build_image
per distinct image, upload_bundle, register_environment per task environment and
register_app per app environment (in deploy order), and finally deploy_finish. Each phase reports once,
passed or failed, through ``phase_finished``.

The orchestration itself is not a hook, so no plugin can reorder it: nothing is uploaded,
pushed or registered before every task serialized and every policy passed.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .environments import Environment, Task, is_app
from .errors import PolicyViolation, RegistrationError, UsageError
from .image import Image
from .session import DeploySession
from .types import (
    COPY_STYLES,
    DeployPlan,
    DeployRequest,
    DeployResult,
    ImageRef,
    PhaseReport,
    Registration,
    SerializedApp,
    SerializedTask,
)
from .versions import check_version

T = TypeVar("T")


def run_phase(session: DeploySession, phase: str, run: Callable[[], T], describe: Callable[[T], str]) -> T:
    """``run()``, reported through ``phase_finished`` as passed (with ``describe(result)``)
    or failed (with the error, which is re-raised)."""
    started = time.perf_counter()
    try:
        result = run()
    except BaseException as exc:
        session.calls.phase_finished(
            session,
            PhaseReport(
                phase, "failed", time.perf_counter() - started, str(exc).splitlines()[0] if str(exc) else "", exc
            ),
        )
        raise
    session.calls.phase_finished(session, PhaseReport(phase, "passed", time.perf_counter() - started, describe(result)))
    return result


def resolve_images(
    plan_envs: Sequence[Environment], registry: str | None, overrides: Mapping[str, str]
) -> dict[str, Image]:
    """The image of each environment: ``--image NAME=URI`` (by environment or image name)
    wins, else the environment's spec with the configured registry filled in. A NAME that
    names no planned environment or image is a ``UsageError``."""
    known = {env.name for env in plan_envs} | {env.image.name for env in plan_envs}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(
            f"--image {unknown[0]}=...: no environment or image of this deploy is named {unknown[0]!r}"
            f" (environments: {', '.join(sorted(env.name for env in plan_envs))})"
        )
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
    if version is not None:
        check_version(version, "--version")
    config = session.config
    style = copy_style or str(config.get("copy_style"))
    if style not in COPY_STYLES:
        raise UsageError(f"copy style {style!r} is not one of {', '.join(COPY_STYLES)}")
    with tempfile.TemporaryDirectory(prefix="flyte-deploy-") as scratch:
        plan = DeployPlan(request=request, root_dir=config.root_dir, copy_style=style, scratch_dir=Path(scratch))
        session.calls.deploy_start(session, plan)
        try:
            result = _deploy(session, plan, version, dict(image_overrides or {}))
        except BaseException as exc:
            session.calls.deploy_finish(session, None, exc)
            raise
        session.calls.deploy_finish(session, result, None)
        return result


def _deploy(session: DeploySession, plan: DeployPlan, version: str | None, overrides: dict[str, str]) -> DeployResult:
    calls = session.calls
    discovery = run_phase(
        session,
        "discover_environments",
        lambda: calls.discover_environments(session, plan.request),
        lambda d: f"{len(d.selected)} selected of {len(d.environments)} environment(s) found",
    )
    plan.discovery = discovery
    if not discovery.selected:
        raise UsageError("nothing to deploy: no TaskEnvironment selected")
    plan.environments = tuple(
        run_phase(
            session,
            "resolve_dependencies",
            lambda: calls.resolve_dependencies(session, discovery.selected),
            lambda envs: "deploy order: " + " -> ".join(e.name for e in envs),
        )
    )
    refuse_apps_without_backend(session, plan.environments)
    plan.images = resolve_images(plan.environments, session.config.get("image.registry"), overrides)
    plan.bundle = run_phase(session, "build_bundle", lambda: calls.build_bundle(session, plan), lambda b: b.summary)
    if plan.bundle.digest:
        plan.bundle_uri = f"{session.config.storage_url.rstrip('/')}/{plan.bundle.filename}"
    elif version is None:
        raise UsageError(
            f"--copy-style {plan.copy_style} needs an explicit --version: there is no bundle to derive one from"
            " (no environment includes files)"
        )
    if version is None:
        derived = run_phase(
            session, "compute_version", lambda: calls.compute_version(session, plan), lambda v: f"version {v}"
        )
        version = check_version(derived, "the version compute_version returned")
    plan.version = version

    serialized: list[tuple[Task, SerializedTask]] = []
    apps: list[SerializedApp] = []

    def serialize() -> None:
        for env in plan.environments:
            if is_app(env):
                apps.append(calls.serialize_app(session, env, plan))
            for task in env.tasks.values():
                serialized.append((task, calls.serialize_task(session, env, task, plan)))
        plan.tasks[:] = [spec for _, spec in serialized]
        plan.apps[:] = apps

    run_phase(
        session,
        "serialize_task",
        serialize,
        lambda _: f"{len(plan.tasks)} task(s)" + (f", {len(plan.apps)} app(s)" if plan.apps else ""),
    )

    def link() -> int:
        linked = 0
        for task, spec in serialized:
            found = calls.attach_source_link(session, task, spec)
            if found is not None:
                spec.spec.documentation.source_code.link = found.url
                linked += 1
        return linked

    run_phase(session, "attach_source_link", link, lambda linked: f"{linked} of {len(plan.tasks)} task(s) linked")

    def police() -> None:
        violations = calls.check_plan(session, plan)
        if violations:
            raise PolicyViolation(violations, plan=plan)

    run_phase(session, "check_plan", police, lambda _: "no violations")
    if session.dry_run:
        return dry_run_result(plan, session.backend.name)

    images = run_phase(
        session,
        "build_image",
        lambda: build_images(session, plan),
        lambda refs: f"{len({r.uri for r in refs if r.built})} built, {len({r.uri for r in refs})} distinct",
    )
    if plan.bundle.digest and plan.bundle_uri:
        bundle, uri = plan.bundle, plan.bundle_uri
        plan.bundle_uri = run_phase(
            session,
            "upload_bundle",
            lambda: calls.upload_bundle(session, bundle, uri),
            lambda stored: f"bundle at {stored}",
        )
    registrations = run_phase(
        session,
        "register_environment",
        lambda: register(session, plan),
        lambda regs: f"{describe_registrations(regs)} registered with {session.backend.name}",
    )
    return _result(plan, session.backend.name, images, tuple(registrations), dry_run=False)


def describe_registrations(registrations: Sequence[Registration]) -> str:
    """``"3 task(s)"``, or ``"3 task(s), 1 app(s)"`` when apps were registered."""
    apps = sum(1 for r in registrations if r.kind == "app")
    return f"{len(registrations) - apps} task(s)" + (f", {apps} app(s)" if apps else "")


def refuse_apps_without_backend(session: DeploySession, environments: Sequence[Environment]) -> None:
    """A ``UsageError`` naming the first app environment when the selected backend cannot hold
    apps, before anything is built."""
    backend = session.backend
    app = next((env for env in environments if is_app(env)), None)
    if app is not None and backend.register_app is None:
        raise UsageError(f"{app.location}: app environment {app.name}: backend {backend.name!r} cannot hold apps")


def _registered_names(plan: DeployPlan, environment: Environment) -> list[str]:
    """What registering ``environment`` registers: its tasks' names, or its app's name."""
    if is_app(environment):
        return [environment.name]
    return [t.name for t in plan.tasks_of(environment.name)]


def register(session: DeploySession, plan: DeployPlan) -> list[Registration]:
    """Register each environment (its tasks, or its app) in deploy order; a
    ``RegistrationError`` names every task and app registered before it and every one not
    registered."""
    registrations: list[Registration] = []
    for index, env in enumerate(plan.environments):
        try:
            app = plan.app_of(env.name) if is_app(env) else None
            if app is not None:
                registrations.append(session.calls.register_app(session, env, app, plan))
            else:
                registrations += session.calls.register_environment(session, env, plan.tasks_of(env.name), plan)
        except RegistrationError as exc:
            if not (exc.registered or exc.not_registered):  # backend did not say: the whole env failed
                exc = RegistrationError(exc.message, not_registered=_registered_names(plan, env), hint=exc.hint)
            later = [name for e in plan.environments[index + 1 :] for name in _registered_names(plan, e)]
            raise exc.with_progress([r.task for r in registrations], later) from exc
    return registrations


def build_images(session: DeploySession, plan: DeployPlan) -> tuple[ImageRef, ...]:
    """Build each distinct image once, independent ones concurrently; map refs back to
    every environment using them."""
    first_env: dict[str, Environment] = {}
    for env in plan.environments:
        first_env.setdefault(plan.images[env.name].uri, env)
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(first_env)))) as pool:
        futures = {
            uri: pool.submit(session.calls.build_image, session, env, plan.images[env.name])
            for uri, env in first_env.items()
        }
        built = {uri: future.result() for uri, future in futures.items()}
    refs = [dataclasses.replace(built[plan.images[env.name].uri], environment=env.name) for env in plan.environments]
    return tuple(refs)


def dry_run_result(plan: DeployPlan, backend: str) -> DeployResult:
    """What ``plan`` would deploy, with nothing built or registered (dry run, check)."""
    images = tuple(
        ImageRef(environment=name, uri=image.uri, builder="-", note="dry run: not built")
        for name, image in plan.images.items()
    )
    return _result(plan, backend, images, (), dry_run=True)


def _result(
    plan: DeployPlan, backend: str, images: tuple[ImageRef, ...], registrations: tuple[Registration, ...], dry_run: bool
) -> DeployResult:
    assert plan.version is not None
    return DeployResult(
        version=plan.version,
        backend=backend,
        dry_run=dry_run,
        environments=tuple(e.name for e in plan.environments),
        tasks=tuple(plan.tasks),
        apps=tuple(plan.apps),
        images=images,
        bundle=plan.bundle,
        bundle_uri=plan.bundle_uri,
        registrations=registrations,
    )


__all__ = ["deploy", "dry_run_result", "resolve_images", "run_phase"]

"""The derived version: the same code, images and settings give the same version; any
change gives a new one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy.builtin.version import derive_version
from flyte_deploy.image import Image
from flyte_deploy.types import Bundle, DeployPlan, DeployRequest

from .bundle_helpers import deploy_json, make_project


def build_envs(
    retries: int = 0,
    cpu: int = 1,
    env_vars: dict[str, str] | None = None,
    description: str | None = None,
    secret: str | None = None,
) -> list[fd.TaskEnvironment]:
    prep = fd.TaskEnvironment(
        name="prep",
        resources=fd.Resources(cpu=cpu, memory="1Gi"),
        env_vars=env_vars,
        description=description,
        secrets=[secret] if secret else (),
    )
    train = fd.TaskEnvironment(name="train", depends_on=[prep])

    @prep.task(retries=retries)
    def clean(rows: list[float]) -> list[float]:
        return rows

    @train.task
    def fit(rows: list[float], epochs: int = 3) -> float:
        return 0.0

    return [prep, train]


def plan_for(
    envs: list[fd.TaskEnvironment], digest: str = "a" * 64, images: dict[str, str] | None = None
) -> DeployPlan:
    plan = DeployPlan(
        request=DeployRequest(mode="objects", objects=tuple(envs)),
        root_dir=Path("."),
        copy_style="loaded_modules",
        scratch_dir=Path("."),
    )
    plan.environments = tuple(envs)
    plan.bundle = Bundle(copy_style="loaded_modules", digest=digest)
    uris = images or {}
    plan.images = {e.name: Image.from_base(uris.get(e.name, "python:3.11-slim")) for e in envs}
    return plan


def test_same_inputs_give_the_same_version_in_any_order() -> None:
    version = derive_version(plan_for(build_envs()))
    assert len(version) == 32 and int(version, 16) >= 0
    assert derive_version(plan_for(build_envs())) == version
    assert derive_version(plan_for(list(reversed(build_envs())))) == version


@pytest.mark.parametrize(
    "change",
    [
        lambda: plan_for(build_envs(), digest="b" * 64),  # code
        lambda: plan_for(build_envs(), images={"train": "python:3.12-slim"}),  # image
        lambda: plan_for(build_envs(retries=2)),  # task setting
        lambda: plan_for(build_envs(cpu=2)),  # resources
        lambda: plan_for(build_envs(env_vars={"MODE": "fast"})),  # env vars
        lambda: plan_for(build_envs(description="the prep step")),  # description
        lambda: plan_for(build_envs(secret="api-key")),  # secrets
        lambda: plan_for(build_envs()[:1]),  # fewer environments
    ],
    ids=["code", "image", "retries", "resources", "env-vars", "description", "secrets", "environments"],
)
def test_any_change_gives_a_new_version(change: Callable[[], DeployPlan]) -> None:
    assert derive_version(change()) != derive_version(plan_for(build_envs()))


def test_cli_version_follows_code_images_and_settings(tmp_path: Path) -> None:
    project = make_project(tmp_path / "shop")
    base = deploy_json(["flows.py", "audit", "--dry-run"], project)
    assert deploy_json(["flows.py", "audit", "--dry-run"], project)["version"] == base["version"]
    image = deploy_json(["flows.py", "audit", "--dry-run", "--image", "shop=python:3.12-slim"], project)
    assert image["version"] != base["version"] and image["bundle"]["digest"] == base["bundle"]["digest"]
    flows = project / "flows.py"
    flows.write_text(flows.read_text().replace('memory="1Gi"', 'memory="2Gi"'))
    edited = deploy_json(["flows.py", "audit", "--dry-run"], project)
    assert edited["version"] != base["version"]
    given = deploy_json(["flows.py", "audit", "--dry-run", "--version", "v7"], project)
    assert given["version"] == "v7"

"""Environments whose images have pip, requirements, apt, commands, env, workdir and uv layers."""

from pathlib import Path

import flyte

HERE = Path(__file__).parent
base = flyte.Image.from_debian_base(python_version=(3, 11))

pip_env = flyte.TaskEnvironment(name="images-pip", image=base.with_pip_packages("six==1.16.0", "attrs"))
apt_env = flyte.TaskEnvironment(
    name="images-apt",
    image=base.with_apt_packages("curl").with_commands(["echo built > /tmp/marker"]).with_env_vars({"A": "1"}),
)
req_env = flyte.TaskEnvironment(
    name="images-req", image=base.with_requirements(HERE / "requirements.txt").with_workdir("/app")
)
uv_env = flyte.TaskEnvironment(name="images-uv", image=base.with_uv_project(HERE / "uvproject" / "pyproject.toml"))
named_env = flyte.TaskEnvironment(name="images-named", image="docker.io/library/python:3.11-slim")


@pip_env.task
def one() -> int:
    return 1


@apt_env.task
def two() -> int:
    return 2


@req_env.task
def three() -> int:
    return 3


@uv_env.task
def four() -> int:
    return 4


@named_env.task
def five() -> int:
    return 5

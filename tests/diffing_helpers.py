"""A project whose every task setting comes from settings.json (read at import, not bundled),
so one setting can change without the bundle changing; and the two backends to diff
against: the embedded store and a control plane on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flyte_deploy.testing import DeployProject, DeployRun

APP = """
import json
import pathlib
from datetime import timedelta

import flyte_deploy as fd

S = json.loads((pathlib.Path(__file__).parent / "settings.json").read_text())
OUT = {"str": str, "int": int}[S["out"]]

env = fd.TaskEnvironment(
    name="svc",
    image=S["image"],
    resources=fd.Resources(cpu=S["cpu"], memory="512Mi"),
    env_vars=S["env"],
    secrets=S["secrets"],
)


@env.task(retries=S["retries"], timeout=S["timeout"], cache=S["cache"])
def ping(host: str, port: int = S["default"]) -> OUT:
    return host


if S["pong"]:

    @env.task
    def pong(x: int) -> int:
        return x
"""

SETTINGS: dict[str, Any] = {
    "image": "python:3.11-slim",
    "cpu": 1,
    "env": {"MODE": "test"},
    "secrets": ["api-key"],
    "retries": 0,
    "timeout": None,
    "cache": "disable",
    "default": 80,
    "out": "str",
    "pong": True,
}


class Target:
    """``deploy``, ``diff`` and ``history`` of one project against one backend, in process."""

    def __init__(self, project: DeployProject, backend: str, server: Any = None) -> None:
        self.project, self.backend, self.server = project, backend, server

    def settings(self, **changes: Any) -> Target:
        self.project.write({"settings.json": json.dumps({**SETTINGS, **changes})})
        return self

    def run(self, command: str, *args: str) -> DeployRun:
        full = [command, *args, "--root-dir", str(self.project.root), "-q"]
        if "--output" not in args:
            full += ["--output", "json"]
        return self.project.run_cli(*full)

    def deploy(self, *args: str) -> DeployRun:
        return self.run("deploy", "app.py", "env", *args).assert_ok()

    def diff(self, *args: str) -> DeployRun:
        return self.run("diff", "app.py", "env", *args)

    def history(self, task: str, *args: str) -> DeployRun:
        full = ["history", task, "--root-dir", str(self.project.root)]
        if "--output" not in args:
            full += ["--output", "json"]
        return self.project.run_cli(*full, *args)


def make_target(request: pytest.FixtureRequest, project: DeployProject, backend: str, tmp_path: Any) -> Target:
    """The project configured for ``backend``: ``local`` (its store) or ``remote`` (a fresh
    control plane; bundles in a directory standing for the cluster's storage)."""
    server = None
    if backend == "remote":
        server = request.getfixturevalue("flyte_server")
        project.write(
            {
                "config.yaml": f"admin:\n  endpoint: {server.endpoint}\n  insecure: true\n"
                f"task:\n  project: flytesnacks\n  domain: development\n"
                f"storage: {(tmp_path / 'bundles').as_uri()}\n"
            }
        )
    return Target(project, backend, server)

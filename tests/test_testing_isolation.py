"""The kit's isolation from installed entry-point plugins: under ``deploy_isolation`` an
installed ``flyte_deploy`` plugin and an installed ``flyte_deploy.policy`` plugin load
neither in process nor in a subprocess, until ``use_installed_plugins()`` lets them."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from flyte_deploy.errors import ExitCode
from flyte_deploy.testing import AUTOLOAD_VARIABLES

APP = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="app")

@env.task
def work(x: int) -> int:
    return x
"""


def install(site: Path, dist: str, group: str, name: str, module: str, code: str) -> None:
    """An installed distribution under ``site``: a module and a dist-info naming it as an
    entry point, as pip leaves them."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An intruding plugin (a fixed version) and policy (refuses everything), installed
    where this process and its children find them."""
    site = tmp_path / "site"
    site.mkdir()
    install(
        site,
        "intruder",
        "flyte_deploy",
        "intruder",
        "intruder_plugin",
        """
        import flyte_deploy as fd

        @fd.hookimpl
        def compute_version(session, plan):
            return "intruder-version"
    """,
    )
    install(
        site,
        "intruder-policy",
        "flyte_deploy.policy",
        "intruder_policy",
        "intruder_policy",
        """
        import flyte_deploy as fd

        @fd.hookimpl
        def check_plan(session, plan):
            return [fd.Violation("intruder.all", "everything", "refused by the intruder")]
    """,
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return site


def test_isolation_sets_the_autoload_variables(deploy_isolation):
    assert AUTOLOAD_VARIABLES == ("FLYTE_DEPLOY_DISABLE_PLUGIN_AUTOLOAD", "FLYTE_DEPLOY_DISABLE_POLICY_AUTOLOAD")
    assert all(os.environ[name] == "1" for name in AUTOLOAD_VARIABLES)


@pytest.mark.usefixtures("installed")
def test_installed_plugins_load_neither_in_process_nor_in_a_subprocess(deploy_project):
    deploy_project({"app.py": APP})
    in_process = deploy_project.deploy("app.py", "env").assert_ok()
    assert in_process.json["version"] != "intruder-version"
    listed = deploy_project.run_subprocess("plugins", "--json").assert_ok().json
    assert not {"intruder", "intruder_policy"} & {p["name"] for p in listed["plugins"]}
    child = deploy_project.run_subprocess("deploy", "app.py", "env", "--output", "json").assert_ok()
    assert child.json["version"] != "intruder-version"


@pytest.mark.usefixtures("installed")
def test_use_installed_plugins_loads_them_like_a_users_machine(deploy_project, deploy_isolation):
    deploy_project({"app.py": APP})
    deploy_isolation.use_installed_plugins(policy=False)
    assert deploy_project.deploy("app.py", "env").assert_ok().json["version"] == "intruder-version"
    deploy_isolation.use_installed_plugins()
    refused = deploy_project.deploy("app.py", "env", "--version", "v2").assert_exit(ExitCode.POLICY_VIOLATION)
    assert "intruder.all: everything: refused by the intruder" in refused.stderr
    child = deploy_project.run_subprocess("plugins", "--json").assert_ok().json
    assert {"intruder": "entrypoint", "intruder_policy": "policy"}.items() <= {
        p["name"]: p["source"] for p in child["plugins"]
    }.items()

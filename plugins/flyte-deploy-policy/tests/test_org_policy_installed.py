"""flyte-deploy-policy really installed (pip, into a throwaway virtualenv that sees this
machine's packages): it loads from its ``flyte_deploy.policy`` entry point as a policy
plugin, last, cannot be disabled, satisfies ``required_plugins`` and rejects bad deploys."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyte_deploy.testing import install_in_venv

PLUGIN_DIR = Path(__file__).resolve().parents[1]

GOOD = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="svc", resources=fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi")))

@env.task
def work(x: int) -> int:
    return x
"""


@pytest.fixture(scope="session")
def policy_venv_python(tmp_path_factory) -> Path:
    """The python of a throwaway virtualenv where flyte-deploy-policy is pip-installed; built
    once per test session."""
    return install_in_venv(PLUGIN_DIR, tmp_path_factory.mktemp("policy-venv"))


@pytest.fixture
def policy_python(policy_venv_python: Path, deploy_isolation) -> Path:
    """``policy_venv_python``, with installed plugins loading again for this test (the kit
    turns them off)."""
    deploy_isolation.use_installed_plugins()
    return policy_venv_python


def test_it_loads_from_its_entry_point_as_the_last_plugin(deploy_project, policy_python):
    deploy_project({"app.py": GOOD})
    run = deploy_project.run_subprocess("plugins", "--json", python=policy_python).assert_ok()
    last = run.json["plugins"][-1]
    assert last == {
        "name": "org_policy",
        "source": "policy",
        "version": "flyte-deploy-policy 0.1.0",
        "location": "flyte_deploy_policy",
        "status": "policy",
        "hooks": ["check_diff", "check_plan"],
        "registered_by": None,
    }
    table = deploy_project.run_subprocess("plugins", python=policy_python).assert_ok()
    assert any("org_policy" in line and "policy" in line for line in table.stdout.splitlines())


def test_it_cannot_be_disabled(deploy_project, policy_python):
    deploy_project({"app.py": GOOD})
    run = deploy_project.run_subprocess("deploy", "app.py", "env", "-p", "no:org_policy", python=policy_python)
    run.assert_exit(4)
    assert "error: plugin 'org_policy' is a policy plugin and cannot be disabled" in run.stderr
    env = {"FLYTE_DEPLOY_DISABLE_PLUGINS": "org_policy"}
    run = deploy_project.run_subprocess("deploy", "app.py", "env", python=policy_python, env=env).assert_exit(4)
    assert "cannot be disabled" in run.stderr
    assert not run.store.exists()


def test_it_rejects_a_bad_deploy_and_passes_a_good_one(deploy_project, policy_python):
    deploy_project(
        {
            "app.py": GOOD.replace(', resources=fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi"))', ""),
            "pyproject.toml": '[tool.flyte-deploy]\nrequired_plugins = ["org_policy>=0.1"]\n',
        }
    )
    bad = deploy_project.run_subprocess("deploy", "app.py", "env", python=policy_python).assert_exit(6)
    assert "resources.limits: svc.work: declares no cpu or memory limit" in bad.stderr
    assert "[org_policy]" in bad.stderr
    assert not bad.store.exists()

    deploy_project({"app.py": GOOD})
    good = deploy_project.run_subprocess("deploy", "app.py", "env", "--output", "json", python=policy_python)
    assert [r["status"] for r in good.assert_ok().json["registrations"]] == ["created"]


def test_required_plugins_checks_its_version(deploy_project, policy_python):
    deploy_project({"app.py": GOOD, "pyproject.toml": '[tool.flyte-deploy]\nrequired_plugins = ["org_policy>=9"]\n'})
    run = deploy_project.run_subprocess("check", "app.py", "env", python=policy_python).assert_exit(4)
    assert "required plugin 'org_policy' needs version >= 9, found flyte-deploy-policy 0.1.0" in run.stderr

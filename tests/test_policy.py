"""Policy plugins: loaded last, never disabled, required ones enforced, every violation of
every plugin reported together (stamped with the plugin's name), exit code 6, and nothing
built, uploaded or registered when a plan is rejected."""

from __future__ import annotations

import types

import pytest

import flyte_deploy as fd
from flyte_deploy.config import Config
from flyte_deploy.errors import ExitCode, PolicyViolation, UsageError
from flyte_deploy.pluginmanager import build_plugin_manager

APP = """
import flyte_deploy as fd

base = fd.TaskEnvironment(name="base", resources=fd.Resources(cpu=1, memory="1Gi"))
app = fd.TaskEnvironment(name="app", depends_on=[base], resources=fd.Resources(cpu=1, memory="1Gi"))

@base.task
def load(n: int) -> list[int]:
    return list(range(n))

@app.task
def total(n: int) -> int:
    return sum(load(n))
"""


def policy_module(name: str, rule: str, subject_attr: str = "name") -> types.ModuleType:
    """A policy plugin module rejecting every environment of the plan under ``rule``."""
    module = types.ModuleType(name)

    @fd.hookimpl
    def check_plan(session, plan):
        return [
            fd.Violation(rule, getattr(env, subject_attr), f"{env.name} is not allowed", plugin="spoofed")
            for env in plan.environments
        ]

    module.check_plan = check_plan
    return module


def test_violations_of_all_policy_plugins_are_reported_together_and_stamped(deploy_project, register_plugin):
    deploy_project({"app.py": APP})
    register_plugin(policy_module("no_envs", "envs.none"), "no_envs", policy=True)
    register_plugin(policy_module("security", "sec.review"), "security", policy=True)

    run = deploy_project.deploy("app.py", "app").assert_exit(ExitCode.POLICY_VIOLATION)

    assert "4 policy violation(s):" in run.stderr
    lines = [line.strip() for line in run.stderr.splitlines() if line.startswith("  ")]
    assert sorted(lines) == sorted(
        [
            "envs.none: base: base is not allowed [no_envs]",
            "envs.none: app: app is not allowed [no_envs]",
            "sec.review: base: base is not allowed [security]",
            "sec.review: app: app is not allowed [security]",
        ]
    )
    assert "spoofed" not in run.stderr  # the plugin manager's name, not what the plugin claims
    assert not run.store.exists(), "a rejected plan must leave nothing in the store"


def test_a_rejected_plan_builds_uploads_and_registers_nothing(deploy_project, register_plugin, hook_recorder):
    deploy_project({"app.py": APP})
    register_plugin(policy_module("veto", "veto"), "veto", policy=True)

    deploy_project.deploy("app.py", "app").assert_exit(6)

    names = hook_recorder.names
    assert "check_plan" in names
    assert not {"build_image", "upload_bundle", "register_environment"} & set(names)
    finish = hook_recorder.getcall("deploy_finish")
    assert isinstance(finish.error, PolicyViolation) and finish.result is None
    assert [v.plugin for v in finish.error.violations] == ["veto", "veto"]
    assert finish.error.plan.version and len(finish.error.plan.tasks) == 2  # the rejected plan, whole


def test_policy_plugins_see_the_whole_plan_before_any_upload(deploy_project, register_plugin):
    seen = {}

    class Inspector:
        @fd.hookimpl
        def check_plan(self, session, plan):
            seen.update(
                envs=[e.name for e in plan.environments],
                tasks=[t.name for t in plan.tasks],
                files=plan.bundle.files,
                size=plan.bundle.size,
                images=sorted(plan.images),
                version=plan.version,
                bundle_exists=plan.bundle.path.is_file(),
                store_exists=(session.config.root_dir / ".flyte-deploy").exists(),
            )
            return []

    deploy_project({"app.py": APP})
    register_plugin(Inspector(), "inspector", policy=True)
    run = deploy_project.deploy("app.py", "app", "--version", "v7").assert_ok()

    assert seen == {
        "envs": ["base", "app"],
        "tasks": ["base.load", "app.total"],
        "files": ("app.py",),
        "size": seen["size"],
        "images": ["app", "base"],
        "version": "v7",
        "bundle_exists": True,
        "store_exists": False,
    }
    assert seen["size"] > 0
    assert [r["status"] for r in run.json["registrations"]] == ["created", "created"]


def test_a_policy_plugin_cannot_be_disabled_from_the_command_line(deploy_project, register_plugin):
    deploy_project({"app.py": APP})
    register_plugin(policy_module("veto", "veto"), "veto", policy=True)
    run = deploy_project.deploy("app.py", "app", "-p", "no:veto").assert_exit(ExitCode.USAGE_ERROR)
    assert "error: plugin 'veto' is a policy plugin and cannot be disabled" in run.stderr


def test_a_policy_plugin_cannot_be_disabled_from_pyproject(deploy_project, register_plugin):
    deploy_project({"app.py": APP, "pyproject.toml": '[tool.flyte-deploy]\ndisable_plugins = ["veto"]\n'})
    register_plugin(policy_module("veto", "veto"), "veto", policy=True)
    run = deploy_project.deploy("app.py", "app").assert_exit(ExitCode.USAGE_ERROR)
    assert "'veto' is a policy plugin and cannot be disabled" in run.stderr


def test_policy_plugins_register_last_and_show_as_policy(deploy_project, register_plugin):
    deploy_project({"app.py": APP, "deployconf.py": "x = 1\n"})
    register_plugin(policy_module("veto", "veto"), "veto", policy=True)
    run = deploy_project.run_cli("plugins", "--json", "--root-dir", str(deploy_project.root)).assert_ok()
    plugins = run.json["plugins"]
    assert plugins[-1]["name"] == "veto"
    assert (plugins[-1]["source"], plugins[-1]["status"]) == ("policy", "policy")
    assert plugins[-1]["hooks"] == ["check_plan"]
    assert [p["name"] for p in plugins[-2:-1]] == ["deployconf"]

    table = deploy_project.run_cli("plugins", "--root-dir", str(deploy_project.root)).assert_ok()
    row = next(line for line in table.stdout.splitlines() if " veto " in line)
    assert "policy" in row and "check_plan" in row


def test_a_missing_required_policy_plugin_fails_the_deploy(deploy_project):
    deploy_project({"app.py": APP, "pyproject.toml": '[tool.flyte-deploy]\nrequired_plugins = ["org_policy"]\n'})
    run = deploy_project.deploy("app.py", "app").assert_exit(ExitCode.USAGE_ERROR)
    assert "required plugin 'org_policy' is not installed or not enabled" in run.stderr
    assert "pyproject.toml" in run.stderr
    assert not run.store.exists()


def test_required_plugins_from_the_environment(deploy_project, register_plugin, monkeypatch):
    deploy_project({"app.py": APP})
    monkeypatch.setenv("FLYTE_DEPLOY_REQUIRED_PLUGINS", "org_policy")
    deploy_project.deploy("app.py", "app").assert_exit(ExitCode.USAGE_ERROR)
    register_plugin(policy_module("org_policy", "org"), "org_policy", policy=True)
    deploy_project.deploy("app.py", "app").assert_exit(ExitCode.POLICY_VIOLATION)


def test_a_required_minimum_version_fails_closed_when_the_version_is_unknown(tmp_path, register_plugin):
    register_plugin(policy_module("org_policy", "org"), "org_policy", policy=True)
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nrequired_plugins = ["org_policy>=1.0"]\n')
    with pytest.raises(
        UsageError,
        match=r"'org_policy' needs version >= 1.0, but plugin 'org_policy' \(policy"
        r" org_policy\) has no known version",
    ):
        build_plugin_manager(Config.load(tmp_path))


def test_a_policy_named_in_the_environment_and_installed_loads_once(
    tmp_path, monkeypatch, register_plugin, deploy_isolation
):
    site = tmp_path / "site"
    (site / "acme_policy-2.0.dist-info").mkdir(parents=True)
    (site / "acme_policy-2.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-policy\nVersion: 2.0\n"
    )
    (site / "acme_policy-2.0.dist-info" / "entry_points.txt").write_text("[flyte_deploy.policy]\nacme = acme_rules\n")
    (site / "acme_rules.py").write_text(
        "import flyte_deploy as fd\n\n@fd.hookimpl\ndef check_plan(session, plan):\n    return []\n"
    )
    monkeypatch.syspath_prepend(str(site))
    deploy_isolation.use_installed_plugins(only=[site])
    for named in ("acme", "acme_rules"):
        monkeypatch.setenv("FLYTE_DEPLOY_POLICY", named)
        (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nrequired_plugins = ["acme>=2"]\n')
        pm = build_plugin_manager(Config.load(tmp_path))
        policies = [i for i in pm.infos.values() if i.source == "policy"]
        assert [(i.name, i.version) for i in policies] == [("acme", "acme-policy 2.0")]


def test_the_python_api_raises_policy_violation_with_every_violation(deploy_project, register_plugin):
    deploy_project({"app.py": APP})
    register_plugin(policy_module("veto", "veto"), "veto", policy=True)
    with pytest.raises(PolicyViolation) as caught:
        deploy_project.deploy_api("app.py:app", version="v1")
    assert caught.value.exit_code == ExitCode.POLICY_VIOLATION == 6
    assert {(v.rule, v.subject, v.plugin) for v in caught.value.violations} == {
        ("veto", "base", "veto"),
        ("veto", "app", "veto"),
    }
    assert not deploy_project.store.exists()


def test_a_policy_returning_the_wrong_type_is_a_plugin_error_naming_it(deploy_project, register_plugin):
    module = types.ModuleType("sloppy")

    @fd.hookimpl
    def check_plan(session, plan):
        return ["not a violation"]

    module.check_plan = check_plan
    deploy_project({"app.py": APP})
    register_plugin(module, "sloppy", policy=True)
    run = deploy_project.deploy("app.py", "app").assert_exit(ExitCode.PLUGIN_ERROR)
    assert (
        "plugin 'sloppy' (policy sloppy) returned a str in the list from check_plan, expected Violation" in run.stderr
    )


def test_a_policy_module_from_the_environment_gets_its_distribution_version(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "acme_rules-2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rules\nVersion: 2.0\n")
    (info / "top_level.txt").write_text("acme_rules_mod\n")
    (site / "acme_rules_mod.py").write_text(
        "import flyte_deploy as fd\n\n@fd.hookimpl\ndef check_plan(session, plan):\n    return []\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("FLYTE_DEPLOY_POLICY", "acme_rules_mod")
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nrequired_plugins = ["acme_rules_mod>=2"]\n')
    pm = build_plugin_manager(Config.load(tmp_path))
    assert pm.infos["acme_rules_mod"].version == "acme-rules 2.0"
    (tmp_path / "pyproject.toml").write_text('[tool.flyte-deploy]\nrequired_plugins = ["acme_rules_mod>=3"]\n')
    with pytest.raises(UsageError, match="needs version >= 3, found acme-rules 2.0"):
        build_plugin_manager(Config.load(tmp_path))

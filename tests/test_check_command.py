"""`flyte-deploy check`: every phase that needs no upload, push or registration, then the
policies; prints the plan and "no violations" or the violations; exit 6 on any violation."""

from __future__ import annotations

import types

import flyte_deploy as fd
from flyte_deploy.errors import ExitCode

APP = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="svc", resources=fd.Resources(cpu=1, memory="512Mi"),
                         image=fd.Image.from_debian_base().with_pip_packages("requests"))

@env.task
def ping(host: str) -> str:
    return host
"""


def rejecting(rule: str) -> types.ModuleType:
    module = types.ModuleType(rule)

    @fd.hookimpl
    def check_plan(session, plan):
        return [fd.Violation(rule, task.name, "rejected for the test") for task in plan.tasks]

    module.check_plan = check_plan
    return module


def test_check_passes_and_leaves_no_trace(deploy_project, hook_recorder):
    deploy_project({"app.py": APP})
    run = deploy_project.check("app.py", "env", "--output", "table", "-q")
    run.assert_ok()
    assert "no violations" in run.stdout
    assert "Dry run version" in run.stdout and "svc.ping" in run.stdout
    assert not run.store.exists()
    assert "check_plan" in hook_recorder.names
    assert not {"build_image", "upload_bundle", "register_environment"} & set(hook_recorder.names)


def test_check_json_lists_the_plan_and_no_violations(deploy_project):
    deploy_project({"app.py": APP})
    run = deploy_project.check("app.py", "env", "--version", "v3").assert_ok()
    assert run.json["dry_run"] is True and run.json["version"] == "v3"
    assert run.json["violations"] == []
    assert [e["name"] for e in run.json["environments"]] == ["svc"]
    assert run.json["registrations"] == []
    assert not run.store.exists()


def test_check_reports_every_violation_and_exits_6(deploy_project, register_plugin):
    deploy_project({"app.py": APP})
    register_plugin(rejecting("first"), "first", policy=True)
    register_plugin(rejecting("second"), "second")  # any plugin may implement check_plan

    run = deploy_project.check("app.py", "env").assert_exit(ExitCode.POLICY_VIOLATION)

    assert sorted((v["rule"], v["subject"], v["plugin"]) for v in run.violations) == [
        ("first", "svc.ping", "first"),
        ("second", "svc.ping", "second"),
    ]
    assert run.json["environments"][0]["tasks"][0]["name"] == "svc.ping"  # the plan is still shown
    assert "error: 2 policy violation(s) reported by first, second" in run.stderr
    assert not run.store.exists()


def test_check_table_shows_the_violations(deploy_project, register_plugin):
    deploy_project({"app.py": APP})
    register_plugin(rejecting("no-ping"), "no_ping", policy=True)
    run = deploy_project.check("app.py", "env", "--output", "table").assert_exit(6)
    assert "1 policy violation(s):\n  no-ping: svc.ping: rejected for the test [no_ping]\n" in run.stdout
    assert "no violations" not in run.stdout


def test_check_takes_the_deploy_arguments(deploy_project):
    deploy_project({"app.py": APP, "pkg/__init__.py": "", "pkg/more.py": APP.replace('"svc"', '"svc2"')})
    run = deploy_project.check(
        "--recursive",
        ".",
        "--copy-style",
        "all",
        "--image",
        "svc=ghcr.io/acme/svc:1",
        "--image",
        "svc2=ghcr.io/acme/svc2:1",
    ).assert_ok()
    assert {e["name"]: e["image"] for e in run.json["environments"]} == {
        "svc": "ghcr.io/acme/svc:1",
        "svc2": "ghcr.io/acme/svc2:1",
    }
    assert run.json["bundle"]["copy_style"] == "all" and run.json["bundle"]["files"] == 3
    assert not run.store.exists()

    bad = deploy_project.check("app.py", "env", "--all")
    bad.assert_exit(ExitCode.USAGE_ERROR)
    assert "--all takes no environment names" in bad.stderr
    assert "--dry-run" not in deploy_project.run_cli("check", "--help").stdout


def test_check_then_deploy_gives_the_same_version(deploy_project):
    deploy_project({"app.py": APP})
    checked = deploy_project.check("app.py", "env").assert_ok()
    deployed = deploy_project.deploy("app.py", "env").assert_ok()
    assert checked.json["version"] == deployed.json["version"]
    assert [r["environment"] for r in deployed.deployed()] == ["svc"]


def test_check_in_a_subprocess_through_the_console_entry(deploy_project):
    deploy_project({"app.py": APP})
    run = deploy_project.run_subprocess("check", "app.py", "env", "--output", "json")
    run.assert_ok()
    assert run.json["violations"] == [] and run.json["dry_run"] is True
    assert not run.store.exists()


def test_discovery_errors_keep_their_own_exit_code(deploy_project):
    deploy_project({"app.py": APP})
    run = deploy_project.check("app.py", "missing").assert_exit(ExitCode.DISCOVERY_FAILED)
    assert "no TaskEnvironment variable 'missing'" in run.stderr


def test_check_takes_every_deploy_option_but_dry_run():
    from flyte_deploy.cli import cli

    deploy = {p.name for p in cli.commands["deploy"].params}
    check = {p.name for p in cli.commands["check"].params}
    assert check == deploy - {"dry_run"}


def test_check_reads_the_flyte_config_file_like_deploy(deploy_project, hook_recorder):
    deploy_project({"app.py": APP, "other.yaml": "task:\n  project: from-config\n  domain: staging\n"})
    deploy_project.check("app.py", "env", "--config", "other.yaml").assert_ok()
    template = hook_recorder.getcall("serialize_task").returned.spec.task_template
    assert (template.id.project, template.id.domain) == ("from-config", "staging")

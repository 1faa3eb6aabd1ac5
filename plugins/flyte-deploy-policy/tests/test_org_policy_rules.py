"""The org_policy rules, each through a real deploy or check of a temporary project, with the
plugin loaded as a policy plugin by the flyte_deploy.testing kit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import flyte_deploy as fd

try:
    import flyte_deploy_policy
except ImportError:  # a source checkout where the plugin is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import flyte_deploy_policy

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "ml_pipeline"

GOOD = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="good", resources=fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi")),
                         env_vars={"LOG_LEVEL": "info", "MAX_TOKENS": "512", "TOKEN_FILE": "/var/run/token"})

@env.task
def work(x: int) -> int:
    return x
"""


def settings(**values: str) -> str:
    """A pyproject.toml with ``[tool.flyte-deploy.plugin.org_policy]`` set to ``values`` (TOML text)."""
    lines = ["[tool.flyte-deploy.plugin.org_policy]"] + [f"{k} = {v}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(deploy_project, register_plugin):
    """A temporary project deployed with org_policy as a policy plugin."""
    register_plugin(flyte_deploy_policy, "org_policy", policy=True)
    return deploy_project


def rules(run) -> list[tuple[str, str]]:
    assert all(v["plugin"] == "org_policy" for v in run.violations)
    return sorted((v["rule"], v["subject"]) for v in run.violations)


def test_a_compliant_project_deploys(project):
    project({"app.py": GOOD})
    run = project.deploy("app.py", "env").assert_ok()
    assert [r["status"] for r in run.json["registrations"]] == ["created"]


def test_the_bundled_example_is_told_which_tasks_lack_limits(project):
    project.copy(EXAMPLE)  # its environments request cpu and memory but set no limits
    run = project.check("workflow.py", "viz_env").assert_exit(6)
    assert rules(run) == [
        ("resources.limits", "ml_training.train"),
        ("resources.limits", "preprocessing.clean"),
        ("resources.limits", "visualization.report"),
    ]
    assert len(run.json["environments"]) == 3
    project({"pyproject.toml": (EXAMPLE / "pyproject.toml").read_text() + settings(require_limits="[]")})
    project.check("workflow.py", "viz_env").assert_ok()


# -- resources.limits -------------------------------------------------------------------------


def test_every_task_must_declare_cpu_and_memory_limits(project):
    project(
        {
            "app.py": """
        import flyte_deploy as fd

        env = fd.TaskEnvironment(name="limits", resources=fd.Resources(cpu=(1, 1)))

        @env.task
        def no_memory(x: int) -> int:
            return x

        @env.task(resources=fd.Resources(memory=("1Gi", "2Gi")))
        def both(x: int) -> int:
            return x

        bare = fd.TaskEnvironment(name="bare")

        @bare.task
        def nothing(x: int) -> int:
            return x
    """
        }
    )
    run = project.check("--all", "app.py").assert_exit(6)
    assert rules(run) == [("resources.limits", "bare.nothing"), ("resources.limits", "limits.no_memory")]
    messages = {v["subject"]: v["message"] for v in run.violations}
    assert messages["limits.no_memory"].startswith("declares no memory limit (defined at app.py:5)")
    assert "declares no cpu or memory limit (defined at app.py:15)" in messages["bare.nothing"]
    hint = "set resources=Resources(cpu=(request, limit), memory=(request, limit)) on the task or environment 'bare'"
    assert hint in messages["bare.nothing"]
    assert not run.store.exists()

    deploy = project.deploy("--all", "app.py").assert_exit(6)
    assert "resources.limits: bare.nothing: declares no cpu or memory limit" in deploy.stderr
    assert "[org_policy]" in deploy.stderr and not deploy.store.exists()


def test_a_request_without_a_limit_is_not_a_limit(project):
    project({"app.py": GOOD.replace('cpu=(1, 2), memory=("1Gi", "2Gi")', 'cpu=1, memory=("1Gi", None)')})
    run = project.check("app.py", "env").assert_exit(6)
    assert run.violations[0]["message"].startswith("declares no cpu or memory limit")


def test_required_limits_are_configurable(project):
    project({"app.py": GOOD, "pyproject.toml": settings(require_limits='["cpu", "memory", "gpu"]')})
    assert rules(project.check("app.py", "env").assert_exit(6)) == [("resources.limits", "good.work")]
    project({"pyproject.toml": settings(require_limits="[]")})
    project({"app.py": GOOD.replace(', resources=fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi"))', "")})
    project.check("app.py", "env").assert_ok()


def test_limits_are_read_from_the_serialized_container(project, register_plugin):
    class CpuOnlyContainer:
        """Serializes like the built-in, then leaves only a cpu limit on the container."""

        @fd.hookimpl(wrapper=True)
        def serialize_task(self, session, environment, task, plan):
            serialized = yield
            resources = serialized.spec.task_template.container.resources
            del resources.limits[:]
            resources.limits.add(name=resources.CPU, value="1")
            return serialized

    register_plugin(CpuOnlyContainer(), "cpu_only")
    project({"app.py": GOOD})
    run = project.check("app.py", "env").assert_exit(6)
    assert run.violations[0]["message"].startswith("declares no memory limit")


# -- image.registry ---------------------------------------------------------------------------


def test_images_only_from_allowed_registries(project):
    project(
        {
            "pyproject.toml": settings(allowed_registries='["ghcr.io/acme", "registry.acme.internal:5000"]'),
            "app.py": """
        import flyte_deploy as fd

        limits = fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi"))
        ok = fd.TaskEnvironment(name="ok", resources=limits, image="ghcr.io/acme/base:1")
        port = fd.TaskEnvironment(name="port", resources=limits, image="registry.acme.internal:5000/x/y:2")
        lookalike = fd.TaskEnvironment(name="lookalike", resources=limits, image="ghcr.io/acmecorp/base:1")
        hub = fd.TaskEnvironment(name="hub", resources=limits, image="python:3.11-slim")
        unpushed = fd.TaskEnvironment(name="unpushed", resources=limits)

        @ok.task
        def a(x: int) -> int: return x
        @port.task
        def b(x: int) -> int: return x
        @lookalike.task
        def c(x: int) -> int: return x
        @hub.task
        def d(x: int) -> int: return x
        @unpushed.task
        def e(x: int) -> int: return x
    """,
        }
    )
    run = project.check("--all", "app.py").assert_exit(6)
    assert rules(run) == [("image.registry", "hub"), ("image.registry", "lookalike"), ("image.registry", "unpushed")]
    messages = {v["subject"]: v["message"] for v in run.violations}
    assert messages["hub"] == (
        "image python:3.11-slim is not from an allowed registry (allowed: ghcr.io/acme, registry.acme.internal:5000)"
    )
    assert "has no registry to be pushed to" in messages["unpushed"]

    fixed = project.check(
        "--all",
        "app.py",
        "--image",
        "hub=ghcr.io/acme/python:3.11",
        "--image",
        "lookalike=ghcr.io/acme/base:1",
        "--image",
        "unpushed=ghcr.io/acme/u:1",
    )
    fixed.assert_ok()


def test_the_configured_registry_satisfies_the_rule(project, monkeypatch):
    project({"app.py": GOOD, "pyproject.toml": settings(allowed_registries='["ghcr.io/acme"]')})
    project.check("app.py", "env").assert_exit(6)
    monkeypatch.setenv("FLYTE_DEPLOY_IMAGE_REGISTRY", "ghcr.io/acme/images")
    run = project.check("app.py", "env").assert_ok()
    assert run.json["environments"][0]["image"].startswith("ghcr.io/acme/images/")


def test_image_repository_names():
    repo = flyte_deploy_policy.image_repository
    assert repo("python:3.11") == "docker.io/library/python"
    assert repo("acme/tool:1") == "docker.io/acme/tool"
    assert repo("localhost:5000/x:1") == "localhost:5000/x"
    assert repo("ghcr.io/acme/app@sha256:abc") == "ghcr.io/acme/app"


# -- env.secret -------------------------------------------------------------------------------


SECRETS = """
import flyte_deploy as fd

env = fd.TaskEnvironment(
    name="leaky", resources=fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi")),
    env_vars={"DB_PASSWORD": "hunter2-very-secret", "API_KEY": "${API_KEY}", "LOG_LEVEL": "debug",
              "UPSTREAM": "https://bot:s3cr3tpass@git.acme.internal/repo.git"},
    image=fd.Image.from_debian_base().with_env_vars({"GH": "ghp_" + "a" * 36}),
)

@env.task(env_vars={"AWS_ID": "AKIA" + "ABCDEFGHIJKLMNOP"})
def work(x: int) -> int:
    return x
"""


def test_no_secret_looking_values_in_environment_variables(project):
    project({"app.py": SECRETS})
    run = project.check("app.py", "env").assert_exit(6)
    found = {(v["subject"], v["message"].split(" holds")[0]) for v in run.violations}
    assert found == {
        ("leaky", "environment variable DB_PASSWORD (set on the environment)"),
        ("leaky", "environment variable UPSTREAM (set on the environment)"),
        ("leaky", "environment variable GH (set on the image)"),
        ("leaky.work", "environment variable AWS_ID (set on the task)"),
    }
    reasons = " ".join(v["message"] for v in run.violations)
    assert "looks like an AWS access key id" in reasons and "looks like a GitHub token" in reasons
    assert "a URL with a password" in reasons and "the name says it holds a secret" in reasons
    deploy = project.deploy("app.py", "env").assert_exit(6)
    for output in (run.stdout, run.stderr, deploy.stdout, deploy.stderr):
        for value in ("hunter2", "ghp_aaaa", "AKIAABCD", "s3cr3tpass"):
            assert value not in output, f"the secret value {value} leaked into the output"


def test_secret_scan_is_configurable(project):
    project(
        {
            "app.py": SECRETS,
            "pyproject.toml": settings(
                allowed_env_vars='["DB_PASSWORD", "UPSTREAM", "GH", "AWS_ID"]', secret_patterns='["^hunter"]'
            ),
        }
    )
    project.check("app.py", "env").assert_ok()
    project(
        {
            "app.py": GOOD.replace('"LOG_LEVEL": "info"', '"LOG_LEVEL": "hunter2"'),
            "pyproject.toml": settings(secret_patterns='["^hunter"]'),
        }
    )
    run = project.check("app.py", "env").assert_exit(6)
    assert "matches secret_patterns '^hunter'" in run.violations[0]["message"]


# -- bundle -----------------------------------------------------------------------------------


def test_the_bundle_has_no_env_files_keys_or_credentials(project):
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    project(
        {
            "app.py": GOOD,
            ".env": "DB_PASSWORD=x\n",
            ".env.example": "DB_PASSWORD=\n",
            "deploy/id_ed25519": key,
            "certs/server.pem": "pem\n",
            "conf/credentials.json": "{}\n",
            "notes/readme.txt": "hello\n",
            "tools/embedded.py": f"KEY = '''{key}'''\n",
        }
    )
    run = project.check("app.py", "env", "--copy-style", "all").assert_exit(6)
    assert rules(run) == [
        ("bundle.forbidden-file", ".env"),
        ("bundle.forbidden-file", "certs/server.pem"),
        ("bundle.forbidden-file", "conf/credentials.json"),
        ("bundle.forbidden-file", "deploy/id_ed25519"),
        ("bundle.private-key", "tools/embedded.py"),
    ]
    assert "b3BlbnNzaC1rZXkt" not in run.stdout + run.stderr
    # loaded_modules bundles only the imported code: nothing to object to
    project.check("app.py", "env").assert_ok()


def test_forbidden_files_are_configurable(project):
    project(
        {
            "app.py": GOOD,
            "data/dump.sql": "select 1;\n",
            ".env": "X=1\n",
            "pyproject.toml": settings(forbidden_files='["*.sql"]'),
        }
    )
    run = project.check("app.py", "env", "--copy-style", "all").assert_exit(6)
    assert rules(run) == [("bundle.forbidden-file", "data/dump.sql")]


def test_the_bundle_has_a_maximum_size(project):
    big = "".join(f"ROW_{i} = {i * 7919 % 104729}\n" for i in range(6000))
    project({"app.py": GOOD, "big.py": big, "pyproject.toml": settings(max_bundle_size='"10kB"')})
    run = project.check("app.py", "env", "--copy-style", "all").assert_exit(6)
    assert rules(run) == [("bundle.size", "bundle")]
    assert "over the limit of 10.0 kB (max_bundle_size)" in run.violations[0]["message"]
    project({"pyproject.toml": settings(max_bundle_size="false")})
    project.check("app.py", "env", "--copy-style", "all").assert_ok()
    project({"pyproject.toml": settings(max_bundle_size='"1MiB"')})
    project.check("app.py", "env", "--copy-style", "all").assert_ok()


# -- version.pattern --------------------------------------------------------------------------


def test_versions_match_the_pattern(project):
    project({"app.py": GOOD, "pyproject.toml": settings(version_pattern="'v\\d+\\.\\d+\\.\\d+'")})
    project.check("app.py", "env", "--version", "v1.2.3").assert_ok()
    bad = project.check("app.py", "env", "--version", "1.2").assert_exit(6)
    assert bad.violations[0]["rule"] == "version.pattern"
    assert bad.violations[0]["message"].startswith("does not match version_pattern")
    derived = project.deploy("app.py", "env").assert_exit(6)  # a content-derived version is not v1.2.3
    assert "version.pattern" in derived.stderr


# -- all at once, configuration errors ---------------------------------------------------------


def test_every_rule_reports_in_one_run(project):
    project(
        {
            "app.py": SECRETS.replace(', resources=fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi"))', ""),
            ".env": "X=1\n",
            "pyproject.toml": settings(
                allowed_registries='["ghcr.io/acme"]', version_pattern="'v.*'", max_bundle_size="100"
            ),
        }
    )
    run = project.check("app.py", "env", "--copy-style", "all", "--version", "1").assert_exit(6)
    assert {v["rule"] for v in run.violations} == {
        "resources.limits",
        "image.registry",
        "env.secret",
        "bundle.forbidden-file",
        "bundle.size",
        "version.pattern",
    }


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 'red'", "unknown setting 'colour'"),
        ("require_limits = 'cpu'", "require_limits must be a list of strings"),
        ("require_limits = ['cpus']", "require_limits names unknown resources ['cpus']"),
        ("max_bundle_size = 'ten MB'", "max_bundle_size must be a positive byte count"),
        ("max_bundle_size = 0", "max_bundle_size must be a positive byte count"),
        ("version_pattern = '('", "version_pattern: invalid regular expression '('"),
        ("secret_patterns = ['[']", "secret_patterns: invalid regular expression '['"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_table(project, toml, message):
    project({"app.py": GOOD, "pyproject.toml": f"[tool.flyte-deploy.plugin.org_policy]\n{toml}\n"})
    run = project.check("app.py", "env").assert_exit(4)
    assert "[tool.flyte-deploy.plugin.org_policy]" in run.stderr and message in run.stderr
    assert "pyproject.toml" in run.stderr


def test_the_policy_cannot_be_disabled(project):
    project({"app.py": GOOD})
    run = project.deploy("app.py", "env", "-p", "no:org_policy").assert_exit(4)
    assert "'org_policy' is a policy plugin and cannot be disabled" in run.stderr


# -- flyte apps -------------------------------------------------------------------------------

APPS = """
import flyte
import flyte.app

limits = flyte.Resources(cpu=(1, 2), memory=("1Gi", "2Gi"))
good = flyte.app.AppEnvironment(name="good-app", resources=limits, image="ghcr.io/acme/app:1",
                                env_vars={"LOG_LEVEL": "info"}, secrets=flyte.Secret(key="api", as_env_var="API_KEY"))
bare = flyte.app.AppEnvironment(name="bare-app", resources=flyte.Resources(cpu=1), image="python:3.11-slim",
                                env_vars={"API_TOKEN": "s3cr3t-literal-value"})
"""


def test_apps_are_policed_like_tasks_for_limits_images_and_secret_values(project):
    pytest.importorskip("flyte")
    project({"apps.py": APPS, "pyproject.toml": settings(allowed_registries='["ghcr.io/acme"]')})
    run = project.check("--all", "apps.py").assert_exit(6)
    assert rules(run) == [("env.secret", "bare-app"), ("image.registry", "bare-app"), ("resources.limits", "bare-app")]
    messages = {v["rule"]: v["message"] for v in run.violations}
    assert messages["resources.limits"] == (
        "app declares no cpu or memory limit (defined at apps.py:7); set"
        " resources=Resources(cpu=(request, limit), memory=(request, limit)) on the app"
    )
    assert messages["image.registry"].startswith("image python:3.11-slim is not from an allowed registry")
    assert messages["env.secret"].startswith("environment variable API_TOKEN (set on the app) holds")
    assert "s3cr3t" not in str(run.violations)
    project.check("apps.py", "good").assert_ok()


FROZEN = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="good", resources=fd.Resources(cpu=(1, 2), memory=("1Gi", "2Gi")))

@env.task
def work(x: int) -> int:
    return x
"""


def test_an_interface_change_in_a_frozen_domain_is_refused_by_diff(project):
    project({"app.py": FROZEN, "pyproject.toml": settings(frozen_interface_domains='["production"]')})
    for domain in ("development", "production"):
        project.deploy("app.py", "env", "--domain", domain).assert_ok()
    project({"app.py": FROZEN.replace("x: int) -> int", "x: str) -> int")})
    assert project.run_cli("diff", "app.py", "env", "--root-dir", str(project.root), "-q").exit_code == 20
    run = project.run_cli(
        "diff", "app.py", "env", "--domain", "production", "--output", "json", "--root-dir", str(project.root), "-q"
    ).assert_exit(6)
    assert rules(run) == [("interface.frozen", "good.work")]
    assert run.violations[0]["message"] == (
        "changes the interface of a task deployed to flytesnacks/production from (x: INTEGER) -> (o0: INTEGER)"
        " to (x: STRING) -> (o0: INTEGER); deploy it under a new task name"
    )

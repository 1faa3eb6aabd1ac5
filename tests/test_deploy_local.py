"""End to end: deploy the bundled example into the embedded local backend, through the
CLI (in process and as a real subprocess) and the Python API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import flyte_deploy as fd
from flyte_deploy.builtin.local_backend import list_deployments
from flyte_deploy.errors import ExitCode
from tests.conftest import EXAMPLE, REPO


@pytest.fixture
def example(tmp_path, monkeypatch):
    root = tmp_path / "ml_pipeline"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".flyte-deploy", "__pycache__"))
    monkeypatch.chdir(root)
    return root


def test_readme_command_deploys_the_example_in_a_subprocess(example):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "flyte_deploy", "deploy", "workflow.py", "viz_env"],
                          cwd=example, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Deployed version" in proc.stdout
    for name in ("preprocessing.clean", "ml_training.train", "visualization.report"):
        assert name in proc.stdout
    assert "resolve_dependencies" in proc.stderr and "preprocessing -> ml_training -> visualization" in proc.stderr
    records = list_deployments((example / ".flyte-deploy").as_uri())
    assert sorted(r["environment"] for r in records) == ["ml_training", "preprocessing", "visualization"]


def test_json_output_lists_envs_in_deploy_order_with_tasks_image_and_bundle(example, invoke):
    result = invoke("deploy", "workflow.py", "viz_env", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert [e["name"] for e in data["environments"]] == ["preprocessing", "ml_training", "visualization"]
    assert [t["name"] for t in data["environments"][1]["tasks"]] == ["ml_training.train"]
    assert data["bundle"]["copy_style"] == "loaded_modules"
    assert data["bundle"]["files"] == 4  # envs.py, workflow.py, pipeline/__init__.py, pipeline/stats.py
    assert data["bundle"]["uri"].startswith((example / ".flyte-deploy" / "bundles").as_uri())
    assert [r["status"] for r in data["registrations"]] == ["created"] * 3
    assert len(data["version"]) == 32


def test_redeploy_is_unchanged_and_a_changed_spec_under_the_same_version_is_refused(example, invoke):
    first = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "--output", "json", "-q")
    assert first.exit_code == 0, first.stderr
    again = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "--output", "json", "-q")
    assert [r["status"] for r in again.json()["registrations"]] == ["unchanged"] * 3
    changed = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "--project", "other-project")
    assert changed.exit_code == ExitCode.REGISTRATION_FAILED
    assert "preprocessing.clean version v1 is already deployed with a different spec" in changed.stderr


def test_unchanged_code_gives_the_same_version_and_a_change_a_new_one(example, invoke):
    v1 = invoke("deploy", "workflow.py", "viz_env", "--output", "json", "-q").json()["version"]
    v2 = invoke("deploy", "workflow.py", "viz_env", "--output", "json", "-q").json()["version"]
    assert v1 == v2
    stats = example / "pipeline" / "stats.py"
    stats.write_text(stats.read_text() + "\n# a change\n")
    for name in [n for n in sys.modules if n.startswith("pipeline") or n in ("envs", "workflow")]:
        del sys.modules[name]
    v3 = invoke("deploy", "workflow.py", "viz_env", "--output", "json", "-q").json()["version"]
    assert v3 != v1


def test_dry_run_prints_the_plan_and_writes_nothing(example, invoke):
    result = invoke("deploy", "--all", "workflow.py", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Dry run version" in result.stdout and "visualization.report" in result.stdout
    assert not (example / ".flyte-deploy").exists()


def test_ls_shows_what_is_deployed(example, invoke):
    assert "nothing deployed" in invoke("ls").stdout
    invoke("deploy", "workflow.py", "ml_env", "--version", "v7", "-q")
    table = invoke("ls")
    assert "ml_training" in table.stdout and "preprocessing" in table.stdout and "v7" in table.stdout
    records = invoke("ls", "--output", "json").json()
    assert {(r["environment"], r["version"]) for r in records} == {("ml_training", "v7"), ("preprocessing", "v7")}
    assert "visualization" not in table.stdout


def test_store_can_be_any_fsspec_url(example, invoke):
    result = invoke("deploy", "workflow.py", "prep_env", "--store", "memory://store-test", "-q",
                    "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["bundle"]["uri"].startswith("memory://store-test/bundles/")
    assert [r["environment"] for r in list_deployments("memory://store-test")] == ["preprocessing"]
    assert not (example / ".flyte-deploy").exists()


def test_copy_style_none_requires_a_version(example, invoke):
    result = invoke("deploy", "workflow.py", "viz_env", "--copy-style", "none")
    assert result.exit_code == ExitCode.USAGE_ERROR
    assert "--copy-style none needs an explicit --version" in result.stderr
    ok = invoke("deploy", "workflow.py", "viz_env", "--copy-style", "none", "--version", "baked-1",
                "--output", "json", "-q")
    assert ok.exit_code == 0 and ok.json()["bundle"]["uri"] is None


def test_image_override_by_environment_name(example, invoke):
    result = invoke("deploy", "workflow.py", "viz_env", "--image", "ml_training=registry.example/ml:1",
                    "--output", "json", "-q", "--dry-run")
    images = {e["name"]: e["image"] for e in result.json()["environments"]}
    assert images["ml_training"] == "registry.example/ml:1"
    assert images["preprocessing"] != "registry.example/ml:1"
    bad = invoke("deploy", "workflow.py", "viz_env", "--image", "oops")
    assert bad.exit_code == ExitCode.USAGE_ERROR and "--image takes NAME=VALUE" in bad.stderr


def test_python_api_deploys_objects(example):
    sys.path.insert(0, str(example))
    import workflow

    result = fd.deploy(workflow.viz_env, version="v2.0.0", root_dir=example, options={"quiet": True})
    assert result.version == "v2.0.0"
    assert list(result.environments) == ["preprocessing", "ml_training", "visualization"]
    dry = fd.deploy(workflow.prep_env, workflow.ml_env, dry_run=True, root_dir=example, options={"quiet": True})
    assert dry.dry_run and list(dry.environments) == ["preprocessing", "ml_training"]
    with pytest.raises(fd.UsageError, match="takes TaskEnvironment objects"):
        fd.deploy("not an env")


def test_json_result_round_trips(example, invoke):
    data = invoke("deploy", "workflow.py", "prep_env", "--output", "json", "-q").stdout
    assert json.loads(data)["backend"] == "local"

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
    proc = subprocess.run(
        [sys.executable, "-m", "flyte_deploy", "deploy", "workflow.py", "viz_env"],
        cwd=example,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
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
    changed = invoke("deploy", "workflow.py", "viz_env", "--version", "v1", "--image", "ml_training=acme/ml:2", "-q")
    assert changed.exit_code == ExitCode.REGISTRATION_FAILED
    errors = changed.stderr.strip().splitlines()
    assert errors == [
        "error: task ml_training.train version v1 is already deployed with a different spec in examples/development"
        " (differs in task_template.container.image); versions are immutable: pass a new --version;"
        " registered: none; not registered: preprocessing.clean, ml_training.train, visualization.report"
    ]
    assert [
        r["image"] for r in list_deployments((example / ".flyte-deploy").as_uri()) if r["environment"] == "ml_training"
    ] != ["acme/ml:2"]


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
    store = example / ".flyte-deploy" / "deployments.db"
    assert invoke("ls").stdout.strip() == f"nothing deployed in {store}"
    assert not store.exists()  # listing creates nothing
    invoke("deploy", "workflow.py", "ml_env", "--version", "v7", "-q")
    table = invoke("ls")
    assert "ml_training" in table.stdout and "preprocessing" in table.stdout and "v7" in table.stdout
    assert f"Deployed in {store}" in table.stdout and "examples/development" in table.stdout
    records = invoke("ls", "--output", "json").json()
    assert {(r["environment"], r["version"]) for r in records} == {("ml_training", "v7"), ("preprocessing", "v7")}
    assert "visualization" not in table.stdout


def test_store_of_record_must_be_local_but_bundles_go_to_any_fsspec_url(example, invoke, monkeypatch, tmp_path):
    refused = invoke("deploy", "workflow.py", "prep_env", "--store", "memory://store-test", "-q")
    assert refused.exit_code == ExitCode.USAGE_ERROR
    assert refused.stderr.strip().splitlines() == [
        "error: the local backend's store must be a local directory, got memory://store-test: it is a SQLite"
        " database; put bundles at any fsspec URL with the storage setting"
    ]
    secret = invoke("ls", "--store", "s3://KEY:SECRET@bucket/store")
    assert secret.exit_code == ExitCode.USAGE_ERROR and "SECRET" not in secret.stderr
    assert not (example / ".flyte-deploy").exists()

    monkeypatch.setenv("FLYTE_DEPLOY_STORAGE", "memory://store-test/bundles")
    result = invoke("deploy", "workflow.py", "prep_env", "--store", "records", "-q", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["bundle"]["uri"].startswith("memory://store-test/bundles/")
    bucket = (tmp_path / "bucket").as_uri()  # run fetches in another process: a URL it can read
    monkeypatch.setenv("FLYTE_DEPLOY_STORAGE", bucket)
    result = invoke(
        "deploy", "workflow.py", "prep_env", "--store", "records", "-q", "--output", "json", "--version", "v2"
    )
    assert result.exit_code == 0 and result.json()["bundle"]["uri"].startswith(bucket + "/"), result.stderr
    assert (example / "records" / "deployments.db").is_file()  # relative: against the current directory
    assert [(r["environment"], r["latest"]) for r in list_deployments(str(example / "records"))] == [
        ("preprocessing", False),
        ("preprocessing", True),
    ]
    ran = invoke("run", "preprocessing.clean", "--store", "records", "--input", "raw=[2, 4]", "--output", "json")
    assert ran.exit_code == 0, ran.stderr
    assert ran.json()["outputs"] == {"o0": [0.5, 1.0]}
    assert not (example / ".flyte-deploy").exists()


def test_copy_style_none_requires_a_version(example, invoke):
    result = invoke("deploy", "workflow.py", "viz_env", "--copy-style", "none")
    assert result.exit_code == ExitCode.USAGE_ERROR
    assert "--copy-style none needs an explicit --version" in result.stderr
    ok = invoke(
        "deploy", "workflow.py", "viz_env", "--copy-style", "none", "--version", "baked-1", "--output", "json", "-q"
    )
    assert ok.exit_code == 0 and ok.json()["bundle"]["uri"] is None


def test_image_override_by_environment_name(example, invoke):
    result = invoke(
        "deploy",
        "workflow.py",
        "viz_env",
        "--image",
        "ml_training=registry.example/ml:1",
        "--output",
        "json",
        "-q",
        "--dry-run",
    )
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

"""Bundles through the public CLI: copy styles, root dir, one shared bundle, reproducible
rebuilds, and what a clean interpreter can run from the extracted bundle."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from flyte_deploy.bundle import archive as bundle_archive
from flyte_deploy.bundle import extract_archive
from flyte_deploy.cli import cli as cli_group
from flyte_deploy.cli import run_cli
from flyte_deploy.errors import ExitCode

from .bundle_helpers import (
    cli,
    deploy_json,
    local_archive,
    make_project,
    run_in_bundle,
    write,
)

LOADED = ["flows.py", "helpers/__init__.py", "helpers/numbers.py", "helpers/text.py"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop")


def members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_loaded_modules_is_the_default_and_holds_only_imported_code(project: Path, tmp_path: Path) -> None:
    result = deploy_json(["flows.py", "audit"], project)
    assert result["bundle"]["copy_style"] == "loaded_modules"
    archive = local_archive(result)
    assert members(archive) == LOADED
    out = tmp_path / "loaded"
    extract_archive(archive, out)
    # the imported helper package works from the bundle alone...
    ok = run_in_bundle(out, "import flows; print(flows.check())", tmp_path / "cwd")
    assert ok.returncode == 0 and ok.stdout.strip() == "OK!", ok.stderr
    # ...but the data file and the dynamically imported module were never imported
    data = run_in_bundle(out, "import flows; flows.total()", tmp_path / "cwd")
    assert data.returncode != 0 and "FileNotFoundError" in data.stderr and "prices.json" in data.stderr
    dynamic = run_in_bundle(out, "import flows; flows.plugin_name()", tmp_path / "cwd")
    assert dynamic.returncode != 0
    assert "ModuleNotFoundError: No module named 'dynamic'" in dynamic.stderr


def test_copy_style_all_holds_data_and_dynamic_modules(project: Path, tmp_path: Path) -> None:
    result = deploy_json(["flows.py", "audit", "--copy-style", "all"], project)
    archive = local_archive(result)
    assert members(archive) == sorted(
        LOADED + ["README.md", "data/prices.json", "dynamic/__init__.py", "dynamic/extra.py", "pyproject.toml"]
    )
    out = tmp_path / "all"
    extract_archive(archive, out)
    run = run_in_bundle(out, "import flows; print(flows.total(), flows.plugin_name())", tmp_path / "cwd")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["3.75", "extra-plugin"]


def test_all_never_bundles_the_local_store_or_caches(project: Path) -> None:
    deploy_json(["flows.py", "shop"], project)  # fills .flyte-deploy
    write(project, {"helpers/__pycache__/numbers.cpython-311.pyc": "junk", ".gitignore": "*.md\n"})
    archive = local_archive(deploy_json(["flows.py", "shop", "--copy-style", "all"], project))
    names = members(archive)
    assert "README.md" not in names and ".gitignore" in names
    assert not [n for n in names if n.startswith(".flyte-deploy") or "__pycache__" in n]
    # a configured store and storage under the root are skipped too
    store = ["--store", (project / "state").as_uri()]
    env = {"FLYTE_DEPLOY_STORAGE": (project / "blobs").as_uri()}
    deploy_json(["flows.py", "shop", "--copy-style", "all", *store], project, env)
    assert (project / "state" / "deployments.db").is_file() and any((project / "blobs").iterdir())
    again = deploy_json(["flows.py", "shop", "--copy-style", "all", "--dry-run", *store], project, env)
    assert again["bundle"]["files"] == len(names)


def test_all_environments_share_one_bundle(project: Path) -> None:
    result = deploy_json(["--all", "flows.py"], project)
    assert sorted(e["name"] for e in result["environments"]) == ["audit", "shop"]
    listed = cli(["ls", "--output", "json"], project)
    records = json.loads(listed.stdout)
    assert len(records) == 2 and {r["bundle"] for r in records} == {result["bundle"]["uri"]}


def test_rebuilds_are_byte_identical_and_touching_files_changes_nothing(project: Path, tmp_path: Path) -> None:
    first = deploy_json(["flows.py", "audit", "--copy-style", "all", "--dry-run"], project)
    for path in project.rglob("*"):
        os.utime(path, (2_000_000_000, 2_000_000_000))
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    again = deploy_json(["flows.py", "audit", "--copy-style", "all", "--dry-run"], project)
    elsewhere = deploy_json(["flows.py", "audit", "--copy-style", "all", "--dry-run"], copy)
    assert first["bundle"]["digest"] == again["bundle"]["digest"] == elsewhere["bundle"]["digest"]
    assert first["version"] == again["version"] == elsewhere["version"]
    (copy / "helpers" / "numbers.py").write_text("def add_all(values):\n    return float(sum(values)) + 0\n")
    changed = deploy_json(["flows.py", "audit", "--copy-style", "all", "--dry-run"], copy)
    assert changed["bundle"]["digest"] != first["bundle"]["digest"] and changed["version"] != first["version"]


def deploy_in_process(project: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    before = set(sys.modules)
    try:
        code = run_cli(cli_group, ["deploy", *args, "--output", "json", "-q"])
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_another_compressor_gives_the_same_bundle_name_and_version_and_redeploys_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    args = ["flows.py", "audit", "--copy-style", "all"]
    first = deploy_in_process(project, args, capsys)
    stored = Path(first["bundle"]["uri"].removeprefix("file://"))
    assert stored.name == f"{first['bundle']['digest']}.tar.gz"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first["bundle"]["archive_digest"]
    before = stored.stat()
    # as on another machine (its own, empty signature cache) whose zlib writes other bytes for the same stream
    monkeypatch.setenv("FLYTE_DEPLOY_CACHE_DIR", str(project.parent / "other-machine-cache"))
    monkeypatch.setattr(bundle_archive, "COMPRESS_LEVEL", 9)
    other = deploy_in_process(project, args, capsys)
    assert other["bundle"]["archive_digest"] != first["bundle"]["archive_digest"]
    assert other["bundle"]["size"] != first["bundle"]["size"]
    assert other["bundle"]["digest"] == first["bundle"]["digest"] and other["bundle"]["uri"] == first["bundle"]["uri"]
    assert other["version"] == first["version"]
    assert {r["status"] for r in first["registrations"]} == {"created"}
    assert {r["status"] for r in other["registrations"]} == {"unchanged"}
    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # the stored object is kept


def test_copy_style_none_needs_a_version(project: Path) -> None:
    refused = cli(["deploy", "flows.py", "shop", "--copy-style", "none"], project)
    assert refused.returncode == ExitCode.USAGE_ERROR
    assert "--copy-style none needs an explicit --version" in refused.stderr
    assert not (project / ".flyte-deploy").exists()
    result = deploy_json(["flows.py", "shop", "--copy-style", "none", "--version", "v1"], project)
    assert result["version"] == "v1" and result["bundle"]["digest"] is None and result["bundle"]["uri"] is None
    assert not (project / ".flyte-deploy" / "bundles").exists()


def test_root_dir_drives_bundling_and_a_task_outside_it_is_an_error(project: Path, tmp_path: Path) -> None:
    # deploying from elsewhere with --root-dir bundles relative to the root
    result = deploy_json(["shop/flows.py", "shop", "--root-dir", "shop"], tmp_path)
    assert members(local_archive(result)) == LOADED
    # a root dir that does not contain the task's file is refused, naming it
    other = tmp_path / "other"
    other.mkdir()
    refused = cli(["deploy", str(project / "flows.py"), "shop", "--root-dir", str(other), "-q"], tmp_path)
    assert refused.returncode == ExitCode.BUNDLE_FAILED
    assert f"is defined in {project / 'flows.py'}, outside the root dir {other}" in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "task shop.total (environment shop)" in errors[0]


def test_flyte_deploy_run_catches_what_loaded_modules_missed(project: Path) -> None:
    """``run`` loads tasks from the uploaded bundle only: the dynamic import and the data
    file fail under loaded_modules and work under all."""
    deploy_json(["flows.py", "audit", "--version", "lm"], project)
    deploy_json(["flows.py", "audit", "--version", "all", "--copy-style", "all"], project)
    missed = cli(["run", "shop.plugin_name", "--version", "lm"], project)
    assert missed.returncode == ExitCode.RUN_FAILED
    assert "ModuleNotFoundError: No module named 'dynamic'" in missed.stderr
    no_data = cli(["run", "shop.total", "--version", "lm"], project)
    assert no_data.returncode == ExitCode.RUN_FAILED and "prices.json" in no_data.stderr
    caught = cli(["run", "shop.plugin_name", "--version", "all", "--output", "json"], project)
    assert caught.returncode == 0, caught.stderr
    assert json.loads(caught.stdout)["outputs"] == {"o0": "extra-plugin"}
    total = cli(["run", "shop.total", "--version", "all", "--output", "json"], project)
    assert json.loads(total.stdout)["outputs"] == {"o0": 3.75}

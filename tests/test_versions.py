"""The version rule (flyte_deploy.versions): refused before anything is built, naming the
rule; a version never becomes a path; derived versions follow it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flyteidl2.task import task_definition_pb2

import flyte_deploy as fd
from flyte_deploy.errors import ExitCode
from flyte_deploy.versions import MAX_LENGTH, PATTERN, RULE, check_version, version_problem
from tests.conftest import write_tree

FLOW = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="env")

@env.task
def one(x: int) -> int:
    return x
"""


def test_the_rule_is_flytes_length_limit_and_a_safe_alphabet() -> None:
    # flyteidl2 validates TaskIdentifier.version as 1 to 63 characters
    rules = task_definition_pb2.TaskIdentifier.DESCRIPTOR.fields_by_name["version"].GetOptions()
    assert "max_len: 63" in str(rules) and "min_len: 1" in str(rules)
    assert MAX_LENGTH == 63
    for good in ("v1", "1.0.0", "release-1.0_rc2", "A" * 63, "0", "d34041f83bc9db0fc3cabaebb956dba1"):
        assert version_problem(good) is None and check_version(good) == good
    for bad, problem in [
        ("", "it is empty"),
        ("a" * 64, "it has 64 characters"),
        ("../../x", "it starts with '.'"),
        ("release/1.0", "'/' is not allowed"),
        ("-rf", "it starts with '-'"),
        ("v1 beta", "' ' is not allowed"),
        ("v1\n", "'\\n' is not allowed"),
        ("vé", "'é' is not allowed"),
        ("v1:latest", "':' is not allowed"),
        ("٣", "it starts with '٣'"),
    ]:
        assert version_problem(bad) == problem, bad
        with pytest.raises(fd.UsageError) as refused:
            check_version(bad, "--version")
        assert str(refused.value) == f"--version {bad!r} is not a valid version ({problem}): a version is {RULE}"


@pytest.mark.parametrize(
    "version,problem",
    [("../../x", "it starts with '.'"), ("release/1.0", "'/' is not allowed"), ("/etc/passwd", "it starts with '/'")],
)
def test_a_bad_version_is_refused_before_anything_is_built_or_written(
    tmp_path: Path, invoke, monkeypatch: pytest.MonkeyPatch, version: str, problem: str
) -> None:
    root = write_tree(tmp_path / "outer" / "inner" / "project", {"flow.py": FLOW})
    monkeypatch.chdir(root)
    before = sorted(p for p in tmp_path.rglob("*"))
    for args in (
        ["deploy", "flow.py", "env"],
        ["check", "flow.py", "env"],
        ["deploy", "flow.py", "env", "--dry-run"],
        ["run", "env.one"],
    ):
        result = invoke(*args, "--version", version)
        assert result.exit_code == ExitCode.USAGE_ERROR, (args, result.stderr)
        assert result.stderr.strip().splitlines() == [
            f"error: --version {version!r} is not a valid version ({problem}): a version is {RULE}"
        ], args
    assert sorted(p for p in tmp_path.rglob("*") if "__pycache__" not in p.parts) == before  # nothing written


def test_the_python_api_refuses_a_bad_version_too(tmp_path: Path) -> None:
    env = fd.TaskEnvironment(name="api")
    with pytest.raises(fd.UsageError, match="'x/y' is not a valid version"):
        fd.deploy(env, version="x/y", root_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_derived_versions_follow_the_rule(tmp_path: Path, invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(write_tree(tmp_path / "p", {"flow.py": FLOW}))
    result = invoke("deploy", "flow.py", "env", "-q", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert PATTERN.fullmatch(result.json()["version"])


def test_a_version_computed_by_a_plugin_follows_the_rule(
    tmp_path: Path, invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch name is a tempting version, and not a valid one."""
    root = write_tree(
        tmp_path / "p",
        {
            "flow.py": FLOW,
            "deployconf.py": """
        import flyte_deploy as fd

        @fd.hookimpl(tryfirst=True)
        def compute_version(session, plan):
            return "feature/login-" + plan.bundle.digest[:8]
    """,
        },
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "flow.py", "env", "-q")
    assert result.exit_code == ExitCode.USAGE_ERROR
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the version compute_version returned 'feature/login-")
    assert line.endswith(f"is not a valid version ('/' is not allowed): a version is {RULE}")
    assert not os.path.exists(root / ".flyte-deploy" / "bundles")  # refused before the upload
    assert invoke("ls", "--output", "json").json() == []

"""resolve_dependencies: transitive depends_on closure, dependencies first, cycles."""

from __future__ import annotations

import pytest

import flyte_deploy as fd
from flyte_deploy.builtin.dependencies import resolve
from flyte_deploy.errors import DependencyError, ExitCode


def chain():
    prep = fd.TaskEnvironment(name="preprocessing")
    ml = fd.TaskEnvironment(name="ml_training", depends_on=[prep])
    viz = fd.TaskEnvironment(name="visualization", depends_on=[ml])
    return prep, ml, viz


def order(envs):
    return [e.name for e in resolve(envs)]


def test_deploying_the_last_env_pulls_in_the_whole_chain_dependencies_first():
    prep, ml, viz = chain()
    assert order([viz]) == ["preprocessing", "ml_training", "visualization"]


def test_explicit_envs_are_deployed_once_each():
    prep, ml, viz = chain()
    assert order([viz, ml, prep]) == ["preprocessing", "ml_training", "visualization"]
    assert order([prep, viz]) == ["preprocessing", "ml_training", "visualization"]


def test_diamond_is_depth_first_and_shared_dependency_appears_once():
    base = fd.TaskEnvironment(name="base")
    left = fd.TaskEnvironment(name="left", depends_on=[base])
    right = fd.TaskEnvironment(name="right", depends_on=[base])
    top = fd.TaskEnvironment(name="top", depends_on=[left, right])
    assert order([top]) == ["base", "left", "right", "top"]


def test_unrelated_selected_envs_keep_their_order():
    a, b = fd.TaskEnvironment(name="a"), fd.TaskEnvironment(name="b")
    assert order([b, a]) == ["b", "a"]


def test_a_cycle_is_an_error_that_prints_the_cycle():
    a = fd.TaskEnvironment(name="a")
    b = fd.TaskEnvironment(name="b", depends_on=[a])
    c = fd.TaskEnvironment(name="c", depends_on=[b])
    a.depends_on = (c,)  # only possible by mutation: the constructor needs existing envs
    cycle = r"depends_on cycle: (a -> c -> b -> a|b -> a -> c -> b|c -> b -> a -> c)"
    with pytest.raises(DependencyError, match=cycle) as info:
        resolve([c])
    assert info.value.exit_code == ExitCode.DEPENDENCY_FAILED


def test_self_dependency_is_a_cycle():
    a = fd.TaskEnvironment(name="a")
    a.depends_on = (a,)
    with pytest.raises(DependencyError, match="a -> a"):
        resolve([a])


def test_two_different_envs_with_one_name_in_the_closure_are_rejected():
    dep1 = fd.TaskEnvironment(name="shared")
    dep2 = fd.TaskEnvironment(name="shared")
    top = fd.TaskEnvironment(name="top", depends_on=[dep1, dep2])
    with pytest.raises(DependencyError, match="two environments are named 'shared'"):
        resolve([top])


def test_cli_reports_a_cycle_with_its_exit_code(project, invoke, monkeypatch):
    root = project(
        {
            "envs.py": """
        import flyte_deploy as fd
        a = fd.TaskEnvironment(name="a")
        b = fd.TaskEnvironment(name="b", depends_on=[a])
        a.depends_on = (b,)
    """
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "envs.py", "a")
    assert result.exit_code == ExitCode.DEPENDENCY_FAILED
    assert "depends_on cycle: a -> b -> a" in result.stderr
    assert not (root / ".flyte-deploy").exists()

"""Built-in ``resolve_dependencies``: the selected environments plus the transitive closure
of ``depends_on``, dependencies before dependents (depth-first post-order), each once."""

from __future__ import annotations

from typing import Sequence

from ..errors import DependencyError
from ..hookspecs import hookimpl
from ..sdk import TaskEnvironment
from ..session import DeploySession


def closure(selected: Sequence[TaskEnvironment]) -> dict[str, TaskEnvironment]:
    """Every environment ``selected`` reaches through ``depends_on``, by name. Two different
    environment objects sharing a name is a ``DependencyError``."""
    seen: dict[str, TaskEnvironment] = {}
    stack = list(selected)
    while stack:
        env = stack.pop()
        other = seen.setdefault(env.name, env)
        if other is not env:
            raise DependencyError(f"two environments are named {env.name!r}: {other.location} and {env.location}")
        stack.extend(dep for dep in env.depends_on if seen.get(dep.name) is not dep)
    return seen


def resolve(selected: Sequence[TaskEnvironment]) -> list[TaskEnvironment]:
    """The deploy order; a cycle is a ``DependencyError`` that prints it."""
    environments = closure(selected)
    order: list[TaskEnvironment] = []
    done: set[str] = set()
    path: list[str] = []  # the environments being visited, outermost first

    def visit(env: TaskEnvironment) -> None:
        if env.name in done:
            return
        if env.name in path:
            names = path[path.index(env.name):] + [env.name]
            raise DependencyError("depends_on cycle: " + " -> ".join(names)
                                  + f" (defined at {environments[names[0]].location})")
        path.append(env.name)
        for dep in env.depends_on:
            visit(dep)
        path.pop()
        done.add(env.name)
        order.append(env)

    for env in selected:
        visit(env)
    return order


@hookimpl(trylast=True)
def resolve_dependencies(session: DeploySession, selected: Sequence[TaskEnvironment]) -> list[TaskEnvironment]:
    return resolve(selected)

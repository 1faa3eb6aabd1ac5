"""Built-in ``resolve_dependencies``: the selected environments plus the transitive closure
of ``depends_on``, dependencies before dependents (depth-first post-order), each once."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sequence
from typing import Any

from ..environments import Environment
from ..errors import DependencyError
from ..hookspecs import hookimpl
from ..session import DeploySession


def _dependencies_of(env: Environment) -> list[Environment]:
    """``env.depends_on``, checked again: it may have been replaced after construction."""
    deps: Any = env.depends_on
    where = f"environment {env.name!r} ({env.location})"
    if isinstance(deps, (str, bytes)) or not isinstance(deps, Iterable):
        raise DependencyError(f"{where}: depends_on must be a list of environments, got {type(deps).__name__}")
    deps = list(deps)
    for dep in deps:
        if not (isinstance(getattr(dep, "name", None), str) and hasattr(dep, "depends_on") and hasattr(dep, "tasks")):
            raise DependencyError(
                f"{where}: depends_on holds {reprlib.repr(dep)} ({type(dep).__name__}), not an environment"
            )
    return deps


def dependency_graph(selected: Sequence[Environment]) -> dict[str, list[Environment]]:
    """Every environment reachable from ``selected``, by name, with its dependencies. Two
    different environment objects sharing a name is a ``DependencyError``."""
    seen: dict[str, Environment] = {}
    graph: dict[str, list[Environment]] = {}
    stack = list(selected)
    while stack:
        env = stack.pop()
        other = seen.setdefault(env.name, env)
        if other is not env:
            raise DependencyError(f"two environments are named {env.name!r}: {other.location} and {env.location}")
        if env.name in graph:
            continue
        graph[env.name] = _dependencies_of(env)
        stack.extend(graph[env.name])
    return graph


def find_cycle(graph: dict[str, list[Environment]]) -> list[str] | None:
    """Names along one ``depends_on`` cycle, the first repeated at the end; None if acyclic."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        path.append(name)
        for dep in graph[name]:
            if dep.name in path:
                return path[path.index(dep.name) :] + [dep.name]
            if dep.name not in done and (cycle := visit(dep.name)):
                return cycle
        path.pop()
        done.add(name)
        return None

    for name in graph:
        if name not in done and (cycle := visit(name)):
            return cycle
    return None


def resolve(selected: Sequence[Environment]) -> list[Environment]:
    """The deploy order; a cycle is a ``DependencyError`` that prints it."""
    graph = dependency_graph(selected)
    envs = {env.name: env for deps in graph.values() for env in deps} | {env.name: env for env in selected}
    cycle = find_cycle(graph)
    if cycle:
        raise DependencyError("depends_on cycle: " + " -> ".join(cycle) + f" (defined at {envs[cycle[0]].location})")
    order: list[Environment] = []
    visited: set[str] = set()

    def visit(env: Environment) -> None:
        if env.name in visited:
            return
        visited.add(env.name)
        for dep in graph[env.name]:
            visit(dep)
        order.append(env)

    for env in selected:
        visit(env)
    return order


@hookimpl(trylast=True)
def resolve_dependencies(session: DeploySession, selected: Sequence[Environment]) -> list[Environment]:
    return resolve(selected)

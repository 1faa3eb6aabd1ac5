"""Built-in ``resolve_dependencies``: the selected environments plus the transitive closure
of ``depends_on``, dependencies before dependents (depth-first post-order), each once."""

from __future__ import annotations

from typing import Sequence

import networkx as nx

from ..environments import Environment
from ..errors import DependencyError
from ..hookspecs import hookimpl
from ..session import DeploySession


def dependency_graph(selected: Sequence[Environment]) -> nx.DiGraph:
    """Edges point from an environment to each environment it depends on; nodes are names.
    Two different environment objects sharing a name is a ``DependencyError``."""
    graph = nx.DiGraph()
    seen: dict[str, Environment] = {}
    stack = list(selected)
    while stack:
        env = stack.pop()
        other = seen.setdefault(env.name, env)
        if other is not env:
            raise DependencyError(f"two environments are named {env.name!r}: {other.location} and {env.location}")
        if "env" in graph.nodes.get(env.name, {}):
            continue
        graph.add_node(env.name, env=env)
        for dep in env.depends_on:
            graph.add_edge(env.name, dep.name)
            stack.append(dep)
    return graph


def resolve(selected: Sequence[Environment]) -> list[Environment]:
    """The deploy order; a cycle is a ``DependencyError`` that prints it."""
    graph = dependency_graph(selected)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [edge[0] for edge in cycle] + [cycle[0][0]]
        raise DependencyError("depends_on cycle: " + " -> ".join(names)
                              + f" (defined at {graph.nodes[names[0]]['env'].location})")
    order: list[Environment] = []
    visited: set[str] = set()

    def visit(name: str) -> None:
        if name in visited:
            return
        visited.add(name)
        env = graph.nodes[name]["env"]
        for dep in env.depends_on:
            visit(dep.name)
        order.append(env)

    for env in selected:
        visit(env.name)
    return order


@hookimpl(trylast=True)
def resolve_dependencies(session: DeploySession, selected: Sequence[Environment]) -> list[Environment]:
    return resolve(selected)

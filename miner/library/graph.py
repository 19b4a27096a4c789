"""The dependency graph of factors that read other factors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from miner.errors import LibraryError
from miner.lang import Node, history_rows


def chained_history(
    order: Sequence[str], trees: Mapping[str, Node], dependencies: Mapping[str, Iterable[str]]
) -> dict[str, int]:
    """Rows of history one value needs counting the factors it reads as if inlined: its own
    `history_rows` plus the largest chained history among its dependencies (`order` puts every
    dependency first). A window that starts this many rows early computes the factor and every
    factor it reads exactly, so `update` passes dependencies on without reading them back."""
    reach: dict[str, int] = {}
    for fid in order:
        reach[fid] = history_rows(trees[fid]) + max((reach[dep] for dep in dependencies[fid]), default=0)
    return reach


def dependency_order(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """The graph's nodes with every dependency before its dependents (ties by name).

    Dependencies outside the graph are ignored; a cycle is a LibraryError naming it.
    """
    deps = {node: sorted(set(parents) & set(graph)) for node, parents in graph.items()}
    waiting = {node: len(parents) for node, parents in deps.items()}
    children: dict[str, list[str]] = {node: [] for node in graph}
    for node, parents in deps.items():
        for parent in parents:
            children[parent].append(node)
    ready = sorted(node for node, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
        ready.sort()
    if len(order) < len(graph):
        raise LibraryError(f"dependency cycle among factors: {_a_cycle(deps, set(graph) - set(order))}")
    return order


def _a_cycle(deps: Mapping[str, list[str]], stuck: set[str]) -> str:
    """One cycle among the nodes Kahn's algorithm could not order, as 'a -> b -> a'."""
    node = min(stuck)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min(parent for parent in deps[node] if parent in stuck)
    cycle = path[path.index(node) :] + [node]
    return " -> ".join(reversed(cycle))

"""What a formula needs: its lookback, the names it reads, its size, whether it reads minute data."""

from __future__ import annotations

import functools

from miner.lang.nodes import Call, Name, Node, Num, walk
from miner.lang.parser import parse
from operators import REGISTRY, Kind, Operator


def _literals(spec: Operator, args: tuple[Node, ...]) -> dict[str, float]:
    return {a.name: v.value for a, v in zip(spec.args, args) if a.is_literal and isinstance(v, Num)}


@functools.lru_cache(maxsize=200_000)
def _lookback(node: Node) -> int:
    if not isinstance(node, Call):
        return 0
    spec = REGISTRY[node.op]
    children = [_lookback(a) for a, f in zip(node.args, spec.args) if f.kind is Kind.SERIES]
    return spec.lookback(_literals(spec, node.args)) + max(children, default=0)


def lookback(formula: str | Node) -> int:
    """How many past rows one value needs: w - 1 per trailing window, d per lag, max over children."""
    return _lookback(parse(formula))


def names(formula: str | Node) -> set[str]:
    """Every field, group, intraday field or factor name a formula reads."""
    return {node.name for node in walk(parse(formula)) if isinstance(node, Name)}


def size(formula: str | Node) -> int:
    """Number of nodes of the tree."""
    return sum(1 for _ in walk(parse(formula)))


def history_rows(formula: str | Node) -> int:
    """Rows of history one value needs: the lookback, plus one when the derived `returns` is read
    (it needs the previous close)."""
    tree = parse(formula)
    return lookback(tree) + (1 if "returns" in names(tree) else 0)


def reads_intraday(formula: str | Node) -> bool:
    """Whether a formula reads minute data (an intraday reducer somewhere in the tree)."""
    return any(
        isinstance(node, Call) and any(arg.kind is Kind.INTRADAY for arg in REGISTRY[node.op].args)
        for node in walk(parse(formula))
    )

"""The formula tree: three immutable node kinds and the one spelling of a number.

A formula is a typed tree of `Num` (a literal), `Name` (a field, a group label, an intraday field
or a library factor) and `Call` (an operator from the registry applied to arguments). Python's
infix operators map onto registry operators (`a + b` is `add(a, b)`), so the tree has one
spelling of every operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple[Node, ...]


Node = Num | Name | Call


def format_number(value: float) -> str:
    """One spelling per number: integers without a decimal point, other floats by `repr`."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def walk(node: Node) -> Iterator[Node]:
    """The node and all its descendants, depth first."""
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)

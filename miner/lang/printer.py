"""Printing and the canonical form: one string per formula, which `parse` reads back to the same tree."""

from __future__ import annotations

import functools

from miner.lang.nodes import Call, Name, Node, Num, format_number
from miner.lang.parser import parse
from operators import REGISTRY, Kind, Operator

# Python's own precedence, so that printed formulas parse back to the same tree.
_PRECEDENCE = {
    "lt": 1,
    "le": 1,
    "gt": 1,
    "ge": 1,
    "eq": 1,
    "ne": 1,
    "or_": 2,
    "and_": 4,
    "add": 6,
    "sub": 6,
    "mul": 7,
    "div": 7,
    "neg": 8,
    "not_": 8,
    "power": 9,
}
_ATOM = 10


def _precedence(node: Node) -> int:
    if isinstance(node, Num):
        return _PRECEDENCE["neg"] if node.value < 0 else _ATOM
    if isinstance(node, Call) and REGISTRY[node.op].infix is not None:
        return _PRECEDENCE[node.op]
    return _ATOM


@functools.lru_cache(maxsize=200_000)
def to_string(node: Node) -> str:
    """Print a tree as a formula that `parse` reads back to the same tree."""
    if isinstance(node, Num):
        return format_number(node.value)
    if isinstance(node, Name):
        return node.name
    spec = REGISTRY[node.op]
    if spec.infix is None or (node.op == "neg" and isinstance(node.args[0], Num)):
        return f"{node.op}({', '.join(_print_args(spec, node.args))})"  # `-2` would read as a number
    mine = _PRECEDENCE[node.op]
    if len(node.args) == 1:
        (operand,) = node.args
        return f"{spec.infix}{_wrap(operand, _precedence(operand) < mine)}"
    left, right = node.args
    if node.op == "power":  # right-associative
        left_paren, right_paren = _precedence(left) <= mine, _precedence(right) < mine
    else:
        left_paren, right_paren = _precedence(left) < mine, _precedence(right) <= mine
    if mine == 1:  # comparisons never chain
        left_paren = _precedence(left) <= 1
    return f"{_wrap(left, left_paren)} {spec.infix} {_wrap(right, right_paren)}"


def _wrap(node: Node, parenthesize: bool) -> str:
    text = to_string(node)
    return f"({text})" if parenthesize else text


def _print_args(spec: Operator, args: tuple[Node, ...]) -> list[str]:
    """Arguments, dropping trailing ones equal to their defaults."""
    texts = [to_string(a) for a in args]
    keep = len(args)
    while keep > spec.min_arity:
        default = spec.args[keep - 1].default
        arg = args[keep - 1]
        if not (isinstance(arg, Num) and default is not None and arg.value == default):
            break
        keep -= 1
    return texts[:keep]


@functools.lru_cache(maxsize=200_000)
def canonicalize(node: Node) -> Node:
    """The one tree of every spelling: sorted commutative arguments, `-1 * x` as `-x`, `--x` as `x`."""
    if not isinstance(node, Call):
        return node
    args = tuple(canonicalize(a) for a in node.args)
    spec = REGISTRY[node.op]
    if spec.commutative:  # the series arguments commute; windows and constants stay put
        n_series = sum(a.kind is Kind.SERIES for a in spec.args)
        args = tuple(sorted(args[:n_series], key=to_string)) + args[n_series:]
    if node.op == "mul" and Num(-1.0) in args:
        other = args[1] if args[0] == Num(-1.0) else args[0]
        return canonicalize(Call("neg", (other,)))
    if node.op == "neg":
        (operand,) = args
        if isinstance(operand, Call) and operand.op == "neg":
            return operand.args[0]
    return Call(node.op, args)


def canonical(formula: str | Node) -> str:
    """The canonical string of a formula: caches, deduplication and the library key on it."""
    return to_string(canonicalize(parse(formula)))

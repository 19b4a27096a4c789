"""Parsing: a whitelisted subset of Python expression syntax (read with `ast`, never `eval`'d)."""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable

from miner.errors import FormulaError
from miner.lang.nodes import Call, Name, Node, Num, format_number
from operators import REGISTRY, Arg, Kind, Operator

MAX_FORMULA_CHARS = 4000
MAX_DEPTH = 60
# The longest window or lag a formula may use, in rows: about 400 years of trading days. A
# window longer than the data is fine (it covers all the rows there are); one longer than this is
# a typo, or an attempt to make a kernel allocate without bound.
MAX_WINDOW = 100_000

_BINARY_OPS: dict[type[ast.AST], str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "power",
    ast.BitAnd: "and_",
    ast.BitOr: "or_",
}
_COMPARE_OPS: dict[type[ast.AST], str] = {
    ast.Lt: "lt",
    ast.LtE: "le",
    ast.Gt: "gt",
    ast.GtE: "ge",
    ast.Eq: "eq",
    ast.NotEq: "ne",
}
# Python's own precedence, so that printed formulas parse back to the same tree.

# Where an operator takes a number (a window, a lag, a constant), arithmetic on numbers is computed
# at parse time: `ts_mean(close, 2 * 5)` is `ts_mean(close, 10)`.
_ARITHMETIC: dict[str, Callable[..., float]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "power": operator.pow,
    "neg": operator.neg,
}


def parse(formula: str | Node) -> Node:
    """Parse a formula string into a checked tree; a `FormulaError` names the offending text."""
    if not isinstance(formula, str):
        return formula
    return _parse_text(formula.strip())


@functools.lru_cache(maxsize=100_000)
def _parse_text(text: str) -> Node:
    """Parse a stripped formula string (trees are immutable, so parses are shared)."""
    if not text:
        raise FormulaError("empty formula")
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula is longer than {MAX_FORMULA_CHARS} characters: {text[:60]}...")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"cannot parse {text!r}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(f"cannot parse {text!r}: {type(exc).__name__}") from None
    return _Reader(text).read(tree.body, depth=0)


class _Reader:
    """Turns a whitelisted Python expression AST into a typed formula tree."""

    def __init__(self, text: str) -> None:
        self.text = text

    def snippet(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.dump(node)

    def fail(self, node: ast.AST, message: str) -> FormulaError:
        return FormulaError(f"{message} in {self.text!r}: {self.snippet(node)!r}")

    def read(self, node: ast.AST, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"formula nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return Name(node.id)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            op = _BINARY_OPS.get(type(node.op))
            if op is None:
                raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")
            return self.call(op, [node.left, node.right], node, depth)
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise self.fail(node, "chained comparison is not allowed; write (a < b) & (b < c)")
            return self.call(_COMPARE_OPS[type(node.ops[0])], [node.left, node.comparators[0]], node, depth)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise self.fail(node, "only plain operator names can be called")
            if node.keywords:
                raise self.fail(node, "keyword arguments are not allowed")
            return self.call(node.func.id, list(node.args), node, depth)
        raise self.fail(node, f"{type(node).__name__} is not part of the formula language")

    def number(self, node: ast.Constant) -> Num:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(node, "only numbers are allowed as literals")
        try:
            number = float(value)
        except OverflowError:
            raise self.fail(node, "number is too large") from None
        if not math.isfinite(number):
            raise self.fail(node, "numbers must be finite")
        return Num(number)

    def unary(self, node: ast.UnaryOp, depth: int) -> Node:
        if isinstance(node.op, ast.UAdd):
            return self.read(node.operand, depth + 1)
        if isinstance(node.op, ast.USub):
            operand = self.read(node.operand, depth + 1)
            if isinstance(operand, Num):
                return Num(-operand.value)
            return self.call("neg", [node.operand], node, depth)
        if isinstance(node.op, ast.Invert):
            return self.call("not_", [node.operand], node, depth)
        raise self.fail(node, "'not' is not allowed; use ~")

    def call(self, name: str, raw_args: list[ast.AST], node: ast.AST, depth: int) -> Node:
        spec = REGISTRY.get(name)
        if spec is None:
            raise self.fail(node, f"unknown operator {name!r}")
        if not spec.min_arity <= len(raw_args) <= spec.arity:
            expected = str(spec.arity) if spec.min_arity == spec.arity else f"{spec.min_arity}-{spec.arity}"
            raise self.fail(node, f"{spec.name} takes {expected} arguments, got {len(raw_args)}")
        args = [self.read(a, depth + 1) for a in raw_args]
        args = [
            self.folded(actual, raw) if formal.is_literal else actual
            for formal, actual, raw in zip(spec.args, args, raw_args)
        ]
        args += [Num(float(a.default)) for a in spec.args[len(args) :]]  # type: ignore[arg-type]
        for i, (formal, actual) in enumerate(zip(spec.args, args)):
            check_argument(
                spec, formal, actual, functools.partial(self.fail, raw_args[i] if i < len(raw_args) else node)
            )
        return Call(spec.name, tuple(args))

    def folded(self, node: Node, raw: ast.AST) -> Node:
        """The number an arithmetic expression of numbers computes to (`10**9`), else `node`."""
        if not isinstance(node, Call) or node.op not in _ARITHMETIC:
            return node
        args = [self.folded(arg, raw) for arg in node.args]
        if not all(isinstance(arg, Num) for arg in args):
            return node
        try:
            value = _ARITHMETIC[node.op](*(arg.value for arg in args))  # type: ignore[union-attr]
        except (ArithmeticError, ValueError):
            value = math.nan
        if not isinstance(value, float) or not math.isfinite(value):
            raise self.fail(raw, "the numeric expression is not a finite number")
        return Num(value)


def check_argument(spec: Operator, formal: Arg, actual: Node, fail: Callable[[str], FormulaError]) -> None:
    """Raise `fail(message)` when `actual` cannot stand as the argument `formal` of `spec`."""
    kind = formal.kind
    where = f"argument {formal.name!r} of {spec.name}"
    if kind is Kind.SERIES:
        if isinstance(actual, Num) and not formal.scalar_ok:
            raise fail(f"{where} must be a series, got the number {format_number(actual.value)}")
        return
    if kind in (Kind.GROUP, Kind.INTRADAY):
        if not isinstance(actual, Name):
            raise fail(f"{where} must be a {kind.value} field name")
        return
    if not isinstance(actual, Num):
        raise fail(f"{where} must be a number, not a series")
    value = actual.value
    if kind is Kind.WINDOW and (value < 1 or not value.is_integer()):
        raise fail(f"window {where} must be a positive integer, got {format_number(value)}")
    if kind is Kind.LAG:
        if value < 0:
            raise fail(f"{where} is {format_number(value)}: a negative lag looks into the future")
        if not value.is_integer():
            raise fail(f"lag {where} must be a whole number, got {format_number(value)}")
    if kind in (Kind.WINDOW, Kind.LAG) and value > MAX_WINDOW:
        raise fail(f"{kind.value} {where} is {format_number(value)}: too large (at most {MAX_WINDOW} rows)")
    if kind is Kind.CONST:
        if formal.lower is not None and value < formal.lower:
            raise fail(f"{where} must be >= {format_number(formal.lower)}, got {format_number(value)}")
        if formal.upper is not None and value > formal.upper:
            raise fail(f"{where} must be <= {format_number(formal.upper)}, got {format_number(value)}")

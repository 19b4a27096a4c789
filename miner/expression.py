"""Formulas: parse (with `ast`, never `eval`), print, canonicalize, lookback, evaluate with a cache.

A formula is a typed tree of three node kinds: `Num` (a literal), `Name` (a field, a group label,
an intraday field or a library factor) and `Call` (an operator from the registry applied to
arguments). Python's infix operators map onto registry operators (`a + b` is `add(a, b)`), so
the tree has one spelling of every operation and the printer chooses infix where one exists.
"""

from __future__ import annotations

import ast
import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from miner.errors import FormulaError
from operators import REGISTRY, Arg, Kind, Operator

if TYPE_CHECKING:
    from miner.data import MarketData

MAX_FORMULA_CHARS = 4000
MAX_DEPTH = 60


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


# ---------------------------------------------------------------------------------------------
# parsing


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
        if not math.isfinite(value):
            raise self.fail(node, "numbers must be finite")
        return Num(float(value))

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
        args += [Num(float(a.default)) for a in spec.args[len(args) :]]  # type: ignore[arg-type]
        for i, (formal, actual) in enumerate(zip(spec.args, args)):
            raw = raw_args[i] if i < len(raw_args) else node
            check_argument(spec, formal, actual, lambda m, r=raw: self.fail(r, m))
        return Call(spec.name, tuple(args))


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
    if kind is Kind.CONST:
        if formal.lower is not None and value < formal.lower:
            raise fail(f"{where} must be >= {format_number(formal.lower)}, got {format_number(value)}")
        if formal.upper is not None and value > formal.upper:
            raise fail(f"{where} must be <= {format_number(formal.upper)}, got {format_number(value)}")


# ---------------------------------------------------------------------------------------------
# printing and canonical form


def format_number(value: float) -> str:
    """One spelling per number: integers without a decimal point, other floats by `repr`."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


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


# ---------------------------------------------------------------------------------------------
# analysis


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
    node = parse(formula)
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Call):
        return set().union(*(names(a) for a in node.args))
    return set()


def size(formula: str | Node) -> int:
    """Number of nodes of the tree."""
    node = parse(formula)
    if isinstance(node, Call):
        return 1 + sum(size(a) for a in node.args)
    return 1


def depth(formula: str | Node) -> int:
    """Height of the tree (a leaf has depth 1)."""
    node = parse(formula)
    if isinstance(node, Call):
        return 1 + max(depth(a) for a in node.args)
    return 1


# ---------------------------------------------------------------------------------------------
# evaluation


class SubexpressionCache:
    """An LRU map from canonical subformula to its read-only panel, bounded by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes or key in self._items:
            return
        self._items[key] = value
        self.bytes += value.nbytes
        while self.bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= evicted.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __len__(self) -> int:
        return len(self._items)


DEFAULT_CACHE_BYTES = 1 << 30


class Evaluator:
    """Evaluates formulas on one `MarketData`, computing each distinct subformula once.

    `extra` supplies further named panels (e.g. library factors a formula refers to).
    Results are read-only arrays that may be shared with the cache.
    """

    def __init__(
        self,
        data: MarketData,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.data = data
        self.cache = SubexpressionCache(cache_bytes)
        self.extra = dict(extra or {})
        self.shape = (len(data.dates), len(data.instruments))
        self._listed: np.ndarray | None = None

    def evaluate(self, formula: str | Node) -> np.ndarray:
        tree = canonicalize(parse(formula))
        try:
            result = self._series(tree)
        except FormulaError as exc:
            raise FormulaError(f"{exc} (evaluating {to_string(tree)!r})") from None
        if isinstance(result, float):
            result = self._broadcast(result)
        return result

    def _series(self, node: Node) -> np.ndarray | float:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Name):
            return self._field(node.name)
        key = to_string(node)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        spec = REGISTRY[node.op]
        args = [self._argument(formal, a) for formal, a in zip(spec.args, node.args)]
        try:
            out = spec.kernel(*args)
        except ValueError as exc:
            raise FormulaError(f"{spec.name}: {exc}") from None
        if isinstance(out, float | np.floating):
            return float(out) if math.isfinite(out) else math.nan
        out = _sanitized(out, args)
        self.cache.put(key, out)
        return out

    def _argument(self, formal: Arg, node: Node) -> object:
        kind = formal.kind
        if kind is Kind.SERIES:
            value = self._series(node)
            if isinstance(value, float) and not formal.scalar_ok:
                return self._broadcast(value)
            return value
        if kind in (Kind.WINDOW, Kind.LAG):
            return int(node.value)  # type: ignore[union-attr]
        if kind is Kind.CONST:
            return node.value  # type: ignore[union-attr]
        name = node.name  # type: ignore[union-attr]
        if kind is Kind.GROUP:
            if not self.data.is_group(name):
                groups = ", ".join(sorted(self.data.groups)) or "none"
                raise FormulaError(f"{name!r} is not a group label (group fields: {groups})")
            return self.data.fields[name]
        if name not in self.data.intraday:
            available = ", ".join(sorted(self.data.intraday)) or "none: the data has no minute bars"
            raise FormulaError(f"{name!r} is not an intraday field (intraday fields: {available})")
        return self.data.intraday[name]

    def _broadcast(self, value: float) -> np.ndarray:
        """A number as a panel: the value where the market has data on that date, NaN elsewhere.

        A constant is then the same on a date whatever instruments join the panel later, so that a
        cross-sectional operator of it (``rank(1)``) gives the same values in an incremental update
        as in a full recomputation.
        """
        if self._listed is None:
            self._listed = _listed_cells(self.data, self.extra)
        return _readonly(np.where(self._listed, value, np.nan))

    def _field(self, name: str) -> np.ndarray:
        if name in self.extra:
            return self.extra[name]
        if self.data.is_group(name):
            raise FormulaError(f"{name!r} is a group label; use it as the group argument of group_*")
        if name not in self.data.fields:
            available = ", ".join(sorted(set(self.data.fields) | set(self.extra)))
            raise FormulaError(f"unknown field {name!r} (available: {available})")
        return self.data.fields[name]


def _listed_cells(data: MarketData, extra: Mapping[str, np.ndarray]) -> np.ndarray:
    """(T, N) bool: the cells where any daily field (group codes aside) or extra panel has a value."""
    listed = np.zeros((len(data.dates), len(data.instruments)), dtype=bool)
    panels = [array for name, array in data.fields.items() if not data.is_group(name)]
    for array in [*panels, *(extra[name] for name in extra)]:
        listed |= np.isfinite(array)
    return listed


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _sanitized(out: np.ndarray, inputs: list[object]) -> np.ndarray:
    """The kernel's result as a fresh read-only float64 panel.

    Kernels never emit inf (the operator contract, tested for every family), so the values are
    not scanned again here; only a result that is not a new float64 array of its own is copied.
    """
    shared = any(isinstance(a, np.ndarray) and np.may_share_memory(out, a) for a in inputs)
    if shared or not out.flags.writeable or out.dtype != np.float64:
        out = np.array(out, dtype=np.float64)
    return _readonly(out)


def evaluate(formula: str | Node, data: MarketData, evaluator: Evaluator | None = None) -> np.ndarray:
    """Values of a formula on `data` as a `(T, N)` float64 array (NaN where undefined)."""
    if evaluator is None:
        evaluator = Evaluator(data)
    elif evaluator.data is not data:
        raise ValueError("the evaluator was built for another MarketData")
    return np.array(evaluator.evaluate(formula))

"""Elementwise operators: arithmetic, comparisons, logic and pointwise functions.

Each operator is one scalar rule (`_binary_value`, `_unary_value`, `_checked_value`, `_where_value`)
applied by a numba loop over flat arrays. A SERIES argument may also be a plain number
(`close - 1`): a number stands for every cell, panels of different shapes broadcast, and a call on
numbers alone returns a Python float. The loop functions hold one loop per operator, so that in
each the rule is a constant and the loop vectorises; they are plain jitted functions, which load
from numba's cache in milliseconds (a numba ufunc compiles its wrapper anew in every process, a
cost every scoring worker would pay for every operator).
No result is ever infinite: an infinite or undefined value is NaN, and a NaN input gives NaN
(except `where`, whose unchosen branch does not matter). Comparisons and logic return 1.0 / 0.0;
a number is true when it is non-zero.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from operators.finite import nan_if_inf
from operators.registry import Arg, operator

DIV_EPSILON = 1e-12
"""`div` and `inv` give NaN where the denominator's magnitude is below this (never a blow-up)."""

FAMILY = "elementwise"

POWER_CHUNK = 1 << 17
"""`power` of a panel by a number runs numpy's `**` and the checks over blocks of this many cells,
so that the powers stay in cache between the two passes."""

Operand = np.ndarray | float

_ADD, _SUB, _MUL, _DIV, _LT, _LE, _GT, _GE, _EQ, _NE, _AND, _OR, _MAX, _MIN = range(14)
_NEG, _ABS, _SIGN, _LOG, _SLOG, _SQRT, _INV, _NOT = range(8)
_POWER, _SIGNED_POWER = range(2)

_X = Arg.series("x", scalar_ok=True)
_Y = Arg.series("y", scalar_ok=True)


# --- scalar rules ------------------------------------------------------------------------


def _item(values, i):
    """values[i] of a flat array, or the number itself: jitted code only (see the overload)."""
    raise NotImplementedError("_item is only callable from numba-compiled code")


@overload(_item, inline="always")
def _item_overload(values, i):
    if isinstance(values, types.Array):
        return lambda values, i: values[i]
    return lambda values, i: values


@njit(cache=True, nogil=True)
def _is_nan(value: float) -> bool:
    return value != value


@njit(cache=True, nogil=True)
def _truth(flag: bool) -> float:
    return 1.0 if flag else 0.0


@njit(cache=True, nogil=True)
def _sign_of(x: float) -> float:
    if _is_nan(x):
        return np.nan
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


@njit(cache=True, nogil=True)
def _binary_value(op: int, x: float, y: float) -> float:
    if op == _ADD:
        return nan_if_inf(x + y)
    if op == _SUB:
        return nan_if_inf(x - y)
    if op == _MUL:
        return nan_if_inf(x * y)
    if op == _DIV:
        if _is_nan(x) or _is_nan(y) or abs(y) < DIV_EPSILON:
            return np.nan
        return nan_if_inf(x / y)
    if _is_nan(x) or _is_nan(y):
        return np.nan
    if op == _LT:
        return _truth(x < y)
    if op == _LE:
        return _truth(x <= y)
    if op == _GT:
        return _truth(x > y)
    if op == _GE:
        return _truth(x >= y)
    if op == _EQ:
        return _truth(x == y)
    if op == _NE:
        return _truth(x != y)
    if op == _AND:
        return _truth(x != 0.0 and y != 0.0)
    if op == _OR:
        return _truth(x != 0.0 or y != 0.0)
    if op == _MAX:
        return nan_if_inf(x if x >= y else y)
    return nan_if_inf(x if x <= y else y)


@njit(cache=True, nogil=True)
def _unary_value(op: int, x: float) -> float:
    if op == _NEG:
        return nan_if_inf(-x)
    if op == _ABS:
        return nan_if_inf(abs(x))
    if op == _SIGN:
        return _sign_of(x)
    if op == _LOG:
        return nan_if_inf(math.log(x)) if x > 0.0 else np.nan
    if op == _SLOG:
        return nan_if_inf(_sign_of(x) * math.log1p(abs(x)))
    if op == _SQRT:
        return nan_if_inf(math.sqrt(x)) if x >= 0.0 else np.nan
    if op == _INV:
        if _is_nan(x) or abs(x) < DIV_EPSILON:
            return np.nan
        return nan_if_inf(1.0 / x)
    return np.nan if _is_nan(x) else _truth(x == 0.0)


@njit(cache=True, nogil=True)
def _checked_value(op: int, x: float, e: float, raw: float) -> float:
    """x ** e (`_POWER`) or sign(x) * |x| ** e (`_SIGNED_POWER`), given raw = x ** e or |x| ** e
    computed by numpy; NaN where undefined or infinite."""
    if _is_nan(x) or _is_nan(e):
        return np.nan
    if op == _SIGNED_POWER:
        return nan_if_inf(_sign_of(x) * nan_if_inf(raw))
    if x == 0.0 and e < 0.0:
        return np.nan
    if x < 0.0 and e != np.floor(e):  # math.floor would go through int64 and overflow
        return np.nan
    return nan_if_inf(raw)


@njit(cache=True, nogil=True)
def _where_value(c: float, a: float, b: float) -> float:
    if _is_nan(c):
        return np.nan
    return nan_if_inf(a if c != 0.0 else b)


# --- loops: one per rule, so that each vectorises -----------------------------------------


@njit(cache=True, nogil=True)
def _binary_loop(op, x, y, out):
    """out[i] = op(x[i], y[i]) over flat arrays (a number stands for every i)."""
    n = out.size
    if op == _ADD:
        for i in range(n):
            out[i] = _binary_value(_ADD, _item(x, i), _item(y, i))
    elif op == _SUB:
        for i in range(n):
            out[i] = _binary_value(_SUB, _item(x, i), _item(y, i))
    elif op == _MUL:
        for i in range(n):
            out[i] = _binary_value(_MUL, _item(x, i), _item(y, i))
    elif op == _DIV:
        for i in range(n):
            out[i] = _binary_value(_DIV, _item(x, i), _item(y, i))
    elif op == _LT:
        for i in range(n):
            out[i] = _binary_value(_LT, _item(x, i), _item(y, i))
    elif op == _LE:
        for i in range(n):
            out[i] = _binary_value(_LE, _item(x, i), _item(y, i))
    elif op == _GT:
        for i in range(n):
            out[i] = _binary_value(_GT, _item(x, i), _item(y, i))
    elif op == _GE:
        for i in range(n):
            out[i] = _binary_value(_GE, _item(x, i), _item(y, i))
    elif op == _EQ:
        for i in range(n):
            out[i] = _binary_value(_EQ, _item(x, i), _item(y, i))
    elif op == _NE:
        for i in range(n):
            out[i] = _binary_value(_NE, _item(x, i), _item(y, i))
    elif op == _AND:
        for i in range(n):
            out[i] = _binary_value(_AND, _item(x, i), _item(y, i))
    elif op == _OR:
        for i in range(n):
            out[i] = _binary_value(_OR, _item(x, i), _item(y, i))
    elif op == _MAX:
        for i in range(n):
            out[i] = _binary_value(_MAX, _item(x, i), _item(y, i))
    else:
        for i in range(n):
            out[i] = _binary_value(_MIN, _item(x, i), _item(y, i))


@njit(cache=True, nogil=True)
def _unary_loop(op, x, out):
    """out[i] = op(x[i]) over flat arrays."""
    n = out.size
    if op == _NEG:
        for i in range(n):
            out[i] = _unary_value(_NEG, x[i])
    elif op == _ABS:
        for i in range(n):
            out[i] = _unary_value(_ABS, x[i])
    elif op == _SIGN:
        for i in range(n):
            out[i] = _unary_value(_SIGN, x[i])
    elif op == _LOG:
        for i in range(n):
            out[i] = _unary_value(_LOG, x[i])
    elif op == _SLOG:
        for i in range(n):
            out[i] = _unary_value(_SLOG, x[i])
    elif op == _SQRT:
        for i in range(n):
            out[i] = _unary_value(_SQRT, x[i])
    elif op == _INV:
        for i in range(n):
            out[i] = _unary_value(_INV, x[i])
    else:
        for i in range(n):
            out[i] = _unary_value(_NOT, x[i])


@njit(cache=True, nogil=True)
def _checked_loop(op, x, e, raw, out):
    """out[i] = `_checked_value`(op, x[i], e[i], raw[i]) over flat arrays (e may be a number);
    raw None means e is 2 and raw[i] is x[i] * x[i], squared here without a numpy pass."""
    if raw is None:
        if op == _POWER:
            for i in range(out.size):
                out[i] = _checked_value(_POWER, x[i], 2.0, x[i] * x[i])
        else:
            for i in range(out.size):
                out[i] = _checked_value(_SIGNED_POWER, x[i], 2.0, x[i] * x[i])
    elif op == _POWER:
        for i in range(out.size):
            out[i] = _checked_value(_POWER, x[i], _item(e, i), raw[i])
    else:
        for i in range(out.size):
            out[i] = _checked_value(_SIGNED_POWER, x[i], _item(e, i), raw[i])


@njit(cache=True, nogil=True)
def _where_loop(c, a, b, out):
    """out[i] = `_where_value`(c[i], a[i], b[i]) over flat arrays (a number stands for every i)."""
    for i in range(out.size):
        out[i] = _where_value(_item(c, i), _item(a, i), _item(b, i))


# --- chains: a tree of elementwise steps, run block by block ------------------------------
#
# A formula such as `(close - open) / (high - low + 0.001)` is one chain: four steps over four
# panels and a number. `run_chain` applies the steps' loops above to one block of cells after
# another, keeping every intermediate in a small block buffer instead of a panel of its own, so
# that the panels are read once and the result written once. Each cell goes through the same
# scalar rules in the same order as step-by-step evaluation: the values are bit-identical.

CHAIN_BINARY, CHAIN_UNARY, CHAIN_WHERE = range(3)

CHAIN_STEPS: dict[str, tuple[int, int]] = {
    **{
        name: (CHAIN_BINARY, code)
        for name, code in (
            ("add", _ADD),
            ("sub", _SUB),
            ("mul", _MUL),
            ("div", _DIV),
            ("lt", _LT),
            ("le", _LE),
            ("gt", _GT),
            ("ge", _GE),
            ("eq", _EQ),
            ("ne", _NE),
            ("and_", _AND),
            ("or_", _OR),
            ("max", _MAX),
            ("min", _MIN),
        )
    },
    **{
        name: (CHAIN_UNARY, code)
        for name, code in (
            ("neg", _NEG),
            ("abs", _ABS),
            ("sign", _SIGN),
            ("log", _LOG),
            ("slog", _SLOG),
            ("sqrt", _SQRT),
            ("inv", _INV),
            ("not_", _NOT),
        )
    },
    "where": (CHAIN_WHERE, 0),
}
"""The operators a chain can hold: name -> (step kind, rule code). `power` and `signed_power` are
not among them: their powers come from numpy's `**`."""

CHAIN_LEAVES = 8
"""The most panels one chain reads."""

CHAIN_FROM_CELLS = 1_500_000
"""Panels of at least this many cells are worth a chain. Smaller ones stay in the last-level cache
between passes, where an operator's NaN and inf rules, not memory, bound its speed, and one full
pass per step is faster (benchmarks/README.md, issue 18)."""

CHAIN_BLOCK = 1 << 12
"""Cells per block: the block buffers of a chain's steps stay in the core's cache."""

_REGISTER_STRIDE = CHAIN_BLOCK + 72
"""Cells from one register to the next: 9 cache lines more than a block, so that registers do not
sit a multiple of 4 KiB apart (a load from one and a store to another at the same index would
then be taken for dependent by the core, and wait: "4K aliasing")."""


@njit(cache=True, nogil=True)
def _chain_operand(slot, leaves, registers, start, size):
    """Block `start`..`start + size` of a leaf panel (slot < CHAIN_LEAVES), or the first `size`
    cells of a register."""
    if slot < CHAIN_LEAVES:
        return leaves[slot][start : start + size]
    first = (slot - CHAIN_LEAVES) * _REGISTER_STRIDE
    return registers[first : first + size]


@njit(cache=True, nogil=True)
def _chain_loop(steps, leaves, registers, reading, out):
    """Run `steps` (rows of kind, rule, target, a, b, c) block by block into `out`.

    Operand slots below `CHAIN_LEAVES` are leaf panels, the rest registers of `CHAIN_BLOCK` cells
    in `registers` (`_REGISTER_STRIDE` apart); target -1 is `out`. Operands are read through
    `reading`, a read-only view of `registers`, so that a leaf and a register are of one type.
    """
    for start in range(0, out.size, CHAIN_BLOCK):
        size = min(CHAIN_BLOCK, out.size - start)
        for s in range(steps.shape[0]):
            kind, rule, target, a, b, c = steps[s]
            if target < 0:
                into = out[start : start + size]
            else:
                first = (target - CHAIN_LEAVES) * _REGISTER_STRIDE
                into = registers[first : first + size]
            x = _chain_operand(a, leaves, reading, start, size)
            if kind == CHAIN_UNARY:
                _unary_loop(rule, x, into)
            elif kind == CHAIN_BINARY:
                _binary_loop(rule, x, _chain_operand(b, leaves, reading, start, size), into)
            else:
                y = _chain_operand(b, leaves, reading, start, size)
                _where_loop(x, y, _chain_operand(c, leaves, reading, start, size), into)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.setflags(write=False)
    return view


_NO_PANEL = _read_only(np.empty(0))


def run_chain(
    steps: list[tuple[int, int, int, int, int, int]],
    leaves: list[np.ndarray],
    constants: list[float],
    n_registers: int,
) -> np.ndarray:
    """Values of a chain of elementwise steps over panels (see `_chain_loop`).

    A step is (kind, rule, target, a, b, c) with kind and rule from `CHAIN_STEPS` and operand
    slots numbered as `_chain_loop` does (unused ones 0); the last step's target is -1. The
    registers are one per number of `constants` (holding it in every cell), then one per step.
    """
    shapes = {leaf.shape for leaf in leaves}
    shape = shapes.pop() if len(shapes) == 1 else np.broadcast_shapes(*shapes)
    flat = tuple(_read_only(_flat(leaf, shape)) for leaf in leaves)
    rows = np.empty((n_registers, _REGISTER_STRIDE))
    rows[: len(constants)] = np.array(constants, dtype=np.float64)[:, None]
    registers = rows.reshape(-1)
    out = np.empty(math.prod(shape))
    padded = flat + (_NO_PANEL,) * (CHAIN_LEAVES - len(flat))
    _chain_loop(np.array(steps, dtype=np.int64), padded, registers, _read_only(registers), out)
    return out.reshape(shape)


# --- calling the loops -------------------------------------------------------------------


def _flat_operands(*args: Operand) -> tuple[tuple[np.ndarray | float, ...], tuple[int, ...]]:
    """The arguments as flat C-contiguous float64 arrays of one common size (numbers stay numbers,
    except when all of them are: then 1-element arrays), and the shape of the result."""
    shapes = {a.shape for a in args if isinstance(a, np.ndarray)}
    if not shapes:
        return tuple(np.array([a], dtype=np.float64) for a in args), ()
    shape = shapes.pop() if len(shapes) == 1 else np.broadcast_shapes(*shapes)
    return tuple(_flat(a, shape) if isinstance(a, np.ndarray) else float(a) for a in args), shape


def _flat(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The array broadcast to ``shape``, C-contiguous float64, flat (no copy when it already is)."""
    if array.shape == shape and array.dtype == np.float64 and array.flags.c_contiguous:
        return array.reshape(-1)
    full = array if array.shape == shape else np.broadcast_to(array, shape)
    return np.ascontiguousarray(full, dtype=np.float64).reshape(-1)


def _result(out: np.ndarray, shape: tuple[int, ...]) -> Operand:
    """The loop's flat output in the result's shape; a Python float for numbers alone."""
    return float(out[0]) if shape == () else out.reshape(shape)


def _binary(op: int, x: Operand, y: Operand) -> Operand:
    (fx, fy), shape = _flat_operands(x, y)
    out = np.empty(math.prod(shape))
    _binary_loop(op, fx, fy, out)
    return _result(out, shape)


def _unary(op: int, x: Operand) -> Operand:
    (fx,), shape = _flat_operands(x)
    out = np.empty(math.prod(shape))
    _unary_loop(op, fx, out)
    return _result(out, shape)


def _checked(op: int, x: Operand, e: Operand) -> Operand:
    """x ** e (`_POWER`) or sign(x) * |x| ** e (`_SIGNED_POWER`): the power by numpy's vectorised
    `**` (fast squares and roots for a number e; squares of a panel are taken in the loop), the
    undefined and infinite cases by `_checked_value`."""
    base = np.asarray(x, dtype=np.float64)
    if not isinstance(e, np.ndarray) and base.ndim > 0:
        shape = base.shape
        flat_x = _flat(base, shape)
        out = np.empty(flat_x.size)
        if e == 2.0:
            _checked_loop(op, flat_x, e, None, out)
        else:
            for start in range(0, flat_x.size, POWER_CHUNK):
                part = flat_x[start : start + POWER_CHUNK]
                _checked_loop(op, part, e, _raw_power(op, part, e), out[start : start + POWER_CHUNK])
        return _result(out, shape)
    (flat_base, e, raw), shape = _flat_operands(base, e, _raw_power(op, base, e))
    out = np.empty(math.prod(shape))
    _checked_loop(op, flat_base, e, raw, out)
    return _result(out, shape)


def _raw_power(op: int, base: np.ndarray, e: Operand) -> np.ndarray:
    """x ** e (`_POWER`) or |x| ** e (`_SIGNED_POWER`) by numpy's `**`, no warnings."""
    with np.errstate(all="ignore"):
        return np.asarray((base if op == _POWER else np.abs(base)) ** e, dtype=np.float64)


# --- arithmetic --------------------------------------------------------------------------


@operator("add", _X, _Y, family=FAMILY, commutative=True, infix="+", doc="x + y")
def add(x: Operand, y: Operand) -> Operand:
    return _binary(_ADD, x, y)


@operator("sub", _X, _Y, family=FAMILY, infix="-", doc="x - y")
def sub(x: Operand, y: Operand) -> Operand:
    return _binary(_SUB, x, y)


@operator("mul", _X, _Y, family=FAMILY, commutative=True, infix="*", doc="x * y")
def mul(x: Operand, y: Operand) -> Operand:
    return _binary(_MUL, x, y)


@operator("div", _X, _Y, family=FAMILY, infix="/", doc="x / y; NaN where |y| < 1e-12")
def div(x: Operand, y: Operand) -> Operand:
    return _binary(_DIV, x, y)


@operator(
    "power",
    _X,
    Arg.series("e", scalar_ok=True),
    family=FAMILY,
    infix="**",
    doc="x ** e; NaN where undefined (negative base with non-integer e, 0 ** negative e)",
)
def power(x: Operand, e: Operand) -> Operand:
    return _checked(_POWER, x, e)


@operator("neg", _X, family=FAMILY, infix="-", doc="-x")
def neg(x: Operand) -> Operand:
    return _unary(_NEG, x)


# --- comparisons -------------------------------------------------------------------------


@operator("lt", _X, _Y, family=FAMILY, infix="<", doc="1.0 where x < y, else 0.0")
def lt(x: Operand, y: Operand) -> Operand:
    return _binary(_LT, x, y)


@operator("le", _X, _Y, family=FAMILY, infix="<=", doc="1.0 where x <= y, else 0.0")
def le(x: Operand, y: Operand) -> Operand:
    return _binary(_LE, x, y)


@operator("gt", _X, _Y, family=FAMILY, infix=">", doc="1.0 where x > y, else 0.0")
def gt(x: Operand, y: Operand) -> Operand:
    return _binary(_GT, x, y)


@operator("ge", _X, _Y, family=FAMILY, infix=">=", doc="1.0 where x >= y, else 0.0")
def ge(x: Operand, y: Operand) -> Operand:
    return _binary(_GE, x, y)


@operator("eq", _X, _Y, family=FAMILY, commutative=True, infix="==", doc="1.0 where x == y, else 0.0")
def eq(x: Operand, y: Operand) -> Operand:
    return _binary(_EQ, x, y)


@operator("ne", _X, _Y, family=FAMILY, commutative=True, infix="!=", doc="1.0 where x != y, else 0.0")
def ne(x: Operand, y: Operand) -> Operand:
    return _binary(_NE, x, y)


# --- logic -------------------------------------------------------------------------------


@operator("and_", _X, _Y, family=FAMILY, commutative=True, infix="&", doc="1.0 where x and y are non-zero")
def and_(x: Operand, y: Operand) -> Operand:
    return _binary(_AND, x, y)


@operator("or_", _X, _Y, family=FAMILY, commutative=True, infix="|", doc="1.0 where x or y is non-zero")
def or_(x: Operand, y: Operand) -> Operand:
    return _binary(_OR, x, y)


@operator("not_", _X, family=FAMILY, infix="~", doc="1.0 where x is zero, else 0.0")
def not_(x: Operand) -> Operand:
    return _unary(_NOT, x)


# --- pointwise functions -----------------------------------------------------------------


@operator("abs", _X, family=FAMILY, doc="|x|")
def absolute(x: Operand) -> Operand:
    return _unary(_ABS, x)


@operator("sign", _X, family=FAMILY, doc="-1, 0 or 1 by the sign of x")
def sign(x: Operand) -> Operand:
    return _unary(_SIGN, x)


@operator("log", _X, family=FAMILY, doc="natural log; NaN for x <= 0")
def log(x: Operand) -> Operand:
    return _unary(_LOG, x)


@operator("slog", _X, family=FAMILY, doc="signed log: sign(x) * log(1 + |x|)")
def slog(x: Operand) -> Operand:
    return _unary(_SLOG, x)


@operator("sqrt", _X, family=FAMILY, doc="square root; NaN for x < 0")
def sqrt(x: Operand) -> Operand:
    return _unary(_SQRT, x)


@operator("signed_power", _X, Arg.const("e"), family=FAMILY, doc="sign(x) * |x| ** e (keeps the sign)")
def signed_power(x: Operand, e: float) -> Operand:
    return _checked(_SIGNED_POWER, x, e)


@operator("inv", _X, family=FAMILY, doc="1 / x; NaN where |x| < 1e-12")
def inv(x: Operand) -> Operand:
    return _unary(_INV, x)


@operator("max", _X, _Y, family=FAMILY, commutative=True, doc="the larger of x and y")
def maximum(x: Operand, y: Operand) -> Operand:
    return _binary(_MAX, x, y)


@operator("min", _X, _Y, family=FAMILY, commutative=True, doc="the smaller of x and y")
def minimum(x: Operand, y: Operand) -> Operand:
    return _binary(_MIN, x, y)


@operator(
    "where",
    Arg.series("c", scalar_ok=True),
    Arg.series("a", scalar_ok=True),
    Arg.series("b", scalar_ok=True),
    family=FAMILY,
    doc="a where c is non-zero, b where c is zero, NaN where c is NaN",
)
def where(c: Operand, a: Operand, b: Operand) -> Operand:
    (flat_c, flat_a, flat_b), shape = _flat_operands(c, a, b)
    out = np.empty(math.prod(shape))
    _where_loop(flat_c, flat_a, flat_b, out)
    return _result(out, shape)

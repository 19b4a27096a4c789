"""Elementwise operators: arithmetic, comparisons, logic and pointwise functions.

Every kernel is a numba ufunc behind a thin wrapper, so a SERIES argument may also be a plain
number (`close - 1`) and mixed calls broadcast to (T, N); a call on numbers alone returns a float.
No result is ever infinite: an infinite or undefined value is NaN, and a NaN input gives NaN
(except `where`, whose unchosen branch does not matter). Comparisons and logic return 1.0 / 0.0;
a number is true when it is non-zero.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, vectorize

from operators.registry import Arg, operator

DIV_EPSILON = 1e-12
"""`div` and `inv` give NaN where the denominator's magnitude is below this (never a blow-up)."""

FAMILY = "elementwise"

Operand = np.ndarray | float

_UNARY = ["float64(float64)"]
_BINARY = ["float64(float64, float64)"]
_TERNARY = ["float64(float64, float64, float64)"]

_X = Arg.series("x", scalar_ok=True)
_Y = Arg.series("y", scalar_ok=True)


def _apply(ufunc: np.ufunc, *args: Operand) -> Operand:
    """Run a ufunc quietly; a result from numbers alone comes back as a Python float.

    A number mixed with panels is passed as one row of copies: a numba ufunc loop is only fast
    when every operand steps contiguously, and a bare number would be a stride-0 operand.
    """
    shapes = [a.shape for a in args if isinstance(a, np.ndarray)]
    if shapes and len(shapes) < len(args):
        row_shape = np.broadcast_shapes(*shapes)[-1:]
        args = tuple(a if isinstance(a, np.ndarray) else np.full(row_shape, a) for a in args)
    with np.errstate(all="ignore"):
        out = ufunc(*args)
    return out if isinstance(out, np.ndarray) else float(out)


@njit(cache=True, nogil=True)
def _finite(value: float) -> float:
    return np.nan if math.isinf(value) else value


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


# --- arithmetic --------------------------------------------------------------------------


@vectorize(_BINARY, cache=True)
def _add(x, y):
    return _finite(x + y)


@vectorize(_BINARY, cache=True)
def _sub(x, y):
    return _finite(x - y)


@vectorize(_BINARY, cache=True)
def _mul(x, y):
    return _finite(x * y)


@vectorize(_BINARY, cache=True)
def _div(x, y):
    if _is_nan(x) or _is_nan(y) or abs(y) < DIV_EPSILON:
        return np.nan
    return _finite(x / y)


@vectorize(_BINARY, cache=True)
def _power(x, e):
    if _is_nan(x) or _is_nan(e):
        return np.nan
    if x == 0.0 and e < 0.0:
        return np.nan
    if x < 0.0 and e != math.floor(e):
        return np.nan
    return _finite(x**e)


@vectorize(_UNARY, cache=True)
def _neg(x):
    return _finite(-x)


@operator("add", _X, _Y, family=FAMILY, commutative=True, infix="+", doc="x + y")
def add(x: Operand, y: Operand) -> Operand:
    return _apply(_add, x, y)


@operator("sub", _X, _Y, family=FAMILY, infix="-", doc="x - y")
def sub(x: Operand, y: Operand) -> Operand:
    return _apply(_sub, x, y)


@operator("mul", _X, _Y, family=FAMILY, commutative=True, infix="*", doc="x * y")
def mul(x: Operand, y: Operand) -> Operand:
    return _apply(_mul, x, y)


@operator("div", _X, _Y, family=FAMILY, infix="/", doc="x / y; NaN where |y| < 1e-12")
def div(x: Operand, y: Operand) -> Operand:
    return _apply(_div, x, y)


@operator(
    "power",
    _X,
    Arg.series("e", scalar_ok=True),
    family=FAMILY,
    infix="**",
    doc="x ** e; NaN where undefined (negative base with non-integer e, 0 ** negative e)",
)
def power(x: Operand, e: Operand) -> Operand:
    return _apply(_power, x, e)


@operator("neg", _X, family=FAMILY, infix="-", doc="-x")
def neg(x: Operand) -> Operand:
    return _apply(_neg, x)


# --- comparisons -------------------------------------------------------------------------


@vectorize(_BINARY, cache=True)
def _lt(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x < y)


@vectorize(_BINARY, cache=True)
def _le(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x <= y)


@vectorize(_BINARY, cache=True)
def _gt(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x > y)


@vectorize(_BINARY, cache=True)
def _ge(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x >= y)


@vectorize(_BINARY, cache=True)
def _eq(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x == y)


@vectorize(_BINARY, cache=True)
def _ne(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x != y)


@operator("lt", _X, _Y, family=FAMILY, infix="<", doc="1.0 where x < y, else 0.0")
def lt(x: Operand, y: Operand) -> Operand:
    return _apply(_lt, x, y)


@operator("le", _X, _Y, family=FAMILY, infix="<=", doc="1.0 where x <= y, else 0.0")
def le(x: Operand, y: Operand) -> Operand:
    return _apply(_le, x, y)


@operator("gt", _X, _Y, family=FAMILY, infix=">", doc="1.0 where x > y, else 0.0")
def gt(x: Operand, y: Operand) -> Operand:
    return _apply(_gt, x, y)


@operator("ge", _X, _Y, family=FAMILY, infix=">=", doc="1.0 where x >= y, else 0.0")
def ge(x: Operand, y: Operand) -> Operand:
    return _apply(_ge, x, y)


@operator("eq", _X, _Y, family=FAMILY, commutative=True, infix="==", doc="1.0 where x == y, else 0.0")
def eq(x: Operand, y: Operand) -> Operand:
    return _apply(_eq, x, y)


@operator("ne", _X, _Y, family=FAMILY, commutative=True, infix="!=", doc="1.0 where x != y, else 0.0")
def ne(x: Operand, y: Operand) -> Operand:
    return _apply(_ne, x, y)


# --- logic -------------------------------------------------------------------------------


@vectorize(_BINARY, cache=True)
def _and(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x != 0.0 and y != 0.0)


@vectorize(_BINARY, cache=True)
def _or(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x != 0.0 or y != 0.0)


@vectorize(_UNARY, cache=True)
def _not(x):
    return np.nan if _is_nan(x) else _truth(x == 0.0)


@operator("and_", _X, _Y, family=FAMILY, commutative=True, infix="&", doc="1.0 where x and y are non-zero")
def and_(x: Operand, y: Operand) -> Operand:
    return _apply(_and, x, y)


@operator("or_", _X, _Y, family=FAMILY, commutative=True, infix="|", doc="1.0 where x or y is non-zero")
def or_(x: Operand, y: Operand) -> Operand:
    return _apply(_or, x, y)


@operator("not_", _X, family=FAMILY, infix="~", doc="1.0 where x is zero, else 0.0")
def not_(x: Operand) -> Operand:
    return _apply(_not, x)


# --- pointwise functions -----------------------------------------------------------------


@vectorize(_UNARY, cache=True)
def _abs(x):
    return _finite(abs(x))


@vectorize(_UNARY, cache=True)
def _sign(x):
    return _sign_of(x)


@vectorize(_UNARY, cache=True)
def _log(x):
    return _finite(math.log(x)) if x > 0.0 else np.nan


@vectorize(_UNARY, cache=True)
def _slog(x):
    return _finite(_sign_of(x) * math.log1p(abs(x)))


@vectorize(_UNARY, cache=True)
def _sqrt(x):
    return _finite(math.sqrt(x)) if x >= 0.0 else np.nan


@vectorize(_BINARY, cache=True)
def _signed_power(x, e):
    if _is_nan(x) or _is_nan(e):
        return np.nan
    magnitude = abs(x)
    if magnitude == 0.0 and e < 0.0:
        return np.nan
    return _finite(_sign_of(x) * _finite(magnitude**e))


@vectorize(_UNARY, cache=True)
def _inv(x):
    if _is_nan(x) or abs(x) < DIV_EPSILON:
        return np.nan
    return _finite(1.0 / x)


@vectorize(_BINARY, cache=True)
def _max(x, y):
    if _is_nan(x) or _is_nan(y):
        return np.nan
    return _finite(x if x >= y else y)


@vectorize(_BINARY, cache=True)
def _min(x, y):
    if _is_nan(x) or _is_nan(y):
        return np.nan
    return _finite(x if x <= y else y)


@vectorize(_TERNARY, cache=True)
def _where(c, a, b):
    if _is_nan(c):
        return np.nan
    return _finite(a if c != 0.0 else b)


@operator("abs", _X, family=FAMILY, doc="|x|")
def absolute(x: Operand) -> Operand:
    return _apply(_abs, x)


@operator("sign", _X, family=FAMILY, doc="-1, 0 or 1 by the sign of x")
def sign(x: Operand) -> Operand:
    return _apply(_sign, x)


@operator("log", _X, family=FAMILY, doc="natural log; NaN for x <= 0")
def log(x: Operand) -> Operand:
    return _apply(_log, x)


@operator("slog", _X, family=FAMILY, doc="signed log: sign(x) * log(1 + |x|)")
def slog(x: Operand) -> Operand:
    return _apply(_slog, x)


@operator("sqrt", _X, family=FAMILY, doc="square root; NaN for x < 0")
def sqrt(x: Operand) -> Operand:
    return _apply(_sqrt, x)


@operator("signed_power", _X, Arg.const("e"), family=FAMILY, doc="sign(x) * |x| ** e (keeps the sign)")
def signed_power(x: Operand, e: float) -> Operand:
    return _apply(_signed_power, x, e)


@operator("inv", _X, family=FAMILY, doc="1 / x; NaN where |x| < 1e-12")
def inv(x: Operand) -> Operand:
    return _apply(_inv, x)


@operator("max", _X, _Y, family=FAMILY, commutative=True, doc="the larger of x and y")
def maximum(x: Operand, y: Operand) -> Operand:
    return _apply(_max, x, y)


@operator("min", _X, _Y, family=FAMILY, commutative=True, doc="the smaller of x and y")
def minimum(x: Operand, y: Operand) -> Operand:
    return _apply(_min, x, y)


@operator(
    "where",
    Arg.series("c", scalar_ok=True),
    Arg.series("a", scalar_ok=True),
    Arg.series("b", scalar_ok=True),
    family=FAMILY,
    doc="a where c is non-zero, b where c is zero, NaN where c is NaN",
)
def where(c: Operand, a: Operand, b: Operand) -> Operand:
    return _apply(_where, c, a, b)

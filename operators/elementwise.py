"""Elementwise operators: arithmetic, comparisons, logic and pointwise functions.

Every kernel is a numba ufunc behind a thin wrapper, so a SERIES argument may also be a plain
number (`close - 1`) and mixed calls broadcast to (T, N); a call on numbers alone returns a float.
The commonest panel calls (arithmetic with a number, powers by a number) take one-pass numba
loops over the same scalar functions instead, which are faster than numpy's ufunc broadcasting.
No result is ever infinite: an infinite or undefined value is NaN, and a NaN input gives NaN
(except `where`, whose unchosen branch does not matter). Comparisons and logic return 1.0 / 0.0;
a number is true when it is non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


class _LazyUfunc:
    """A numba ufunc built (or loaded from numba's on-disk cache) on its first call rather than
    at import: every scoring worker imports this module, and most formulas use few of them."""

    def __init__(self, signatures: list[str], scalar_function: Callable[..., float]) -> None:
        self._signatures = signatures
        self._scalar_function = scalar_function
        self._ufunc: np.ufunc | None = None

    def __call__(self, *args: Operand) -> Operand:
        if self._ufunc is None:
            self._ufunc = vectorize(self._signatures, cache=True)(self._scalar_function)
        return self._ufunc(*args)


def _lazy_ufunc(signatures: list[str]) -> Callable[[Callable[..., float]], _LazyUfunc]:
    return lambda scalar_function: _LazyUfunc(signatures, scalar_function)


_X = Arg.series("x", scalar_ok=True)
_Y = Arg.series("y", scalar_ok=True)


def _apply(ufunc: _LazyUfunc, *args: Operand) -> Operand:
    """Run a ufunc quietly; a result from numbers alone comes back as a Python float.

    Arithmetic between a panel and a number runs in `_with_number`. Otherwise a number mixed
    with panels is passed as one row of copies: a numba ufunc loop is only fast when every
    operand steps contiguously, and a bare number would be a stride-0 operand.
    """
    codes = _WITH_NUMBER.get(ufunc)
    if codes is not None:
        x, y = args
        if _is_panel(x) and isinstance(y, float):
            return _with_number(codes[0], x, y)
        if isinstance(x, float) and _is_panel(y):
            return _with_number(codes[1], y, x)
    shapes = [a.shape for a in args if isinstance(a, np.ndarray)]
    if shapes and len(shapes) < len(args):
        row_shape = np.broadcast_shapes(*shapes)[-1:]
        args = tuple(a if isinstance(a, np.ndarray) else np.full(row_shape, a) for a in args)
    with np.errstate(all="ignore"):
        out = ufunc(*args)
    return out if isinstance(out, np.ndarray) else float(out)


def _is_panel(value: Operand) -> bool:
    return isinstance(value, np.ndarray) and value.flags.c_contiguous and value.dtype == np.float64


def _numpy_power(x: np.ndarray, e: Operand) -> np.ndarray:
    """x ** e by numpy's `**` (vectorised pow, with fast squares and roots for a number e)."""
    with np.errstate(all="ignore"):
        return x**e


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


@_lazy_ufunc(_BINARY)
def _add(x, y):
    return _finite(x + y)


@_lazy_ufunc(_BINARY)
def _sub(x, y):
    return _finite(x - y)


@_lazy_ufunc(_BINARY)
def _mul(x, y):
    return _finite(x * y)


@njit(cache=True, nogil=True)
def _quotient(x: float, y: float) -> float:
    if _is_nan(x) or _is_nan(y) or abs(y) < DIV_EPSILON:
        return np.nan
    return _finite(x / y)


@_lazy_ufunc(_BINARY)
def _div(x, y):
    return _quotient(x, y)


# what `_with_number` computes: panel <op> number, or number <op> panel for the R- codes
_ADD, _SUB, _RSUB, _MUL, _DIV, _RDIV = range(6)


@njit(cache=True, nogil=True)
def _with_number(op, panel, number):
    """One arithmetic op between a C-contiguous panel and a number, in one vectorised pass."""
    out = np.empty(panel.shape)
    values, result = panel.ravel(), out.ravel()
    if op == _ADD:
        for i in range(values.size):
            result[i] = _finite(values[i] + number)
    elif op == _SUB:
        for i in range(values.size):
            result[i] = _finite(values[i] - number)
    elif op == _RSUB:
        for i in range(values.size):
            result[i] = _finite(number - values[i])
    elif op == _MUL:
        for i in range(values.size):
            result[i] = _finite(values[i] * number)
    elif op == _DIV:
        for i in range(values.size):
            result[i] = _quotient(values[i], number)
    else:
        for i in range(values.size):
            result[i] = _quotient(number, values[i])
    return out


@njit(cache=True, nogil=True)
def _power_of(x: float, e: float, raw: float) -> float:
    """`raw` = x ** e (computed elsewhere), or NaN where x ** e is undefined or infinite."""
    if _is_nan(x) or _is_nan(e):
        return np.nan
    if x == 0.0 and e < 0.0:
        return np.nan
    if x < 0.0 and e != np.floor(e):  # math.floor would go through int64 and overflow
        return np.nan
    return _finite(raw)


@_lazy_ufunc(_TERNARY)
def _checked_power(x, e, raw):
    return _power_of(x, e, raw)


@njit(cache=True, nogil=True)
def _panel_power(x, e, raw):
    """`_power_of` over a C-contiguous panel and a number e, in one pass; raw = x ** e from
    numpy (overwritten with the result), or None when e is 2 (squared here)."""
    out = np.empty(x.shape) if raw is None else raw
    flat_x, flat_out = x.ravel(), out.ravel()
    if raw is None:
        for i in range(flat_x.size):
            flat_out[i] = _power_of(flat_x[i], e, flat_x[i] * flat_x[i])
    else:
        for i in range(flat_x.size):
            flat_out[i] = _power_of(flat_x[i], e, flat_out[i])
    return out


@_lazy_ufunc(_UNARY)
def _neg(x):
    return _finite(-x)


_WITH_NUMBER = {_add: (_ADD, _ADD), _sub: (_SUB, _RSUB), _mul: (_MUL, _MUL), _div: (_DIV, _RDIV)}
"""ufunc -> the `_with_number` op codes for (panel, number) and (number, panel)."""


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
    if _is_panel(x) and not isinstance(e, np.ndarray):
        return _panel_power(x, float(e), None if e == 2.0 else _numpy_power(x, e))
    return _apply(_checked_power, x, e, _numpy_power(np.asarray(x), e))


@operator("neg", _X, family=FAMILY, infix="-", doc="-x")
def neg(x: Operand) -> Operand:
    if _is_panel(x):
        return _with_number(_MUL, x, -1.0)  # exactly -x, in the faster one-pass loop
    return _apply(_neg, x)


# --- comparisons -------------------------------------------------------------------------


@_lazy_ufunc(_BINARY)
def _lt(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x < y)


@_lazy_ufunc(_BINARY)
def _le(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x <= y)


@_lazy_ufunc(_BINARY)
def _gt(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x > y)


@_lazy_ufunc(_BINARY)
def _ge(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x >= y)


@_lazy_ufunc(_BINARY)
def _eq(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x == y)


@_lazy_ufunc(_BINARY)
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


@_lazy_ufunc(_BINARY)
def _and(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x != 0.0 and y != 0.0)


@_lazy_ufunc(_BINARY)
def _or(x, y):
    return np.nan if _is_nan(x) or _is_nan(y) else _truth(x != 0.0 or y != 0.0)


@_lazy_ufunc(_UNARY)
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


@_lazy_ufunc(_UNARY)
def _abs(x):
    return _finite(abs(x))


@_lazy_ufunc(_UNARY)
def _sign(x):
    return _sign_of(x)


@_lazy_ufunc(_UNARY)
def _log(x):
    return _finite(math.log(x)) if x > 0.0 else np.nan


@_lazy_ufunc(_UNARY)
def _slog(x):
    return _finite(_sign_of(x) * math.log1p(abs(x)))


@_lazy_ufunc(_UNARY)
def _sqrt(x):
    return _finite(math.sqrt(x)) if x >= 0.0 else np.nan


@njit(cache=True, nogil=True)
def _signed_power_of(x: float, e: float, magnitude: float) -> float:
    """sign(x) * `magnitude` (= |x| ** e, computed elsewhere); NaN where undefined or infinite."""
    if _is_nan(x) or _is_nan(e):
        return np.nan
    return _finite(_sign_of(x) * _finite(magnitude))


@_lazy_ufunc(_TERNARY)
def _signed(x, e, magnitude):
    return _signed_power_of(x, e, magnitude)


@njit(cache=True, nogil=True)
def _panel_signed_power(x, e, magnitude):
    """`_signed_power_of` over a C-contiguous panel and a number e, in one pass; magnitude =
    |x| ** e from numpy (overwritten with the result), or None when e is 2 (squared here)."""
    out = np.empty(x.shape) if magnitude is None else magnitude
    flat_x, flat_out = x.ravel(), out.ravel()
    if magnitude is None:
        for i in range(flat_x.size):
            flat_out[i] = _signed_power_of(flat_x[i], e, flat_x[i] * flat_x[i])
    else:
        for i in range(flat_x.size):
            flat_out[i] = _signed_power_of(flat_x[i], e, flat_out[i])
    return out


@_lazy_ufunc(_UNARY)
def _inv(x):
    if _is_nan(x) or abs(x) < DIV_EPSILON:
        return np.nan
    return _finite(1.0 / x)


@_lazy_ufunc(_BINARY)
def _max(x, y):
    if _is_nan(x) or _is_nan(y):
        return np.nan
    return _finite(x if x >= y else y)


@_lazy_ufunc(_BINARY)
def _min(x, y):
    if _is_nan(x) or _is_nan(y):
        return np.nan
    return _finite(x if x <= y else y)


@_lazy_ufunc(_TERNARY)
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
    if _is_panel(x):
        return _panel_signed_power(x, float(e), None if e == 2.0 else _numpy_power(np.abs(x), e))
    return _apply(_signed, x, e, _numpy_power(np.abs(x), e))


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

"""Regression operators: the least-squares line of x on time over a trailing window, as Qlib's
`Rsquare` and `Resi` (its `Slope` is `ts_slope`).

Each window fits the valid values of the trailing d rows on their row index (NaN rows are skipped,
as in `ts_slope`) and needs 2 of them. The sums are taken about the window mean, in units of the
largest deviation from it (`operators.timeseries`' centring), with the row index counted back from
today, so each output is a function of its own window alone: recomputing from `lookback` rows
earlier gives identical bits. A window whose valid values are all equal fits exactly: R-squared is
undefined (NaN, as Qlib's), the residual is 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from operators.registry import Arg, operator, window_lookback
from operators.timeseries import _centre, _finite, _summarise, _window, _window_start

FAMILY = "regression"
Kernel = Callable[..., np.ndarray]


@njit(cache=True, nogil=True, error_model="numpy")
def _fit_stat(count, mean, unit, today, so, soo, sou, su, suu, residual):
    """R-squared, or today's residual, of one window from its offset and value sums."""
    if count < 2:
        return np.nan
    constant = unit == 0.0
    mean_offset = so / count
    sxx = soo - so * mean_offset
    sxy = sou - mean_offset * su
    if residual:
        if today != today:
            return np.nan
        fitted = su / count - sxy / sxx * mean_offset  # the line at today's offset 0, in units
        return 0.0 if constant else _finite(((today - mean) * unit - fitted) / unit)
    if constant:
        return np.nan
    syy = suu - su * su / count
    return min(1.0, max(0.0, sxy / sxx * (sxy / syy)))


@njit(cache=True, nogil=True, error_model="numpy")
def _ts_fit(x, d, residual):
    """Per window: the sums Σo, Σo², Σo·u, Σu and Σu² over the valid values, o = k - t the offset
    of row k from today and u the value centred and scaled, then `_fit_stat`."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    count, total, low, high = np.empty(cols), np.empty(cols), np.empty(cols), np.empty(cols)
    mean, unit = np.empty(cols), np.empty(cols)
    so, soo, sou, su, suu = np.empty(cols), np.empty(cols), np.empty(cols), np.empty(cols), np.empty(cols)
    for t in range(rows):
        lo = _window_start(t, d)
        _summarise(x, lo, t, count, total, low, high)
        _centre(count, total, low, high, mean, unit)
        so[:] = 0.0
        soo[:] = 0.0
        sou[:] = 0.0
        su[:] = 0.0
        suu[:] = 0.0
        for k in range(lo, t + 1):
            o = float(k - t)
            for n in range(cols):
                v = x[k, n]
                valid = v == v
                u = (v - mean[n]) * unit[n] if valid else 0.0
                so[n] += o if valid else 0.0
                soo[n] += o * o if valid else 0.0
                sou[n] += o * u
                su[n] += u
                suu[n] += u * u
        for n in range(cols):
            out[t, n] = _fit_stat(
                count[n], mean[n], unit[n], x[t, n], so[n], soo[n], sou[n], su[n], suu[n], residual
            )
    return out


def _regression(name: str, doc: str) -> Callable[[Kernel], Kernel]:
    """Declare a trailing-window fit operator name(x, d)."""
    return operator(
        name, Arg.series("x"), Arg.window("d"), family=FAMILY, lookback=window_lookback("d"), doc=doc
    )


@_regression(
    "ts_rsquare",
    "R-squared of the OLS line of the valid values of the trailing d rows on the row index "
    "(needs 2; NaN when constant)",
)
def ts_rsquare(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_fit(x, _window(d), False)


@_regression(
    "ts_resi",
    "today's x minus the OLS line of the valid values of the trailing d rows on the row index "
    "(needs 2; NaN when today is NaN)",
)
def ts_resi(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_fit(x, _window(d), True)

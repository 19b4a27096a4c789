"""Quantile operators: order statistics of a trailing window, as Qlib's `Quantile` (pandas
`rolling(d, min_periods=1).quantile(q)`, linear interpolation).

Each window's valid values are gathered in row order and sorted, so the result depends on the
window's values alone: recomputing from `lookback` rows earlier gives identical bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from operators.registry import Arg, operator, window_lookback
from operators.timeseries import _finite, _window, _window_start

FAMILY = "quantile"


@njit(cache=True, nogil=True, error_model="numpy")
def _interpolated(ordered, q):
    """The q-quantile of sorted values, interpolated linearly between neighbours as pandas does
    (weighting the two ends instead where their difference overflows); NaN rather than inf."""
    position = q * (ordered.size - 1)
    below = int(position)
    if below == position:
        return _finite(ordered[below])
    low, high, fraction = ordered[below], ordered[below + 1], position - below
    value = low + (high - low) * fraction
    if not math.isfinite(value):
        value = low * (1.0 - fraction) + high * fraction
    return _finite(value)


@njit(cache=True, nogil=True, error_model="numpy")
def _ts_quantile(x, d, q):
    rows, cols = x.shape
    out = np.empty((rows, cols))
    values = np.empty(min(d, rows))
    for n in range(cols):
        for t in range(rows):
            m = 0
            for k in range(_window_start(t, d), t + 1):
                v = x[k, n]
                if v == v:
                    values[m] = v
                    m += 1
            window = values[:m]
            window.sort()
            out[t, n] = _interpolated(window, q) if m > 0 else np.nan
    return out


@operator(
    "ts_quantile",
    Arg.series("x"),
    Arg.window("d"),
    Arg.const("q", lower=0.0, upper=1.0),
    family=FAMILY,
    lookback=window_lookback("d"),
    doc="q-quantile of the valid values of the trailing d rows, interpolated linearly (pandas, Qlib)",
)
def ts_quantile(x: np.ndarray, d: int, q: float) -> np.ndarray:
    return _ts_quantile(x, _window(d), float(q))

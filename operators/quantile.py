"""Quantile operators: order statistics of a trailing window, as Qlib's `Quantile` (pandas
`rolling(d, min_periods=1).quantile(q)`, linear interpolation).

Each column's valid window values are kept sorted as the window slides, with `ts_median`'s helpers:
the row leaving is dropped, the row entering inserted, and equal values stay in row order. The
sorted window is then a function of the window's rows alone, so recomputing from `lookback` rows
earlier gives identical bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from operators.registry import Arg, operator, window_lookback
from operators.timeseries import _drop_sorted, _finite, _insert_sorted, _window

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
    window = np.empty((cols, min(d, rows)))
    size = np.zeros(cols, dtype=np.int64)
    for t in range(rows):
        for n in range(cols):
            m = size[n]
            leaving = x[t - d, n] if t >= d else np.nan
            if leaving == leaving:
                m = _drop_sorted(window[n], m, leaving)
            if x[t, n] == x[t, n]:
                m = _insert_sorted(window[n], m, x[t, n])
            size[n] = m
            out[t, n] = _interpolated(window[n, :m], q) if m > 0 else np.nan
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

"""Robust operators: clip outliers to a median +- k * MAD band.

The band is median +- k * 1.4826 * MAD, where MAD is the median absolute deviation from the
median (1.4826 makes it a standard deviation for normal data). When the reference values are
flat (`is_flat`: MAD <= 1e-12 * |median|) they are left as they are: a flat reference set says
nothing about what an outlier is. The spectral operators' despike (`operators.spectral`) keeps
the same rule, for the MAD and for the IQR.

Both operators work on the reference values in sorted order (`cs_mad_winsorize` sorts each
date with numpy, much faster than a sort inside numba). `ts_mad_despike` keeps each
column's trailing window sorted as it slides (drop the row leaving, insert the row entering).
That is still bit-exact under the window rule: the median and the MAD are order statistics, so
they depend only on which values are in the window, never on how the window got there (-0.0 is
stored as 0.0 so that even the sign of a zero cannot depend on the history).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from operators.registry import Arg, operator, window_lookback
from operators.sorting import insert_sorted, remove_sorted

FAMILY = "robust"

MAD_TO_SIGMA = 1.4826
"""Scales a MAD to the standard deviation of normally distributed data."""

FLAT_SPREAD_TOLERANCE = 1e-12
"""A spread (MAD or IQR) <= FLAT_SPREAD_TOLERANCE * |median| counts as zero: nothing is clipped."""


@njit(cache=True, nogil=True)
def is_flat(spread: float, median: float) -> bool:
    """Whether values with this spread (MAD or IQR) about this median are flat: nothing to clip.

    The tolerance is relative to the median, so that a despike does not depend on units: c * x
    has c times the spread and the median of x, and is clipped where x is (a spread of 1e-9 is
    rounding residue around 1e6, not around 1e-15). A median of exactly 0 gives no level to be
    relative to, so there only a zero spread is flat: a tiny positive MAD is the values' real
    spread in their own units. An absolute floor (a tolerance of 1e-12 * max(1, |median|)) would
    leave data in small units unclipped where the same data in larger units are clipped. A NaN
    spread (values reaching inf) counts as flat.
    """
    return not spread > FLAT_SPREAD_TOLERANCE * abs(median)


@njit(cache=True, nogil=True)
def _mad_band(ordered: np.ndarray, k: float) -> tuple[float, float]:
    """(low, high) clipping bounds of sorted NaN-free values; (-inf, inf) when they are flat.

    The deviations |v - median| grow outwards from the middle of the sorted values, so the
    middle of them is found by walking out from the centre, taking the smaller side each step.
    """
    count = ordered.size
    middle = count // 2
    if count % 2:
        median = ordered[middle]
    else:
        median = (ordered[middle - 1] + ordered[middle]) / 2.0
    left, right = middle - 1, middle
    previous = current = 0.0
    for _ in range(middle + 1):
        previous = current
        if right >= count or (left >= 0 and median - ordered[left] < ordered[right] - median):
            current = median - ordered[left]
            left -= 1
        else:
            current = ordered[right] - median
            right += 1
    mad = current if count % 2 else (previous + current) / 2.0
    if is_flat(mad, median):
        return -np.inf, np.inf
    half_width = k * MAD_TO_SIGMA * mad
    return median - half_width, median + half_width


@njit(cache=True, nogil=True)
def _clip(value: float, low: float, high: float) -> float:
    if value < low:
        return low
    if value > high:
        return high
    return value


@njit(cache=True, nogil=True)
def _ts_mad_despike(x: np.ndarray, d: int, k: float) -> np.ndarray:
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    windows = np.empty((n_cols, d))  # per column: the valid values of rows t-d+1..t, sorted
    counts = np.zeros(n_cols, dtype=np.int64)
    for t in range(n_rows):
        for n in range(n_cols):
            if t >= d and not np.isnan(x[t - d, n]):
                counts[n] = remove_sorted(windows[n], counts[n], x[t - d, n] + 0.0)
            today = x[t, n]
            if np.isnan(today):
                continue
            counts[n] = insert_sorted(windows[n], counts[n], today + 0.0)
            low, high = _mad_band(windows[n, : counts[n]], k)
            out[t, n] = _clip(today, low, high)
    return out


@njit(cache=True, nogil=True)
def _cs_mad_winsorize(x: np.ndarray, ordered: np.ndarray, k: float) -> np.ndarray:
    """`ordered` is x sorted along each row (NaN last)."""
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        count = np.count_nonzero(~np.isnan(x[t]))
        if count == 0:
            continue
        low, high = _mad_band(ordered[t, :count], k)
        for n in range(x.shape[1]):
            if not np.isnan(x[t, n]):
                out[t, n] = _clip(x[t, n], low, high)
    return out


@operator(
    "ts_mad_despike",
    Arg.series("x"),
    Arg.window("d"),
    Arg.const("k", default=3.0, lower=0.0),
    family=FAMILY,
    lookback=window_lookback("d"),
    doc="clip x to median +- k*1.4826*MAD of the valid values in the trailing d rows",
)
def ts_mad_despike(x: np.ndarray, d: int, k: float = 3.0) -> np.ndarray:
    return _ts_mad_despike(x, int(d), float(k))


@operator(
    "cs_mad_winsorize",
    Arg.series("x"),
    Arg.const("k", default=3.0, lower=0.0),
    family=FAMILY,
    doc="clip x to median +- k*1.4826*MAD of the date's valid instruments",
)
def cs_mad_winsorize(x: np.ndarray, k: float = 3.0) -> np.ndarray:
    return _cs_mad_winsorize(x, np.sort(x, axis=1), float(k))

"""Time-series operators: trailing-window kernels over (T, N) panels, column by column.

Conventions (DESIGN rule 3 and the operator contract):

* The window of `d` rows at row t covers rows t-d+1..t. Rows before the start of the panel are
  missing slots, exactly like NaN rows. NaN values are skipped; a statistic needs a minimum number
  of valid values (1; 2 for std, var, zscore, cv, corr, cov and slope; 3 for skew; 4 for kurt)
  and is NaN otherwise.
* Bit-exact windows: each output is computed from its own window only, accumulating from the
  oldest row to today, with nothing carried along the column except (for the median) a sorted
  copy of the window's valid values, which depends on the window's rows alone. A recomputation
  from a slice that starts `lookback` rows earlier therefore gives bit-identical values.
* Second and higher moments are taken about the window mean, in units of the largest deviation
  from it, so huge values do not overflow. A window whose valid values are all equal is exactly
  constant: variance 0, slope 0, and no zscore, correlation, skew or kurtosis (NaN).
* No output is inf: a result that does not fit in a float64 is NaN.
* `ts_argmax` / `ts_argmin` count positions in the full d-slot window even near the start of the
  panel (as if padded with missing rows in front), so today is always position d.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from operators.registry import Arg, lag_lookback, operator, window_lookback

FAMILY = "timeseries"
Kernel = Callable[..., np.ndarray]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}  # x / 0 is inf or NaN, no raise

# what `_moment_stat` returns
_MEAN, _STD, _VAR, _ZSCORE, _CV, _SKEW, _KURT = range(7)
# what `_shift` returns
_DELAY, _DELTA, _PCT_CHANGE = range(3)


def _rolling(name: str, doc: str) -> Callable[[Kernel], Kernel]:
    """Declare a trailing-window operator name(x, d)."""
    return operator(
        name,
        Arg.series("x"),
        Arg.window("d"),
        family=FAMILY,
        lookback=window_lookback("d"),
        doc=doc,
    )


def _pairwise(name: str, doc: str) -> Callable[[Kernel], Kernel]:
    """Declare a symmetric trailing-window operator name(x, y, d)."""
    return operator(
        name,
        Arg.series("x"),
        Arg.series("y"),
        Arg.window("d"),
        family=FAMILY,
        lookback=window_lookback("d"),
        commutative=True,
        doc=doc,
    )


def _shifted(name: str, doc: str) -> Callable[[Kernel], Kernel]:
    """Declare an operator name(x, d) of today's value and the value d rows ago."""
    return operator(
        name,
        Arg.series("x"),
        Arg.lag("d"),
        family=FAMILY,
        lookback=lag_lookback("d"),
        doc=doc,
    )


def _lag(d: int) -> int:
    """d as an int, checked to be a whole number >= 0."""
    if d < 0 or d != int(d):
        raise ValueError(f"a lag must be a whole number >= 0, got {d}")
    return int(d)


def _window(d: int) -> int:
    """d as an int, checked to be a whole number >= 1."""
    if d < 1 or d != int(d):
        raise ValueError(f"a window must be a whole number >= 1, got {d}")
    return int(d)


@njit(**_JIT)
def _finite(value: float) -> float:
    """`value`, or NaN when it is inf."""
    return value if math.isfinite(value) else np.nan


@njit(**_JIT)
def _window_start(t: int, d: int) -> int:
    return max(0, t - d + 1)


# --------------------------------------------------------------------------------------- shifts


@njit(**_JIT)
def _shift(x, d, mode):
    rows, cols = x.shape
    out = np.full((rows, cols), np.nan)
    for t in range(d, rows):
        for n in range(cols):
            now = x[t, n]
            before = x[t - d, n]
            if mode == _DELAY:
                out[t, n] = _finite(before)
            elif mode == _DELTA:
                out[t, n] = _finite(now - before)
            elif before != 0.0:
                out[t, n] = _finite(now / before - 1.0)
    return out


@_shifted("delay", "x shifted down d rows (d rows ago)")
def delay(x: np.ndarray, d: int) -> np.ndarray:
    return _shift(x, _lag(d), _DELAY)


@_shifted("delta", "x - delay(x, d)")
def delta(x: np.ndarray, d: int) -> np.ndarray:
    return _shift(x, _lag(d), _DELTA)


@_shifted("pct_change", "x / delay(x, d) - 1; NaN when delay(x, d) is 0 or NaN")
def pct_change(x: np.ndarray, d: int) -> np.ndarray:
    return _shift(x, _lag(d), _PCT_CHANGE)


# ------------------------------------------------------------------------- sums and products


@njit(**_JIT)
def _accumulate(x, d, product):
    """Sum (or product) of the valid values of each window, oldest first."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    acc = np.empty(cols)
    count = np.empty(cols)
    for t in range(rows):
        acc[:] = 1.0 if product else 0.0
        count[:] = 0.0
        for k in range(_window_start(t, d), t + 1):
            for n in range(cols):
                v = x[k, n]
                if v == v:
                    acc[n] = acc[n] * v if product else acc[n] + v
                    count[n] += 1.0
        for n in range(cols):
            out[t, n] = _finite(acc[n]) if count[n] > 0 else np.nan
    return out


@_rolling("ts_sum", "sum of the valid values of the trailing d rows")
def ts_sum(x: np.ndarray, d: int) -> np.ndarray:
    return _accumulate(x, _window(d), False)


@_rolling("ts_product", "product of the valid values of the trailing d rows")
def ts_product(x: np.ndarray, d: int) -> np.ndarray:
    return _accumulate(x, _window(d), True)


# --------------------------------------------------------------------------------- moments


@njit(**_JIT)
def _summarise(x, lo, t, count, total, low, high):
    """Per column: count, sum (oldest first), min and max of the valid values of rows lo..t."""
    count[:] = 0.0
    total[:] = 0.0
    low[:] = np.inf
    high[:] = -np.inf
    for k in range(lo, t + 1):
        for n in range(x.shape[1]):
            v = x[k, n]
            valid = v == v
            count[n] += valid
            total[n] += v if valid else 0.0
            low[n] = v if v < low[n] else low[n]
            high[n] = v if v > high[n] else high[n]


@njit(**_JIT)
def _centre(count, total, low, high, mean, unit):
    """Window mean (exact when constant) and 1 / the largest deviation from it (0 when constant).

    The deviation is clamped to [1e-300, 1e300] so that its reciprocal is a normal number.
    """
    for n in range(count.size):
        if count[n] == 0:
            mean[n] = np.nan
            unit[n] = np.nan
        elif low[n] == high[n]:
            mean[n] = low[n]
            unit[n] = 0.0
        else:
            mean[n] = total[n] / count[n]
            spread = max(high[n] - mean[n], mean[n] - low[n])
            unit[n] = 1.0 / min(max(spread, 1e-300), 1e300)


@njit(**_JIT)
def _central_sums(x, lo, t, mean, unit, order, s2, s3, s4):
    """Per column: sums of u**2 .. u**order, u = (value - mean) * unit, over the valid values."""
    s2[:] = 0.0
    s3[:] = 0.0
    s4[:] = 0.0
    for k in range(lo, t + 1):
        for n in range(x.shape[1]):
            v = x[k, n]
            u = (v - mean[n]) * unit[n] if v == v else 0.0
            u2 = u * u
            s2[n] += u2
            if order >= 3:
                s3[n] += u2 * u
            if order >= 4:
                s4[n] += u2 * u2


@njit(**_JIT)
def _finish(stat, today, count, mean, unit, s2, s3, s4):
    """One statistic from the centred sums of a window (see `_central_sums`)."""
    if stat == _MEAN:
        return _finite(mean)
    if count < 2:
        return np.nan
    if unit == 0.0:  # constant window
        if stat == _STD or stat == _VAR:
            return 0.0
        if stat == _CV:
            return 0.0 if mean != 0.0 else np.nan
        return np.nan
    unit_std = math.sqrt(s2 / (count - 1.0))  # sample std in units of 1 / unit
    if stat == _STD:
        return _finite(unit_std / unit)
    if stat == _VAR:
        return _finite(unit_std / unit * (unit_std / unit))
    if stat == _CV:
        return _finite(unit_std / unit / abs(mean)) if mean != 0.0 else np.nan
    if stat == _ZSCORE:
        return _finite((today - mean) * unit / unit_std)
    m2 = s2 / count
    if stat == _SKEW:
        if count < 3:
            return np.nan
        m3 = s3 / count
        return _finite(math.sqrt(count * (count - 1.0)) / (count - 2.0) * m3 / (m2 * math.sqrt(m2)))
    if count < 4:
        return np.nan
    m4 = s4 / count
    excess = (count * count - 1.0) * m4 / (m2 * m2) - 3.0 * (count - 1.0) ** 2
    return _finite(excess / ((count - 2.0) * (count - 3.0)))


@njit(**_JIT)
def _moment_stat(x, d, stat):
    if stat == _MEAN:
        order = 1
    elif stat == _SKEW:
        order = 3
    elif stat == _KURT:
        order = 4
    else:
        order = 2
    rows, cols = x.shape
    out = np.empty((rows, cols))
    count, total, low, high = np.empty(cols), np.empty(cols), np.empty(cols), np.empty(cols)
    mean, unit = np.empty(cols), np.empty(cols)
    s2, s3, s4 = np.zeros(cols), np.zeros(cols), np.zeros(cols)
    for t in range(rows):
        lo = _window_start(t, d)
        _summarise(x, lo, t, count, total, low, high)
        _centre(count, total, low, high, mean, unit)
        if order >= 2:
            _central_sums(x, lo, t, mean, unit, order, s2, s3, s4)
        for n in range(cols):
            out[t, n] = _finish(stat, x[t, n], count[n], mean[n], unit[n], s2[n], s3[n], s4[n])
    return out


@_rolling("ts_mean", "mean of the valid values of the trailing d rows")
def ts_mean(x: np.ndarray, d: int) -> np.ndarray:
    return _moment_stat(x, _window(d), _MEAN)


@_rolling("ts_std", "sample standard deviation (ddof=1) of the valid values of the trailing d rows")
def ts_std(x: np.ndarray, d: int) -> np.ndarray:
    return _moment_stat(x, _window(d), _STD)


@_rolling("ts_var", "sample variance (ddof=1) of the valid values of the trailing d rows")
def ts_var(x: np.ndarray, d: int) -> np.ndarray:
    return _moment_stat(x, _window(d), _VAR)


@_rolling("ts_zscore", "(x - ts_mean) / ts_std over the trailing d rows; NaN when the std is 0")
def ts_zscore(x: np.ndarray, d: int) -> np.ndarray:
    return _moment_stat(x, _window(d), _ZSCORE)


@_rolling("ts_cv", "ts_std / |ts_mean| over the trailing d rows; NaN when the mean is 0")
def ts_cv(x: np.ndarray, d: int) -> np.ndarray:
    return _moment_stat(x, _window(d), _CV)


@_rolling("ts_skew", "bias-corrected skewness of the valid values of the trailing d rows (needs 3)")
def ts_skew(x: np.ndarray, d: int) -> np.ndarray:
    return _moment_stat(x, _window(d), _SKEW)


@_rolling(
    "ts_kurt",
    "bias-corrected excess kurtosis of the valid values of the trailing d rows (needs 4)",
)
def ts_kurt(x: np.ndarray, d: int) -> np.ndarray:
    return _moment_stat(x, _window(d), _KURT)


# -------------------------------------------------------------------------------- extremes


@njit(**_JIT)
def _extreme(x, d, largest, position):
    """Max (min) of each window, or its 1-based slot (1 = oldest, d = today; ties: the latest)."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    best = np.empty(cols)
    where = np.empty(cols)
    for t in range(rows):
        best[:] = -np.inf if largest else np.inf
        where[:] = -1.0
        for k in range(_window_start(t, d), t + 1):
            for n in range(cols):
                v = x[k, n]
                better = v >= best[n] if largest else v <= best[n]  # False for NaN
                best[n] = v if better else best[n]
                where[n] = k if better else where[n]
        for n in range(cols):
            if where[n] < 0:
                out[t, n] = np.nan
            elif position:
                out[t, n] = d - (t - where[n])
            else:
                out[t, n] = _finite(best[n])
    return out


@_rolling("ts_min", "minimum of the valid values of the trailing d rows")
def ts_min(x: np.ndarray, d: int) -> np.ndarray:
    return _extreme(x, _window(d), False, False)


@_rolling("ts_max", "maximum of the valid values of the trailing d rows")
def ts_max(x: np.ndarray, d: int) -> np.ndarray:
    return _extreme(x, _window(d), True, False)


@_rolling(
    "ts_argmin",
    "1-based slot of the minimum in the trailing d rows (1 = oldest, d = today; ties: the most recent)",
)
def ts_argmin(x: np.ndarray, d: int) -> np.ndarray:
    return _extreme(x, _window(d), False, True)


@_rolling(
    "ts_argmax",
    "1-based slot of the maximum in the trailing d rows (1 = oldest, d = today; ties: the most recent)",
)
def ts_argmax(x: np.ndarray, d: int) -> np.ndarray:
    return _extreme(x, _window(d), True, True)


# ---------------------------------------------------------------------- ranks and medians


@njit(**_JIT)
def _ts_rank(x, d):
    rows, cols = x.shape
    out = np.empty((rows, cols))
    count, below, equal = np.empty(cols), np.empty(cols), np.empty(cols)
    for t in range(rows):
        count[:] = 0.0
        below[:] = 0.0
        equal[:] = 0.0
        for k in range(_window_start(t, d), t + 1):
            for n in range(cols):
                v = x[k, n]
                today = x[t, n]
                count[n] += v == v
                below[n] += v < today
                equal[n] += v == today
        for n in range(cols):
            if equal[n] > 0:  # today is valid (it equals itself)
                out[t, n] = (below[n] + (equal[n] + 1.0) / 2.0) / count[n]
            else:
                out[t, n] = np.nan
    return out


@_rolling(
    "ts_rank",
    "percentile rank (average ties, in (0, 1]) of today's x among the valid values of the trailing d rows",
)
def ts_rank(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_rank(x, _window(d))


@njit(**_JIT)
def _drop_sorted(values, m, v):
    """Remove one copy of v from the sorted values[:m]; returns the new size."""
    i = 0
    while values[i] < v:
        i += 1
    for j in range(i, m - 1):
        values[j] = values[j + 1]
    return m - 1


@njit(**_JIT)
def _insert_sorted(values, m, v):
    """Insert v into the sorted values[:m]; returns the new size."""
    j = m
    while j > 0 and values[j - 1] > v:
        values[j] = values[j - 1]
        j -= 1
    values[j] = v
    return m + 1


@njit(**_JIT)
def _ts_median(x, d):
    """Keeps each column's valid window values sorted: drop the row leaving, insert the new one.

    Equal values stay in row order (a new value goes after its equals, the leaving value is the
    first of its equals), so the sorted window is a function of the window's rows alone.
    """
    rows, cols = x.shape
    out = np.empty((rows, cols))
    window = np.empty((cols, min(d, rows)))
    size = np.zeros(cols, dtype=np.int64)
    for t in range(rows):
        for n in range(cols):
            m = size[n]
            if t >= d and x[t - d, n] == x[t - d, n]:
                m = _drop_sorted(window[n], m, x[t - d, n])
            if x[t, n] == x[t, n]:
                m = _insert_sorted(window[n], m, x[t, n])
            size[n] = m
            if m == 0:
                out[t, n] = np.nan
            elif m % 2 == 1:
                out[t, n] = _finite(window[n, m // 2])
            else:
                out[t, n] = _finite(0.5 * window[n, m // 2 - 1] + 0.5 * window[n, m // 2])
    return out


@_rolling("ts_median", "median of the valid values of the trailing d rows")
def ts_median(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_median(x, _window(d))


# ----------------------------------------------------------------------- weighted and trend


@njit(**_JIT)
def _decay_linear(x, d):
    """Weighted mean of each window's valid values: weight d for today down to 1 for the oldest."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    weighted = np.empty(cols)
    weights = np.empty(cols)
    for t in range(rows):
        weighted[:] = 0.0
        weights[:] = 0.0
        for k in range(_window_start(t, d), t + 1):
            w = float(d - (t - k))
            for n in range(cols):
                v = x[k, n]
                if v == v:
                    weighted[n] += w * v
                    weights[n] += w
        for n in range(cols):
            out[t, n] = _finite(weighted[n] / weights[n]) if weights[n] > 0 else np.nan
    return out


@_rolling(
    "decay_linear",
    "linearly weighted mean of the trailing d rows, weights d (today) .. 1 (oldest), "
    "normalised over the valid values",
)
def decay_linear(x: np.ndarray, d: int) -> np.ndarray:
    return _decay_linear(x, _window(d))


@njit(**_JIT)
def _ts_slope(x, d):
    """OLS slope of the valid values on their row index (taken as the offset k - t from today)."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    count, total, low, high = np.empty(cols), np.empty(cols), np.empty(cols), np.empty(cols)
    mean, unit = np.empty(cols), np.empty(cols)
    mean_offset = np.empty(cols)
    sxx = np.empty(cols)
    sxy = np.empty(cols)
    for t in range(rows):
        lo = _window_start(t, d)
        _summarise(x, lo, t, count, total, low, high)
        _centre(count, total, low, high, mean, unit)
        mean_offset[:] = 0.0
        for k in range(lo, t + 1):
            for n in range(cols):
                mean_offset[n] += k - t if x[k, n] == x[k, n] else 0.0
        for n in range(cols):
            mean_offset[n] /= count[n]
        sxx[:] = 0.0
        sxy[:] = 0.0
        for k in range(lo, t + 1):
            for n in range(cols):
                v = x[k, n]
                valid = v == v
                dk = (k - t) - mean_offset[n] if valid else 0.0
                sxx[n] += dk * dk
                sxy[n] += dk * ((v - mean[n]) * unit[n]) if valid else 0.0
        for n in range(cols):
            if count[n] < 2:
                out[t, n] = np.nan
            elif unit[n] == 0:
                out[t, n] = 0.0
            else:
                out[t, n] = _finite(sxy[n] / sxx[n] / unit[n])
    return out


@_rolling(
    "ts_slope",
    "OLS slope per row of the valid values of the trailing d rows on the row index (needs 2)",
)
def ts_slope(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_slope(x, _window(d))


# --------------------------------------------------------------------------------- pairs


@njit(**_JIT)
def _pair_stat(x, y, d, correlation):
    """Pearson correlation or sample covariance over the rows where both x and y are valid."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    count = np.empty(cols)
    total_x, low_x, high_x = np.empty(cols), np.empty(cols), np.empty(cols)
    total_y, low_y, high_y = np.empty(cols), np.empty(cols), np.empty(cols)
    mean_x, unit_x = np.empty(cols), np.empty(cols)
    mean_y, unit_y = np.empty(cols), np.empty(cols)
    sxx, syy, sxy = np.empty(cols), np.empty(cols), np.empty(cols)
    for t in range(rows):
        lo = _window_start(t, d)
        count[:] = 0.0
        total_x[:] = 0.0
        total_y[:] = 0.0
        low_x[:] = np.inf
        high_x[:] = -np.inf
        low_y[:] = np.inf
        high_y[:] = -np.inf
        for k in range(lo, t + 1):
            for n in range(cols):
                both = (x[k, n] == x[k, n]) & (y[k, n] == y[k, n])
                a = x[k, n] if both else np.nan
                b = y[k, n] if both else np.nan
                count[n] += both
                total_x[n] += a if both else 0.0
                total_y[n] += b if both else 0.0
                low_x[n] = a if a < low_x[n] else low_x[n]
                high_x[n] = a if a > high_x[n] else high_x[n]
                low_y[n] = b if b < low_y[n] else low_y[n]
                high_y[n] = b if b > high_y[n] else high_y[n]
        _centre(count, total_x, low_x, high_x, mean_x, unit_x)
        _centre(count, total_y, low_y, high_y, mean_y, unit_y)
        sxx[:] = 0.0
        syy[:] = 0.0
        sxy[:] = 0.0
        for k in range(lo, t + 1):
            for n in range(cols):
                a = x[k, n]
                b = y[k, n]
                both = (a == a) & (b == b)
                u = (a - mean_x[n]) * unit_x[n] if both else 0.0
                v = (b - mean_y[n]) * unit_y[n] if both else 0.0
                sxx[n] += u * u
                syy[n] += v * v
                sxy[n] += u * v
        for n in range(cols):
            if count[n] < 2:
                out[t, n] = np.nan
            elif correlation:
                if unit_x[n] == 0 or unit_y[n] == 0:
                    out[t, n] = np.nan
                else:
                    r = sxy[n] / (math.sqrt(sxx[n]) * math.sqrt(syy[n]))
                    out[t, n] = min(1.0, max(-1.0, r))
            elif unit_x[n] == 0 or unit_y[n] == 0:
                out[t, n] = 0.0
            else:
                smaller, larger = min(unit_x[n], unit_y[n]), max(unit_x[n], unit_y[n])
                out[t, n] = _finite(sxy[n] / (count[n] - 1.0) / smaller / larger)  # symmetric
    return out


@_pairwise(
    "ts_corr",
    "Pearson correlation of x and y over the trailing d rows where both are valid; "
    "NaN when either is constant",
)
def ts_corr(x: np.ndarray, y: np.ndarray, d: int) -> np.ndarray:
    return _pair_stat(x, y, _window(d), True)


@_pairwise(
    "ts_cov",
    "sample covariance (ddof=1) of x and y over the trailing d rows where both are valid",
)
def ts_cov(x: np.ndarray, y: np.ndarray, d: int) -> np.ndarray:
    return _pair_stat(x, y, _window(d), False)

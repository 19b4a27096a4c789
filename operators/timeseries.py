"""Time-series operators: trailing-window kernels over (T, N) panels, column by column.

Conventions (DESIGN rule 3 and the operator contract):

* The window of `d` rows at row t covers rows t-d+1..t. Rows before the start of the panel are
  missing slots, exactly like NaN rows. NaN values are skipped; a statistic needs a minimum number
  of valid values (1; 2 for std, var, zscore, cv, corr, cov and slope; 3 for skew; 4 for kurt)
  and is NaN otherwise.
* Bit-exact windows: each output depends on its own window's rows alone. Most statistics are
  accumulated over the window from its oldest row to today, with nothing carried along the column
  except (for the median) a sorted copy of the window's valid values. The extremes of windows of
  `_BLOCKS_FROM` rows or more come from running extremes over blocks of d rows (van Herk /
  Gil-Werman), whose alignment depends on where the panel starts, but the extreme and the latest
  row holding it are exact functions of the window. A recomputation from a slice that starts
  `lookback` rows earlier therefore gives bit-identical values.
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

from operators.finite import finite_or_nan
from operators.registry import Arg, KernelT, lag_lookback, operator, window_lookback
from operators.sorting import insert_sorted, remove_sorted

FAMILY = "timeseries"

_jit = njit(cache=True, nogil=True, error_model="numpy")  # x / 0 is inf or NaN, no raise

# what `_moment_stat` returns
_MEAN, _STD, _VAR, _ZSCORE, _CV, _SKEW, _KURT = range(7)

# the extremes scan windows shorter than this and use blocks from here on: a scan costs O(d) per
# output, blocks O(1) but with a fixed overhead (two passes and a stored suffix per block) that only
# pays from about this window on (benchmarks/README.md has the measurements)
_BLOCKS_FROM = 5


def _rolling(name: str, doc: str) -> Callable[[KernelT], KernelT]:
    """Declare a trailing-window operator name(x, d)."""
    return operator(
        name,
        Arg.series("x"),
        Arg.window("d"),
        family=FAMILY,
        lookback=window_lookback("d"),
        doc=doc,
    )


def _pairwise(name: str, doc: str) -> Callable[[KernelT], KernelT]:
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


def _shifted(name: str, doc: str) -> Callable[[KernelT], KernelT]:
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


@_jit
def _window_start(t: int, d: int) -> int:
    return max(0, t - d + 1)


# --------------------------------------------------------------------------------------- shifts


@_jit
def _nan_head(rows, cols, d):
    """An uninitialised (rows, cols) panel whose first d rows (no row d above them) are NaN."""
    out = np.empty((rows, cols))
    out[: min(d, rows)] = np.nan
    return out


@_jit
def _delay(x, d):
    rows, cols = x.shape
    out = _nan_head(rows, cols, d)
    for t in range(d, rows):
        before, shifted = x[t - d], out[t]
        for n in range(cols):
            shifted[n] = finite_or_nan(before[n])
    return out


@_jit
def _changed(now, before, relative):
    """now - before, or now / before - 1 (NaN where before is 0) when `relative`; never inf."""
    if relative:
        change = now / before - 1.0 if before != 0.0 else np.nan
    else:
        change = now - before
    return finite_or_nan(change)


@_jit
def _change(x, d, relative):
    """x - delay(x, d), or x / delay(x, d) - 1 when `relative`."""
    rows, cols = x.shape
    out = _nan_head(rows, cols, d)
    for t in range(d, rows):
        before, now, changed = x[t - d], x[t], out[t]
        for n in range(cols):
            changed[n] = _changed(now[n], before[n], relative)
    return out


@_shifted("delay", "x shifted down d rows (d rows ago)")
def delay(x: np.ndarray, d: int) -> np.ndarray:
    return _delay(x, _lag(d))


@_shifted("delta", "x - delay(x, d)")
def delta(x: np.ndarray, d: int) -> np.ndarray:
    return _change(x, _lag(d), False)


@_shifted("pct_change", "x / delay(x, d) - 1; NaN when delay(x, d) is 0 or NaN")
def pct_change(x: np.ndarray, d: int) -> np.ndarray:
    return _change(x, _lag(d), True)


# ------------------------------------------------------------------------- sums and products


@_jit
def _gathered(product, v, acc, count):
    """A column's window sum (or product) and count of valid values, updated with one value."""
    valid = v == v
    grown = acc * v if product else acc + v
    return grown if valid else acc, count + np.int64(valid)


@_jit
def _gather_rows(x, lo, t, acc, count, product):
    """Per column: `_gathered` over rows lo..t, oldest first; four rows at a time, so that each
    column's accumulators are loaded and stored once per four."""
    k = lo
    while k + 3 <= t:
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        for n in range(x.shape[1]):
            s = _gathered(product, x0[n], acc[n], count[n])
            s = _gathered(product, x1[n], *s)
            s = _gathered(product, x2[n], *s)
            acc[n], count[n] = _gathered(product, x3[n], *s)
        k += 4
    for rest in range(k, t + 1):
        for n in range(x.shape[1]):
            acc[n], count[n] = _gathered(product, x[rest, n], acc[n], count[n])


@_jit
def _accumulate(x, d, product):
    """Sum (or product) of the valid values of each window, oldest first."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    acc = np.empty(cols)
    count = np.empty(cols, dtype=np.int64)
    for t in range(rows):
        acc[:] = 1.0 if product else 0.0
        count[:] = 0
        if product:  # a constant in each call: the branch inside folds away and the loops vectorise
            _gather_rows(x, _window_start(t, d), t, acc, count, True)
        else:
            _gather_rows(x, _window_start(t, d), t, acc, count, False)
        row = out[t]
        for n in range(cols):
            row[n] = finite_or_nan(acc[n]) if count[n] > 0 else np.nan
    return out


@_rolling("ts_sum", "sum of the valid values of the trailing d rows")
def ts_sum(x: np.ndarray, d: int) -> np.ndarray:
    return _accumulate(x, _window(d), False)


@_rolling("ts_product", "product of the valid values of the trailing d rows")
def ts_product(x: np.ndarray, d: int) -> np.ndarray:
    return _accumulate(x, _window(d), True)


# --------------------------------------------------------------------------------- moments


@_jit
def _summary(v, count, total, low, high):
    """A column's window summary updated with one value (skipped when NaN)."""
    valid = v == v
    return (
        count + valid,
        total + (v if valid else 0.0),
        v if v < low else low,
        v if v > high else high,
    )


@_jit
def _summarise(x, lo, t, count, total, low, high):
    """Per column: count, sum (oldest first), min and max of the valid values of rows lo..t.

    Four rows at a time, so that each column's accumulators are loaded and stored once per four.
    """
    count[:] = 0.0
    total[:] = 0.0
    low[:] = np.inf
    high[:] = -np.inf
    k = lo
    while k + 3 <= t:
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        for n in range(x.shape[1]):
            s = (count[n], total[n], low[n], high[n])
            s = _summary(x0[n], *s)
            s = _summary(x1[n], *s)
            s = _summary(x2[n], *s)
            s = _summary(x3[n], *s)
            count[n], total[n], low[n], high[n] = s
        k += 4
    for rest in range(k, t + 1):
        for n in range(x.shape[1]):
            count[n], total[n], low[n], high[n] = _summary(x[rest, n], count[n], total[n], low[n], high[n])


@_jit
def _centre(count, total, low, high, mean, unit):
    """Window mean (exact when constant) and 1 / the largest deviation from it (0 when constant).

    The deviation is clamped to [1e-300, 1e300] so that its reciprocal is a normal number.
    """
    for n in range(count.size):  # selects, no branches: the loop vectorises
        average = total[n] / count[n]  # NaN when there is no valid value
        spread = max(high[n] - average, average - low[n])
        constant = low[n] == high[n]
        mean[n] = low[n] if constant else average
        unit[n] = 0.0 if constant else (1.0 / min(max(spread, 1e-300), 1e300) if count[n] > 0 else np.nan)


@_jit
def _powers(v, mean, unit, order, s2, s3, s4):
    """A column's sums of u**2 .. u**order updated with one value (u = 0 when v is NaN)."""
    u = (v - mean) * unit if v == v else 0.0
    u2 = u * u
    return s2 + u2, s3 + u2 * u if order >= 3 else s3, s4 + u2 * u2 if order >= 4 else s4


@_jit
def _central_sums(x, lo, t, mean, unit, order, s2, s3, s4):
    """Per column: sums of u**2 .. u**order, u = (value - mean) * unit, over the valid values.

    Four rows at a time, like `_summarise`.
    """
    s2[:] = 0.0
    s3[:] = 0.0
    s4[:] = 0.0
    k = lo
    while k + 3 <= t:
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        for n in range(x.shape[1]):
            centre, s = (mean[n], unit[n], order), (s2[n], s3[n], s4[n])
            s = _powers(x0[n], *centre, *s)
            s = _powers(x1[n], *centre, *s)
            s = _powers(x2[n], *centre, *s)
            s = _powers(x3[n], *centre, *s)
            s2[n], s3[n], s4[n] = s
        k += 4
    for rest in range(k, t + 1):
        for n in range(x.shape[1]):
            s2[n], s3[n], s4[n] = _powers(x[rest, n], mean[n], unit[n], order, s2[n], s3[n], s4[n])


@_jit
def _finish(stat, today, count, mean, unit, s2, s3, s4):
    """One statistic from the centred sums of a window (see `_central_sums`).

    Computed whole and then selected (no branches on the data), so that the loop over the
    columns vectorises; `stat` is the same for the whole loop.
    """
    if stat == _MEAN:
        return finite_or_nan(mean)
    constant = unit == 0.0
    unit_std = math.sqrt(s2 / (count - 1.0))  # sample std in units of 1 / unit
    if stat == _STD or stat == _VAR:
        std = unit_std / unit
        value = 0.0 if constant else finite_or_nan(std if stat == _STD else std * std)
    elif stat == _CV:
        value = (0.0 if constant else finite_or_nan(unit_std / unit / abs(mean))) if mean != 0.0 else np.nan
    elif stat == _ZSCORE:
        value = np.nan if constant else finite_or_nan((today - mean) * unit / unit_std)
    elif stat == _SKEW:
        m2, m3 = s2 / count, s3 / count
        skew = finite_or_nan(math.sqrt(count * (count - 1.0)) / (count - 2.0) * m3 / (m2 * math.sqrt(m2)))
        value = np.nan if constant | (count < 3) else skew
    else:
        m2, m4 = s2 / count, s4 / count
        excess = (count * count - 1.0) * m4 / (m2 * m2) - 3.0 * (count - 1.0) ** 2
        kurt = finite_or_nan(excess / ((count - 2.0) * (count - 3.0)))
        value = np.nan if constant | (count < 4) else kurt
    return np.nan if count < 2 else value


@_jit
def _finish_at(stat, n, today, count, mean, unit, s2, s3, s4):
    return _finish(stat, today[n], count[n], mean[n], unit[n], s2[n], s3[n], s4[n])


@_jit
def _finish_row(stat, today, count, mean, unit, s2, s3, s4, out):
    """`_finish` for every column, one loop per statistic: with `stat` a constant in each loop,
    the branches on it fold away and the loop vectorises."""
    row = (today, count, mean, unit, s2, s3, s4)
    if stat == _MEAN:
        for n in range(out.size):
            out[n] = _finish_at(_MEAN, n, *row)
    elif stat == _STD:
        for n in range(out.size):
            out[n] = _finish_at(_STD, n, *row)
    elif stat == _VAR:
        for n in range(out.size):
            out[n] = _finish_at(_VAR, n, *row)
    elif stat == _ZSCORE:
        for n in range(out.size):
            out[n] = _finish_at(_ZSCORE, n, *row)
    elif stat == _CV:
        for n in range(out.size):
            out[n] = _finish_at(_CV, n, *row)
    elif stat == _SKEW:
        for n in range(out.size):
            out[n] = _finish_at(_SKEW, n, *row)
    else:
        for n in range(out.size):
            out[n] = _finish_at(_KURT, n, *row)


@_jit
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
        _finish_row(stat, x[t], count, mean, unit, s2, s3, s4, out[t])
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


@_jit
def _beats(v, at, best, best_at, largest):
    """Whether v (row `at`) beats best (row best_at): larger (smaller), or equal and from a later row.

    NaN never beats; anything else, even an infinite v, beats the start value (+-inf at row -1).
    """
    more = v > best if largest else v < best  # False for NaN
    return more | ((v == best) & (at > best_at))


@_jit
def _extreme_output(best, where, t, d, position):
    """The output at row t for a window whose extreme is best at row `where` (-1: no valid value)."""
    value = d - (t - where) if position else finite_or_nan(best)
    return value if where >= 0 else np.nan


@_jit
def _extreme_scan(x, d, largest, position):
    """_extreme by scanning each window from its oldest row to today: O(d) per output."""
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
            out[t, n] = _extreme_output(best[n], where[n], t, d, position)
    return out


@_jit
def _extreme_blocks(x, d, largest, position):
    """_extreme by van Herk / Gil-Werman over blocks of d rows from row 0: O(1) per output.

    The window ending at row t of a block is the previous block's rows from t - d + 1 to its end
    (none at the block's last row; rows before row 0 are missing) followed by the block's rows up
    to t. A forward scan of the block gives the extreme of the second part, a backward scan of the
    previous block that of the first, and the extreme of the window is the better of the two,
    where every comparison lets the later row win a tie: the same value and row as a scan of the
    window alone, whatever the alignment of the blocks.
    """
    rows, cols = x.shape
    out = np.empty((rows, cols))
    worst = -np.inf if largest else np.inf
    slots = min(d, rows) + 1  # d + 1, or fewer when d > rows (one block, after missing rows only)
    tail = np.full((slots, cols), worst)  # tail[o]: extreme of the previous block's rows o..d-1
    tail_at = np.full((slots, cols), -1.0)  # its row; -1 when they have no valid value
    best = np.empty(cols)
    where = np.empty(cols)
    for start in range(0, rows, d):
        end = min(start + d, rows)
        best[:] = worst
        where[:] = -1.0
        for t in range(start, end):
            today = x[t]
            for n in range(cols):
                v, b, w = today[n], best[n], where[n]
                better = _beats(v, t, b, w, largest)
                best[n] = v if better else b
                where[n] = t if better else w
            older, older_at, row = tail[t - start + 1], tail_at[t - start + 1], out[t]
            for n in range(cols):
                b, w, s, s_at = best[n], where[n], older[n], older_at[n]
                head = _beats(b, w, s, s_at, largest)
                row[n] = _extreme_output(b if head else s, w if head else s_at, t, d, position)
        if end < rows:
            for k in range(end - 1, start - 1, -1):
                now, later, later_at = x[k], tail[k - start + 1], tail_at[k - start + 1]
                suffix, suffix_at = tail[k - start], tail_at[k - start]
                for n in range(cols):
                    v, s, s_at = now[n], later[n], later_at[n]  # all loads before the stores, or no SIMD
                    better = _beats(v, k, s, s_at, largest)
                    suffix[n] = v if better else s
                    suffix_at[n] = k if better else s_at
    return out


def _extreme(x: np.ndarray, d: int, largest: bool, position: bool) -> np.ndarray:
    """Max (min) of each window, or its 1-based slot (1 = oldest, d = today; ties: the latest).

    Windows of `_BLOCKS_FROM` rows or more go by blocks, shorter ones are scanned (faster there);
    both give the same bits.
    """
    kernel = _extreme_blocks if d >= _BLOCKS_FROM else _extreme_scan
    return kernel(x, d, largest, position)


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


@_jit
def _rank_counts(v, today, count, below, equal):
    """A column's window counts (valid, below today, equal to today) updated with one value."""
    return count + np.int64(v == v), below + np.int64(v < today), equal + np.int64(v == today)


@_jit
def _ts_rank(x, d):
    """Today's average-tie percentile among the window's valid values. Four rows at a time, so
    that each column's counts are loaded and stored once per four; integer counts, because they
    vectorise better than float ones."""
    rows, cols = x.shape
    out = np.empty((rows, cols))
    count = np.empty(cols, dtype=np.int64)
    below = np.empty(cols, dtype=np.int64)
    equal = np.empty(cols, dtype=np.int64)
    for t in range(rows):
        count[:] = 0
        below[:] = 0
        equal[:] = 0
        today = x[t]
        k = _window_start(t, d)
        while k + 3 <= t:
            x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
            for n in range(cols):
                s = _rank_counts(x0[n], today[n], count[n], below[n], equal[n])
                s = _rank_counts(x1[n], today[n], *s)
                s = _rank_counts(x2[n], today[n], *s)
                count[n], below[n], equal[n] = _rank_counts(x3[n], today[n], *s)
            k += 4
        for rest in range(k, t + 1):
            for n in range(cols):
                s = _rank_counts(x[rest, n], today[n], count[n], below[n], equal[n])
                count[n], below[n], equal[n] = s
        row = out[t]
        for n in range(cols):  # today is valid where it equals itself: equal > 0
            rank = (below[n] + (equal[n] + 1.0) / 2.0) / count[n]
            row[n] = rank if equal[n] > 0 else np.nan
    return out


@_rolling(
    "ts_rank",
    "percentile rank (average ties, in (0, 1]) of today's x among the valid values of the trailing d rows",
)
def ts_rank(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_rank(x, _window(d))


@_jit
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
                m = remove_sorted(window[n], m, x[t - d, n])
            if x[t, n] == x[t, n]:
                m = insert_sorted(window[n], m, x[t, n])
            size[n] = m
            if m == 0:
                out[t, n] = np.nan
            elif m % 2 == 1:
                out[t, n] = finite_or_nan(window[n, m // 2])
            else:
                out[t, n] = finite_or_nan(0.5 * window[n, m // 2 - 1] + 0.5 * window[n, m // 2])
    return out


@_rolling("ts_median", "median of the valid values of the trailing d rows")
def ts_median(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_median(x, _window(d))


# ----------------------------------------------------------------------- weighted and trend


@_jit
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
            out[t, n] = finite_or_nan(weighted[n] / weights[n]) if weights[n] > 0 else np.nan
    return out


@_rolling(
    "decay_linear",
    "linearly weighted mean of the trailing d rows, weights d (today) .. 1 (oldest), "
    "normalised over the valid values",
)
def decay_linear(x: np.ndarray, d: int) -> np.ndarray:
    return _decay_linear(x, _window(d))


@_jit
def _ts_slope(x, d):
    """OLS slope of the valid values on their row index (taken as the offset o = k - t from today).

    Two passes per window: `_summarise` for the centre and scale of the values, then the offset
    sums Σo, Σo² and Σo·u, Σu of the centred, scaled values u, from which
    Sxx = Σo² - (Σo)² / n (integers: exact but for the last division) and Sxy = Σo·u - ō·Σu.
    """
    rows, cols = x.shape
    out = np.empty((rows, cols))
    count, total, low, high = np.empty(cols), np.empty(cols), np.empty(cols), np.empty(cols)
    mean, unit = np.empty(cols), np.empty(cols)
    so, soo, sou, su = np.empty(cols), np.empty(cols), np.empty(cols), np.empty(cols)
    for t in range(rows):
        lo = _window_start(t, d)
        _summarise(x, lo, t, count, total, low, high)
        _centre(count, total, low, high, mean, unit)
        so[:] = 0.0
        soo[:] = 0.0
        sou[:] = 0.0
        su[:] = 0.0
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
        for n in range(cols):
            if count[n] < 2:
                out[t, n] = np.nan
            elif unit[n] == 0:
                out[t, n] = 0.0
            else:
                mean_offset = so[n] / count[n]
                sxx = soo[n] - so[n] * mean_offset
                sxy = sou[n] - mean_offset * su[n]
                out[t, n] = finite_or_nan(sxy / sxx / unit[n])
    return out


@_rolling(
    "ts_slope",
    "OLS slope per row of the valid values of the trailing d rows on the row index (needs 2)",
)
def ts_slope(x: np.ndarray, d: int) -> np.ndarray:
    return _ts_slope(x, _window(d))


# --------------------------------------------------------------------------------- pairs


@_jit
def _pair_summary(a, b, count, total_x, total_y, low_x, high_x, low_y, high_y):
    """A column's window summary updated with one row's pair (skipped unless both are valid)."""
    both = (a == a) & (b == b)
    a = a if both else np.nan
    b = b if both else np.nan
    return (
        count + both,
        total_x + (a if both else 0.0),
        total_y + (b if both else 0.0),
        a if a < low_x else low_x,
        a if a > high_x else high_x,
        b if b < low_y else low_y,
        b if b > high_y else high_y,
    )


@_jit
def _pair_summaries(x, y, lo, t, count, total_x, total_y, low_x, high_x, low_y, high_y):
    """Per column: count, sums (oldest first), min and max of x and y over the rows lo..t where
    both are valid.

    Four rows at a time, so that each column's accumulators are loaded and stored once per four.
    """
    count[:] = 0.0
    total_x[:] = 0.0
    total_y[:] = 0.0
    low_x[:] = np.inf
    high_x[:] = -np.inf
    low_y[:] = np.inf
    high_y[:] = -np.inf
    k = lo
    while k + 3 <= t:
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        y0, y1, y2, y3 = y[k], y[k + 1], y[k + 2], y[k + 3]
        for n in range(x.shape[1]):
            s = (count[n], total_x[n], total_y[n], low_x[n], high_x[n], low_y[n], high_y[n])
            s = _pair_summary(x0[n], y0[n], *s)
            s = _pair_summary(x1[n], y1[n], *s)
            s = _pair_summary(x2[n], y2[n], *s)
            s = _pair_summary(x3[n], y3[n], *s)
            count[n], total_x[n], total_y[n], low_x[n], high_x[n], low_y[n], high_y[n] = s
        k += 4
    for rest in range(k, t + 1):
        for n in range(x.shape[1]):
            s = (count[n], total_x[n], total_y[n], low_x[n], high_x[n], low_y[n], high_y[n])
            s = _pair_summary(x[rest, n], y[rest, n], *s)
            count[n], total_x[n], total_y[n], low_x[n], high_x[n], low_y[n], high_y[n] = s


@_jit
def _pair_products(a, b, mean_x, unit_x, mean_y, unit_y, sxx, syy, sxy):
    """Centred sums of squares and products updated with one row's pair (if both are valid)."""
    both = (a == a) & (b == b)
    u = (a - mean_x) * unit_x if both else 0.0
    v = (b - mean_y) * unit_y if both else 0.0
    return sxx + u * u, syy + v * v, sxy + u * v


@_jit
def _pair_sums_of_products(x, y, lo, t, mean_x, unit_x, mean_y, unit_y, sxx, syy, sxy):
    """Per column: sums of u*u, v*v and u*v over rows lo..t, u and v the centred, scaled pair.

    Four rows at a time, like `_pair_summaries`.
    """
    sxx[:] = 0.0
    syy[:] = 0.0
    sxy[:] = 0.0
    k = lo
    while k + 3 <= t:
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        y0, y1, y2, y3 = y[k], y[k + 1], y[k + 2], y[k + 3]
        for n in range(x.shape[1]):
            centre = (mean_x[n], unit_x[n], mean_y[n], unit_y[n])
            s = (sxx[n], syy[n], sxy[n])
            s = _pair_products(x0[n], y0[n], *centre, *s)
            s = _pair_products(x1[n], y1[n], *centre, *s)
            s = _pair_products(x2[n], y2[n], *centre, *s)
            s = _pair_products(x3[n], y3[n], *centre, *s)
            sxx[n], syy[n], sxy[n] = s
        k += 4
    for rest in range(k, t + 1):
        for n in range(x.shape[1]):
            s = (sxx[n], syy[n], sxy[n])
            s = _pair_products(x[rest, n], y[rest, n], mean_x[n], unit_x[n], mean_y[n], unit_y[n], *s)
            sxx[n], syy[n], sxy[n] = s


@_jit
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
        _pair_summaries(x, y, lo, t, count, total_x, total_y, low_x, high_x, low_y, high_y)
        _centre(count, total_x, low_x, high_x, mean_x, unit_x)
        _centre(count, total_y, low_y, high_y, mean_y, unit_y)
        _pair_sums_of_products(x, y, lo, t, mean_x, unit_x, mean_y, unit_y, sxx, syy, sxy)
        row = out[t]
        if correlation:  # selects, no branches inside the loops: they vectorise
            for n in range(cols):
                constant = (unit_x[n] == 0) | (unit_y[n] == 0)
                r = min(1.0, max(-1.0, sxy[n] / (math.sqrt(sxx[n]) * math.sqrt(syy[n]))))
                row[n] = np.nan if (count[n] < 2) | constant else r
        else:
            for n in range(cols):
                constant = (unit_x[n] == 0) | (unit_y[n] == 0)
                smaller, larger = min(unit_x[n], unit_y[n]), max(unit_x[n], unit_y[n])
                cov = finite_or_nan(sxy[n] / (count[n] - 1.0) / smaller / larger)  # symmetric
                row[n] = np.nan if count[n] < 2 else (0.0 if constant else cov)
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

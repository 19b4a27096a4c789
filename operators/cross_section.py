"""Cross-sectional operators: each date (row) on its own, over its valid instruments only.

An instrument whose value is NaN on a date takes no part in that date and gets NaN. Group
operators also drop instruments without a group label (NaN) and work within each group of
the date. Labels are meant to be small non-negative integer codes stored as float64, which
index per-group accumulators directly; any other labels are first mapped to such codes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from operators.registry import Arg, operator

FAMILY = "cross_section"

MIN_RESID_PAIRS = 3
"""`cs_resid` needs at least this many instruments where both x and y are valid."""

DENSE_CODE_LIMIT = 1 << 16
"""Integer group labels below this index the per-group accumulators directly; others are mapped."""


@njit(cache=True, nogil=True)
def _nan_if_inf(value: float) -> float:
    return np.nan if np.isinf(value) else value


@njit(cache=True, nogil=True)
def _valid_positions(row: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isnan(row))


@njit(cache=True, nogil=True)
def _is_constant(values: np.ndarray) -> bool:
    return values.min() == values.max()


@njit(cache=True, nogil=True)
def _pct_ranks(values: np.ndarray) -> np.ndarray:
    """Average rank of each value (ties share their mean rank) divided by the count."""
    count = values.size
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(count)
    first = 0
    while first < count:
        last = first
        while last + 1 < count and values[order[last + 1]] == values[order[first]]:
            last += 1
        shared = (first + last + 2) / 2.0
        for k in range(first, last + 1):
            ranks[order[k]] = shared / count
        first = last + 1
    return ranks


@njit(cache=True, nogil=True)
def _demeaned(values: np.ndarray) -> np.ndarray:
    return values - values.sum() / values.size


@njit(cache=True, nogil=True)
def _zscores(values: np.ndarray) -> np.ndarray:
    """(v - mean) / std with ddof 0; all NaN when the values are all equal."""
    if _is_constant(values):
        return np.full(values.size, np.nan)
    centred = _demeaned(values)
    std = np.sqrt((centred * centred).sum() / values.size)
    if std == 0.0 or not np.isfinite(std):
        return np.full(values.size, np.nan)
    return centred / std


@njit(cache=True, nogil=True)
def _rank(x: np.ndarray) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        positions = _valid_positions(x[t])
        if positions.size:
            out[t][positions] = _pct_ranks(x[t][positions])
    return out


@njit(cache=True, nogil=True)
def _zscore(x: np.ndarray) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        positions = _valid_positions(x[t])
        if positions.size:
            out[t][positions] = _zscores(x[t][positions])
    return out


@njit(cache=True, nogil=True)
def _demean(x: np.ndarray) -> np.ndarray:
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    for t in range(n_rows):
        total = 0.0
        count = 0
        for n in range(n_cols):
            if not np.isnan(x[t, n]):
                total += x[t, n]
                count += 1
        mean = total / count if count else np.nan
        for n in range(n_cols):
            out[t, n] = _nan_if_inf(x[t, n] - mean)
    return out


@njit(cache=True, nogil=True)
def _scale(x: np.ndarray, a: float) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        positions = _valid_positions(x[t])
        values = x[t][positions]
        gross = np.abs(values).sum()
        if positions.size == 0 or gross == 0.0 or not np.isfinite(gross):
            continue
        scaled = values * a / gross
        scaled[~np.isfinite(scaled)] = np.nan
        out[t][positions] = scaled
    return out


@njit(cache=True, nogil=True)
def _cs_resid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        positions = np.flatnonzero(~(np.isnan(x[t]) | np.isnan(y[t])))
        if positions.size < MIN_RESID_PAIRS:
            continue
        ys = y[t][positions]
        if _is_constant(ys):
            continue
        x_centred = _demeaned(x[t][positions])
        y_centred = _demeaned(ys)
        spread = (y_centred * y_centred).sum()
        if spread == 0.0:
            continue
        slope = (y_centred * x_centred).sum() / spread
        resid = x_centred - slope * y_centred
        resid[~np.isfinite(resid)] = np.nan
        out[t][positions] = resid
    return out


@njit(cache=True, nogil=True)
def _dense_code_bound(g: np.ndarray) -> int:
    """1 + the largest label when every label is an integer in [0, DENSE_CODE_LIMIT), else -1."""
    bound = 0
    for t in range(g.shape[0]):
        for n in range(g.shape[1]):
            label = g[t, n]
            if np.isnan(label):
                continue
            if not (0.0 <= label < DENSE_CODE_LIMIT) or label != np.floor(label):
                return -1
            bound = max(bound, int(label) + 1)
    return bound


def _dense_codes(g: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels as float codes 0..n_codes-1 (NaN: no label) and n_codes; small integer labels stay."""
    bound = _dense_code_bound(g)
    if bound >= 0:
        return g, bound
    labelled = ~np.isnan(g)
    labels, inverse = np.unique(g[labelled], return_inverse=True)
    codes = np.full(g.shape, np.nan)
    codes[labelled] = inverse
    return codes, labels.size


@njit(cache=True, nogil=True)
def _group_neutralize(x: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    sums = np.zeros(n_codes)
    counts = np.zeros(n_codes, dtype=np.int64)
    for t in range(n_rows):
        members = np.flatnonzero(~(np.isnan(x[t]) | np.isnan(codes[t])))
        for n in members:
            code = int(codes[t, n])
            sums[code] += x[t, n]
            counts[code] += 1
        for n in members:
            code = int(codes[t, n])
            out[t, n] = _nan_if_inf(x[t, n] - sums[code] / counts[code])
        for n in members:
            code = int(codes[t, n])
            sums[code] = 0.0
            counts[code] = 0
    return out


@njit(cache=True, nogil=True)
def _group_zscore(x: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    sums = np.zeros(n_codes)
    squares = np.zeros(n_codes)
    counts = np.zeros(n_codes, dtype=np.int64)
    lows = np.full(n_codes, np.inf)
    highs = np.full(n_codes, -np.inf)
    for t in range(n_rows):
        members = np.flatnonzero(~(np.isnan(x[t]) | np.isnan(codes[t])))
        for n in members:
            code = int(codes[t, n])
            sums[code] += x[t, n]
            counts[code] += 1
            lows[code] = min(lows[code], x[t, n])
            highs[code] = max(highs[code], x[t, n])
        for n in members:
            code = int(codes[t, n])
            centred = x[t, n] - sums[code] / counts[code]
            squares[code] += centred * centred
        for n in members:
            code = int(codes[t, n])
            std = np.sqrt(squares[code] / counts[code])
            if lows[code] < highs[code] and 0.0 < std < np.inf:
                out[t, n] = (x[t, n] - sums[code] / counts[code]) / std
        for n in members:
            code = int(codes[t, n])
            sums[code] = squares[code] = 0.0
            counts[code] = 0
            lows[code] = np.inf
            highs[code] = -np.inf
    return out


@njit(cache=True, nogil=True)
def _group_rank(x: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Walk each date in value order; a run of equal values shares its average rank per group."""
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    totals = np.zeros(n_codes, dtype=np.int64)
    below = np.zeros(n_codes, dtype=np.int64)
    ties = np.zeros(n_codes, dtype=np.int64)
    for t in range(n_rows):
        members = np.flatnonzero(~(np.isnan(x[t]) | np.isnan(codes[t])))
        values = x[t][members]
        order = members[np.argsort(values, kind="mergesort")]
        for n in members:
            totals[int(codes[t, n])] += 1
        first = 0
        while first < order.size:
            last = first
            while last + 1 < order.size and x[t, order[last + 1]] == x[t, order[first]]:
                last += 1
            run = order[first : last + 1]
            for n in run:
                ties[int(codes[t, n])] += 1
            for n in run:
                code = int(codes[t, n])
                out[t, n] = (below[code] + (ties[code] + 1) / 2.0) / totals[code]
            for n in run:
                code = int(codes[t, n])
                below[code] += 1
                ties[code] = 0
            first = last + 1
        for n in members:
            code = int(codes[t, n])
            totals[code] = below[code] = 0
    return out


@operator(
    "rank",
    Arg.series("x"),
    family=FAMILY,
    doc="percentile rank among the date's valid instruments, average ties, in (0, 1]",
)
def rank(x: np.ndarray) -> np.ndarray:
    return _rank(x)


@operator(
    "zscore",
    Arg.series("x"),
    family=FAMILY,
    doc="(x - mean) / std (ddof 0) over the date's valid instruments; NaN when std is 0",
)
def zscore(x: np.ndarray) -> np.ndarray:
    return _zscore(x)


@operator(
    "scale",
    Arg.series("x"),
    Arg.const("a", default=1.0),
    family=FAMILY,
    doc="x * a / sum(|x|) over the date's valid instruments; NaN when the sum is 0",
)
def scale(x: np.ndarray, a: float = 1.0) -> np.ndarray:
    return _scale(x, float(a))


@operator(
    "demean",
    Arg.series("x"),
    family=FAMILY,
    doc="x minus its mean over the date's valid instruments",
)
def demean(x: np.ndarray) -> np.ndarray:
    return _demean(x)


@operator(
    "cs_resid",
    Arg.series("x"),
    Arg.series("y"),
    family=FAMILY,
    doc="residual of the date's OLS x ~ 1 + y (needs 3 valid pairs and a non-constant y)",
)
def cs_resid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _cs_resid(x, y)


@operator(
    "group_neutralize",
    Arg.series("x"),
    Arg.group("g"),
    family=FAMILY,
    doc="x minus its group's mean on the date; NaN without a group",
)
def group_neutralize(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return _group_neutralize(x, *_dense_codes(g))


@operator(
    "group_rank",
    Arg.series("x"),
    Arg.group("g"),
    family=FAMILY,
    doc="percentile rank within the group on the date, average ties, in (0, 1]",
)
def group_rank(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return _group_rank(x, *_dense_codes(g))


@operator(
    "group_zscore",
    Arg.series("x"),
    Arg.group("g"),
    family=FAMILY,
    doc="zscore (ddof 0) within the group on the date; NaN when the group is constant",
)
def group_zscore(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return _group_zscore(x, *_dense_codes(g))

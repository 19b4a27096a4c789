"""Cross-sectional operators: each date (row) on its own, over its valid instruments only.

An instrument whose value is NaN on a date takes no part in that date and gets NaN. Group
operators also drop instruments without a group label (NaN) and work within each group of
the date. Labels are meant to be small non-negative integer codes stored as float64, which
index per-group accumulators directly; any other labels are first mapped to such codes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from operators.finite import nan_if_inf
from operators.registry import Arg, operator
from operators.sorting import equal_run_end, prefix_run_end, sort_run

FAMILY = "cross_section"

MIN_RESID_PAIRS = 3
"""`cs_resid` needs at least this many instruments where both x and y are valid."""

DENSE_CODE_LIMIT = 1 << 16
"""Integer group labels below this index the per-group accumulators directly; others are mapped."""


@njit(cache=True, nogil=True)
def _valid_positions(row: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isnan(row))


@njit(cache=True, nogil=True)
def _is_constant(values: np.ndarray) -> bool:
    return values.min() == values.max()


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


_MAGNITUDE_BITS = np.uint64(0x7FFFFFFFFFFFFFFF)
_ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True)
def _scale_position(value, magnitude, negative_top, negative_span, positive_bottom):
    """An integer that orders a valid value on its date's scale: negatives, then 0, then positives.

    `magnitude` is |value|'s bit pattern, which orders magnitudes. Each side starts at its own
    smallest magnitude, so binades between zero and the date's smallest |value| take no room.
    """
    if value < 0.0:
        return negative_top - magnitude
    if value == 0.0:
        return negative_span + np.uint64(1)
    return negative_span + np.uint64(2) + (magnitude - positive_bottom)


@njit(cache=True, nogil=True)
def _fill_rank_keys(x, raw, keys, index_bits):
    """Per date: sort keys (value bucket, column) for `keys`' width; returns the valid counts.

    A value's bucket is its scale position shifted right just enough to fit beside the column;
    NaN gets the bucket after every value, so it sorts last. Buckets keep the order of the
    values; equal values share one, and so can close unequal ones.
    """
    rows, cols = x.shape
    bucket_bits = np.uint64(keys.itemsize * 8) - index_bits
    nan_bucket = (np.uint64(1) << bucket_bits) - np.uint64(1)
    counts = np.zeros(rows, dtype=np.int64)
    for t in range(rows):
        negative_bottom = positive_bottom = _ALL_BITS
        negative_top = positive_top = np.uint64(0)
        for n in range(cols):
            value, magnitude = x[t, n], raw[t, n] & _MAGNITUDE_BITS
            counts[t] += value == value
            negative, positive = value < 0.0, value > 0.0
            negative_bottom = min(negative_bottom, magnitude if negative else _ALL_BITS)
            negative_top = max(negative_top, magnitude if negative else np.uint64(0))
            positive_bottom = min(positive_bottom, magnitude if positive else _ALL_BITS)
            positive_top = max(positive_top, magnitude if positive else np.uint64(0))
        negative_span = negative_top - negative_bottom if negative_top >= negative_bottom else np.uint64(0)
        positive_span = positive_top - positive_bottom if positive_top >= positive_bottom else np.uint64(0)
        shift = np.uint64(0)
        while (negative_span + np.uint64(2) + positive_span) >> shift >= nan_bucket:
            shift += np.uint64(1)
        for n in range(cols):
            value, magnitude = x[t, n], raw[t, n] & _MAGNITUDE_BITS
            position = _scale_position(value, magnitude, negative_top, negative_span, positive_bottom)
            bucket = position >> shift if value == value else nan_bucket
            keys[t, n] = (bucket << index_bits) | np.uint64(n)
    return counts


@njit(cache=True, nogil=True)
def _rank_bucket(row_keys, first, end, index_bits, x_row, out_row, values, columns):
    """Doubled average ranks of the values whose keys are row_keys[first:end] (one bucket)."""
    column_mask = (np.uint64(1) << index_bits) - np.uint64(1)
    size = end - first
    all_equal = True
    for a in range(size):
        columns[a] = row_keys[first + a] & column_mask
        values[a] = x_row[columns[a]]
        all_equal &= values[a] == values[0]
    if all_equal:
        for a in range(size):
            out_row[columns[a]] = first + end + 1.0
        return
    sort_run(values, columns, 0, size)
    lo = 0
    while lo < size:
        hi = equal_run_end(values, lo, size)
        for a in range(lo, hi):
            out_row[columns[a]] = 2 * first + lo + hi + 1  # the run's first and last rank, summed
        lo = hi


@njit(cache=True, nogil=True)
def _ranks_from_sorted_keys(x, keys, counts, index_bits):
    """Average-tie percentile ranks from each date's sorted (bucket, column) keys.

    One pass with no branches on the data ranks every key by its position and lists the keys that
    share their bucket with the key before; then each run of such keys, a bucket of several keys,
    is ranked on its values (`_rank_bucket`: equal values share a bucket, and so can close unequal
    ones). Each rank is first stored doubled (an integer) and divided by twice the count at the end.
    """
    rows, cols = x.shape
    out = np.empty((rows, cols))
    column_mask = (np.uint64(1) << index_bits) - np.uint64(1)
    values = np.empty(cols)
    columns = np.empty(cols, dtype=np.int64)
    sharing = np.empty(cols + 1, dtype=np.int64)
    for t in range(rows):
        row_keys, out_row = keys[t], out[t]
        count = counts[t]
        listed = 0
        before = ~(row_keys[0] >> index_bits) if count > 0 else 0
        for i in range(count):
            bucket = row_keys[i] >> index_bits
            sharing[listed] = i
            listed += bucket == before
            before = bucket
            out_row[row_keys[i] & column_mask] = 2.0 * i + 2.0
        j = 0
        while j < listed:  # keys sharing[j] - 1 .. end - 1 hold one bucket
            first, end = sharing[j] - 1, sharing[j] + 1
            j += 1
            while j < listed and sharing[j] == end:
                end += 1
                j += 1
            _rank_bucket(row_keys, first, end, index_bits, x[t], out_row, values, columns)
        for i in range(count, cols):
            out_row[row_keys[i] & column_mask] = np.nan
        doubled_count = 2.0 * max(count, 1)
        for n in range(cols):
            out_row[n] /= doubled_count
    return out


def _sorted_rank_keys(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.uint64]:
    """Each date's (bucket, column) keys sorted with numpy, the valid counts and the column bits.

    Keys are 32-bit while the column fits in 16 bits (numpy sorts those much faster).
    """
    index_bits = np.uint64(max(1, (x.shape[1] - 1).bit_length()))
    keys = np.empty(x.shape, dtype=np.uint32 if index_bits <= 16 else np.uint64)
    counts = _fill_rank_keys(x, x.view(np.uint64), keys, index_bits)
    keys.sort(axis=1)
    return keys, counts, index_bits


def _rank(x: np.ndarray) -> np.ndarray:
    """Average-tie percentile ranks from each date's sorted (bucket, column) keys."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    return _ranks_from_sorted_keys(x, *_sorted_rank_keys(x))


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
            out[t, n] = nan_if_inf(x[t, n] - mean)
    return out


@njit(cache=True, nogil=True)
def _scale(x: np.ndarray, a: float) -> np.ndarray:
    rows, cols = x.shape
    out = np.empty((rows, cols))
    for t in range(rows):
        values, scaled = x[t], out[t]
        gross = 0.0
        for n in range(cols):
            gross += abs(values[n]) if values[n] == values[n] else 0.0
        if not 0.0 < gross < np.inf:  # no valid value, all zero, or an overflow
            scaled[:] = np.nan
            continue
        for n in range(cols):
            scaled[n] = nan_if_inf(values[n] * a / gross)
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
            out[t, n] = nan_if_inf(x[t, n] - sums[code] / counts[code])
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
def _value_order(row_keys, count, index_bits, x_row, values, columns, order):
    """order[:count] = the date's valid columns in ascending value order, from its sorted
    (bucket, column) keys: a bucket holding several values is sorted on the values."""
    column_mask = (np.uint64(1) << index_bits) - np.uint64(1)
    first = 0
    while first < count:
        end = prefix_run_end(row_keys, first, count, index_bits)
        if end - first == 1:
            order[first] = row_keys[first] & column_mask
        else:
            for a in range(end - first):
                columns[a] = row_keys[first + a] & column_mask
                values[a] = x_row[columns[a]]
            sort_run(values, columns, 0, end - first)
            for a in range(end - first):
                order[first + a] = columns[a]
        first = end


@njit(cache=True, nogil=True)
def _group_rank(x, keys, counts, index_bits, codes, n_codes):
    """Walk each date in value order; a run of equal values shares its average rank per group."""
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    totals = np.zeros(n_codes, dtype=np.int64)
    below = np.zeros(n_codes, dtype=np.int64)
    ties = np.zeros(n_codes, dtype=np.int64)
    values = np.empty(n_cols)
    columns = np.empty(n_cols, dtype=np.int64)
    order = np.empty(n_cols, dtype=np.int64)
    group = np.empty(n_cols, dtype=np.int64)
    for t in range(n_rows):
        _value_order(keys[t], counts[t], index_bits, x[t], values, columns, order)
        size = 0
        for k in range(counts[t]):  # the names with a group label, still in value order
            code = codes[t, order[k]]
            if not np.isnan(code):
                order[size] = order[k]
                values[size] = x[t, order[k]]
                group[size] = int(code)
                totals[group[size]] += 1
                size += 1
        first = 0
        while first < size:
            end = equal_run_end(values, first, size)
            for k in range(first, end):
                ties[group[k]] += 1
            for k in range(first, end):
                out[t, order[k]] = (below[group[k]] + (ties[group[k]] + 1) / 2.0) / totals[group[k]]
            for k in range(first, end):
                below[group[k]] += 1
                ties[group[k]] = 0
            first = end
        for k in range(size):
            totals[group[k]] = below[group[k]] = 0
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
    x = np.ascontiguousarray(x, dtype=np.float64)
    return _group_rank(x, *_sorted_rank_keys(x), *_dense_codes(g))


@operator(
    "group_zscore",
    Arg.series("x"),
    Arg.group("g"),
    family=FAMILY,
    doc="zscore (ddof 0) within the group on the date; NaN when the group is constant",
)
def group_zscore(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return _group_zscore(x, *_dense_codes(g))

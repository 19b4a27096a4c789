"""Factor metrics on (T, N) panels: IC, rank IC, ICIR, turnover, decay, coverage, quantile returns.

Conventions shared by every function here:

* A cell is *valid* when it is finite; NaN and +-inf are missing.
* Cross-sectional statistics of date t use the instruments valid in every input of that date.
* ``rows`` restricts the computation to a segment of dates without copying the panels: ``None``
  (every date), a ``slice`` with step 1, or a boolean mask of length T. Per-date series are NaN
  outside the segment. Statistics that pair date t with an earlier date (rank autocorrelation,
  quantile turnover) need both dates inside the segment, so ``f(x, rows=slice(a, b))`` equals
  ``f(x[a:b])`` placed at rows a..b-1.
* Results never contain inf: anything undefined is NaN.

Ranking sorts order-preserving integer keys of the float values (numpy's sort of 32-bit
words — a window of the key and the column — finished on the full keys; quantiles use a radix
sort), so the rank of a value is exact (average ranks of exact ties) and the Spearman sums are
exact quarter-integers. `rank_ic` is `rank_ic_fast` against a label prepared for the call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit

from evaluation.labels import forward_returns_multi

Rows = slice | np.ndarray | None

_SIGN_BIT = np.uint64(0x8000000000000000)
_RADIX_PASSES = 3  # 8-bit digits: the 24 key bits below the highest bit where keys differ
_WINDOW_MASK = np.uint64((1 << (8 * _RADIX_PASSES)) - 1)
_POSITION_MASK = np.uint64(0xFFFFFFFF)
_SHORT_RUN = 16  # runs tied on the radix window up to this length are insertion-sorted, else heapsort
_FEW_TIES_PER_NAME = 8  # under one name in 8 tied on its sort word's window: finish each tied run alone


# --------------------------------------------------------------------------- input handling


def _panel(x: np.ndarray, name: str) -> np.ndarray:
    """The argument as a C-contiguous float64 (T, N) array (no copy when it already is one)."""
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (T, N) array, got shape {arr.shape}")
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def _row_mask(rows: Rows, n_rows: int) -> np.ndarray:
    """Boolean (T,) mask of the dates selected by ``rows``."""
    if rows is None:
        return np.ones(n_rows, dtype=np.bool_)
    if isinstance(rows, slice):
        if rows.step not in (None, 1):
            raise ValueError(f"rows must be a contiguous slice (step 1), got step {rows.step}")
        mask = np.zeros(n_rows, dtype=np.bool_)
        mask[rows] = True
        return mask
    mask = np.asarray(rows)
    if mask.dtype != np.bool_ or mask.shape != (n_rows,):
        raise ValueError(
            f"rows must be None, a slice or a boolean mask of shape ({n_rows},), "
            f"got {mask.dtype} array of shape {mask.shape}"
        )
    return np.ascontiguousarray(mask)


def _check_min_names(min_names: int) -> int:
    if int(min_names) != min_names or min_names < 2:
        raise ValueError(f"min_names must be an integer >= 2, got {min_names!r}")
    return int(min_names)


def _nanmean(x: np.ndarray) -> float:
    """Mean of the finite values; NaN (and no warning) when there are none."""
    valid = x[np.isfinite(x)]
    return float(valid.mean()) if valid.size else math.nan


def _pandas_qcut_probabilities(quantiles: int) -> np.ndarray:
    """The probabilities pandas.qcut(x, q) puts its edges at (pandas 3 rounds them up)."""
    if int(quantiles) != quantiles or quantiles < 1:
        raise ValueError(f"quantiles must be an integer >= 1, got {quantiles!r}")
    probs = np.linspace(0.0, 1.0, int(quantiles) + 1)
    inexact = quantiles * probs != np.arange(int(quantiles) + 1)
    np.putmask(probs, inexact, np.nextafter(probs, 1.0))
    return probs


# ------------------------------------------------------------------ numba kernels: sorting


@njit(cache=True, nogil=True)
def _workspace(n: int):
    """Scratch buffers for `_sorted_order` on up to n values."""
    keys = np.empty(n, dtype=np.uint64)
    packed = np.empty(n, dtype=np.uint64)
    packed_alt = np.empty(n, dtype=np.uint64)
    order = np.empty(n, dtype=np.int64)
    hist = np.zeros((_RADIX_PASSES, 256), dtype=np.int64)
    return keys, packed, packed_alt, order, hist


@njit(cache=True, nogil=True)
def _gather_value(v: float) -> float:
    """The value as stored for sorting: -0.0 becomes 0.0 so that it ties with 0.0."""
    return 0.0 if v == 0.0 else v


@njit(cache=True, nogil=True)
def _order_key(bits):
    """Order-preserving uint64 image of a finite float's bits; -0.0 gets the key of 0.0."""
    if bits == _SIGN_BIT:
        bits = np.uint64(0)
    negative = np.uint64(0) - (bits >> np.uint64(63))  # all ones for a negative value (no branch)
    return bits ^ (negative | _SIGN_BIT)


@njit(cache=True, nogil=True)
def _window_low_bit(differ, width):
    """Lowest bit of the ``width``-bit window that ends at the highest set bit of ``differ``
    (the highest bit where any two keys differ), or 0 when the window reaches bit 0."""
    low = -width
    while differ:
        differ >>= np.uint64(1)
        low += 1
    return max(low, 0)


@njit(cache=True, nogil=True)
def _sift_down(keys, order, base, root, end):
    """Restore the max-heap property below ``root`` in keys[base:base+end] (order follows)."""
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and keys[base + child] < keys[base + child + 1]:
            child += 1
        if keys[base + root] >= keys[base + child]:
            return
        a, b = base + root, base + child
        keys[a], keys[b] = keys[b], keys[a]
        order[a], order[b] = order[b], order[a]
        root = child


@njit(cache=True, nogil=True)
def _heapsort_run(keys, order, i, j):
    """Sort keys[i:j] ascending in place, moving order[i:j] along (O(L log L), no allocation)."""
    size = j - i
    for root in range(size // 2 - 1, -1, -1):
        _sift_down(keys, order, i, root, size)
    for end in range(size - 1, 0, -1):
        keys[i], keys[i + end] = keys[i + end], keys[i]
        order[i], order[i + end] = order[i + end], order[i]
        _sift_down(keys, order, i, 0, end)


@njit(cache=True, nogil=True)
def _sort_run(keys, order, i, j):
    """Sort keys[i:j] ascending in place, moving order[i:j] along: nothing when already sorted,
    an insertion sort for a short run, else heapsort."""
    for k in range(i + 1, j):
        if keys[k] < keys[k - 1]:
            break
    else:
        return
    if j - i > _SHORT_RUN:
        _heapsort_run(keys, order, i, j)
        return
    for k in range(i + 1, j):
        key = keys[k]
        position = order[k]
        s = k - 1
        while s >= i and keys[s] > key:
            keys[s + 1] = keys[s]
            order[s + 1] = order[s]
            s -= 1
        keys[s + 1] = key
        order[s + 1] = position


@njit(cache=True, nogil=True)
def _sort_tied_runs(keys, order, m, low):
    """Finish the radix sort: order each run of keys equal from bit ``low`` up."""
    shift = np.uint64(low)
    i = 0
    while i < m:
        high = keys[i] >> shift
        j = i + 1
        while j < m and (keys[j] >> shift) == high:
            j += 1
        if j - i > 1:
            _sort_run(keys, order, i, j)
        i = j


@njit(cache=True, nogil=True)
def _sorted_order(values, m, ws):
    """(keys, order): positions 0..m-1 of values[:m] by ascending value, and their sort keys.

    Keys are order-preserving uint64 images of the (finite, -0.0-free) floats: equal keys
    mean equal values. Bits above the highest bit where any two keys differ are common to all;
    an LSD radix sort orders (24-bit window below that bit | position) words, then runs tied
    on the window are sorted on the full keys.
    """
    keys, packed, packed_alt, order, hist = ws
    bits = values[:m].view(np.uint64)
    differ = np.uint64(0)
    for k in range(m):
        keys[k] = _order_key(bits[k])
        differ |= keys[k] ^ keys[0]
    low = _window_low_bit(differ, 8 * _RADIX_PASSES)
    hist[:, :] = 0
    for k in range(m):
        window = (keys[k] >> np.uint64(low)) & _WINDOW_MASK
        packed[k] = (window << np.uint64(32)) | np.uint64(k)
        for p in range(_RADIX_PASSES):
            hist[p, (window >> np.uint64(8 * p)) & np.uint64(255)] += 1
    src, dst = packed, packed_alt
    for p in range(_RADIX_PASSES):
        counts = hist[p]
        single_bucket = False
        for b in range(256):
            if counts[b] != 0:
                single_bucket = counts[b] == m
                break
        if single_bucket:
            continue
        total = 0
        for b in range(256):
            c = counts[b]
            counts[b] = total
            total += c
        shift = np.uint64(32 + 8 * p)
        for k in range(m):
            word = src[k]
            b = (word >> shift) & np.uint64(255)
            pos = counts[b]
            counts[b] = pos + 1
            dst[pos] = word
        src, dst = dst, src
    sorted_keys = dst  # the buffer not holding the result is free
    for k in range(m):
        pos = np.int64(src[k] & _POSITION_MASK)
        order[k] = pos
        sorted_keys[k] = keys[pos]
    if low > 0:
        _sort_tied_runs(sorted_keys, order, m, low)
    return sorted_keys, order


@njit(cache=True, nogil=True)
def _tie_starts(keys, m, out):
    """out[k] = position of the first of the m ascending keys equal to keys[k] (m >= 1; the first
    key is peeled off so that no comparison reads before keys[0], a guard that would keep a branch)."""
    first = 0
    out[0] = 0.0
    for k in range(1, m):
        first = first if keys[k] == keys[k - 1] else k
        out[k] = first


@njit(cache=True, nogil=True)
def _sorted_ranks(keys, m, ranks):
    """ranks[k] = average rank of the k-th of m ascending keys minus (m + 1) / 2 (exact halves).

    Written without data-dependent branches (ties are frequent and unpredictable): a forward pass
    notes where each tie group starts (`_tie_starts`), a backward pass where it ends, its last key
    peeled off like the first.
    """
    if m == 0:
        return
    _tie_starts(keys, m, ranks)
    last = m - 1
    ranks[last] = 0.5 * (ranks[last] + last + 1 - m)
    for k in range(m - 2, -1, -1):
        last = last if keys[k] == keys[k + 1] else k
        ranks[k] = 0.5 * (ranks[k] + last + 1 - m)


# ------------------------------------------------------------------ numba kernels: correlation


@njit(cache=True, nogil=True)
def _finish_corr(sxy, sxx, syy):
    """sxy / sqrt(sxx * syy) clipped to [-1, 1]; NaN when a side has no variance."""
    if not (sxx > 0.0 and syy > 0.0):
        return np.nan
    r = sxy / (math.sqrt(sxx) * math.sqrt(syy))
    if not math.isfinite(r):
        return np.nan
    return min(1.0, max(-1.0, r))


@njit(cache=True, nogil=True)
def _spearman_from_keys(keys, order, m, cy, syy, scratch):
    """`_spearman_from_ranks` of m values given by their sorted keys (ties: equal keys), with
    `_sorted_ranks`' backward pass and the sums folded into one; ``scratch`` holds m floats."""
    _tie_starts(keys, m, scratch)
    last = m - 1
    r = 0.5 * (scratch[last] + last + 1 - m)
    sxy = r * cy[order[last]]
    sxx = r * r
    for k in range(m - 2, -1, -1):
        last = last if keys[k] == keys[k + 1] else k
        r = 0.5 * (scratch[k] + last + 1 - m)
        sxy += r * cy[order[k]]
        sxx += r * r
    return _finish_corr(sxy, sxx, syy)


@njit(cache=True, nogil=True)
def _spearman_from_ranks(order, ranks, m, cy, syy):
    """Spearman of m values with centered ranks ``ranks`` (in ascending order of value, at the
    positions ``order``) and the other side, whose centered ranks at those positions are ``cy``.

    Every term is a multiple of 1/4 far below 2**53, so the sums are exact in any order: two
    accumulators each, so that the additions do not all wait on one another (the hot path of the
    miner's fitness).
    """
    xy0 = xy1 = xx0 = xx1 = 0.0
    for k in range(0, m - 1, 2):
        r0, r1 = ranks[k], ranks[k + 1]
        xy0 += r0 * cy[order[k]]
        xy1 += r1 * cy[order[k + 1]]
        xx0 += r0 * r0
        xx1 += r1 * r1
    if m % 2:
        r = ranks[m - 1]
        xy0 += r * cy[order[m - 1]]
        xx0 += r * r
    return _finish_corr(xy0 + xy1, xx0 + xx1, syy)


@njit(cache=True, nogil=True)
def _finish_order(keys, order, m, low):
    """Complete an order that is sorted on the key bits from ``low`` up: an insertion sort,
    which costs little when few keys tie on those bits, or `_sort_tied_runs` once it has moved
    more than 8 m keys (keys only move within their tied run, so that stays valid)."""
    budget = 8 * m
    for k in range(1, m):
        key = keys[k]
        if key < keys[k - 1]:
            position = order[k]
            s = k - 1
            while s >= 0 and keys[s] > key:
                keys[s + 1] = keys[s]
                order[s + 1] = order[s]
                s -= 1
            keys[s + 1] = key
            order[s + 1] = position
            budget -= k - 1 - s
            if budget < 0:
                _sort_tied_runs(keys, order, m, low)
                return


@njit(cache=True, nogil=True)
def _pearson(xs, ys, m):
    """Pearson correlation of xs[:m] and ys[:m] (two-pass); NaN when a side is constant."""
    x_const = True
    y_const = True
    for k in range(1, m):
        if xs[k] != xs[0]:
            x_const = False
        if ys[k] != ys[0]:
            y_const = False
    if m < 2 or x_const or y_const:
        return np.nan
    mx = 0.0
    my = 0.0
    for k in range(m):
        mx += xs[k]
        my += ys[k]
    mx /= m
    my /= m
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    for k in range(m):
        dx = xs[k] - mx
        dy = ys[k] - my
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    return _finish_corr(sxy, sxx, syy)


@njit(cache=True, nogil=True)
def _gather_pairs(x_row, y_row, xs, ys):
    """xs[:m], ys[:m] = the pairs of a date where both sides are finite (x as `_gather_value`);
    returns m."""
    m = 0
    for n in range(x_row.shape[0]):
        x = x_row[n]
        y = y_row[n]
        if math.isfinite(x) and math.isfinite(y):
            xs[m] = _gather_value(x)
            ys[m] = y
            m += 1
    return m


@njit(cache=True, nogil=True)
def _ic_core(factor, label, row_mask, min_names):
    n_dates, n_names = factor.shape
    out = np.full(n_dates, np.nan)
    xs = np.empty(n_names)
    ys = np.empty(n_names)
    for t in range(n_dates):
        if not row_mask[t]:
            continue
        m = _gather_pairs(factor[t], label[t], xs, ys)
        if m >= min_names:
            out[t] = _pearson(xs, ys, m)
    return out


def _centered_rank_panel(values: np.ndarray, row_mask: np.ndarray):
    """Per date in ``row_mask``: average ranks over the valid names minus their mean (NaN
    elsewhere), the sum of their squares, the count of valid names, and those names in ascending
    order of value. Sorted like `rank_ic_fast` (32-bit words, finished on the full keys)."""
    n_dates, n_names = values.shape
    position_bits = max(1, n_names.bit_length())
    every_name = np.full(n_dates, n_names, dtype=np.int64)
    # the values stand in for the label too: a name is kept where the values are finite
    words, low, kept, _ = _pack_factor_words(values, values, row_mask, every_name, 1, position_bits)
    words.sort(axis=1)
    return _ranks_from_words(words, low, kept, values, position_bits)


@njit(cache=True, nogil=True)
def _ranks_from_words(words, low, kept, values, position_bits):
    """`_centered_rank_panel` once each row of ``words`` (from `_pack_factor_words`) is sorted."""
    n_dates, n_names = values.shape
    centered = np.full((n_dates, n_names), np.nan)
    sum_sq = np.zeros(n_dates)
    names_by_value = np.zeros((n_dates, n_names), dtype=np.int32)
    keys = np.empty(n_names, dtype=np.uint64)
    order = np.empty(n_names, dtype=np.int64)
    ranks = np.empty(n_names)
    for t in range(n_dates):
        m = kept[t]
        if m == 0:
            continue
        if _ranked_order(words[t], values[t], m, position_bits, low[t], keys, order, ranks):
            _sorted_ranks(keys, m, ranks)
        for k in range(m):
            centered[t, order[k]] = ranks[k]
            names_by_value[t, k] = order[k]
            sum_sq[t] += ranks[k] * ranks[k]
    return centered, sum_sq, kept.copy(), names_by_value


@njit(cache=True, nogil=True)
def _ranked_order(words, values, m, position_bits, low, keys, order, ranks):
    """The m names of a sorted row of words (`_pack_factor_words`) in ascending order of value
    (order[:m]); returns whether many of them tie.

    Words order the names up to ties on the window of their sort keys. Where no two names tie on
    it, that order is final and has no ties; where a few do, each run of them is finished on its
    full keys alone. Either way ranks[:m] then holds their centered average ranks (exact halves).
    Where many names tie, the whole order is finished on the full keys, left in keys[:m] for the
    caller to rank (`_sorted_ranks`, or `_spearman_from_keys` in one pass fewer).
    """
    shift = np.uint32(position_bits)
    position_mask = np.uint32((1 << position_bits) - 1)
    repeated = 0
    order[0] = words[0] & position_mask
    for k in range(1, m):  # no branch: the loop vectorises
        order[k] = words[k] & position_mask
        repeated += (words[k] >> shift) == (words[k - 1] >> shift)
    bits = values.view(np.uint64)
    if repeated * _FEW_TIES_PER_NAME >= m:
        for k in range(m):
            keys[k] = _order_key(bits[order[k]])
        if low > 0:
            _finish_order(keys, order, m, low)
        return True
    half = 0.5 * (1.0 - m)
    for k in range(m):
        ranks[k] = k + half
    i = 0
    while repeated and i < m - 1:
        window = words[i] >> shift
        j = i + 1
        while j < m and (words[j] >> shift) == window:
            j += 1
        if j - i > 1:
            _rank_run(bits, low, i, j, half, keys, order, ranks)
        i = j
    return False


@njit(cache=True, nogil=True)
def _rank_run(bits, low, i, j, half, keys, order, ranks):
    """Finish order[i:j], a run of names tied on their sort keys from bit ``low`` up, on the full
    keys, and give each group of equal values in it their average rank (minus the mean rank,
    ``-half``)."""
    for k in range(i, j):
        keys[k] = _order_key(bits[order[k]])
    if low > 0:
        _sort_run(keys, order, i, j)
    first = i
    for k in range(i + 1, j + 1):
        if k == j or keys[k] != keys[first]:
            average = 0.5 * (first + k - 1) + half  # exact halves
            for tied in range(first, k):
                ranks[tied] = average
            first = k


@njit(cache=True, nogil=True)
def _pack_factor_words(factor, centered, row_mask, counts, min_names, position_bits):
    """Step 1 of `rank_ic_fast`. Per scored date, each name valid on both sides as a uint32
    word (the top window of its sort key | its column), 0xFFFFFFFF elsewhere; the window's
    lowest key bit; and the counts of names kept and of label names the factor misses. Sorting
    a row of words orders its valid names (first) up to ties on the window.

    Both loops over a date's names are free of data-dependent branches, so they vectorise.
    """
    n_dates, n_names = factor.shape
    window_bits = 32 - position_bits
    window_mask = np.uint64((1 << window_bits) - 1)
    nothing = np.uint32(0xFFFFFFFF)
    words = np.full((n_dates, n_names), nothing, dtype=np.uint32)
    low = np.zeros(n_dates, dtype=np.int64)
    kept = np.zeros(n_dates, dtype=np.int64)
    missed = np.zeros(n_dates, dtype=np.int64)
    for t in range(n_dates):
        if not row_mask[t] or counts[t] < min_names:
            continue
        values = factor[t]
        bits = values.view(np.uint64)
        label_valid = centered[t]
        smallest = np.uint64(0xFFFFFFFFFFFFFFFF)
        largest = np.uint64(0)
        m = 0
        for n in range(n_names):
            valid = label_valid[n] == label_valid[n] and math.isfinite(values[n])
            key = _order_key(bits[n])
            smallest = min(smallest, key if valid else np.uint64(0xFFFFFFFFFFFFFFFF))
            largest = max(largest, key if valid else np.uint64(0))
            m += valid
        kept[t] = m
        missed[t] = counts[t] - m
        if m < min_names:
            continue
        low[t] = _window_low_bit(smallest ^ largest, window_bits)  # all keys share the common prefix
        shift = np.uint64(low[t])
        row = words[t]
        for n in range(n_names):
            valid = label_valid[n] == label_valid[n] and math.isfinite(values[n])
            window = (_order_key(bits[n]) >> shift) & window_mask
            word = np.uint32((window << np.uint64(position_bits)) | np.uint64(n))
            row[n] = word if valid else nothing
    return words, low, kept, missed


@njit(cache=True, nogil=True)
def _ranks_over_kept(label_row, names_by_value, count, values, kept_names, scratch, out):
    """out[n] = centered average rank of the label among the names where ``values`` is finite,
    from the ``count`` names of ``names_by_value`` (ascending label order); returns the sum of
    their squares. Exact (halves); ``scratch`` holds 2 x count floats."""
    m = 0
    for i in range(count):  # no branch: a name is written, then kept or overwritten
        n = names_by_value[i]
        kept_names[m] = n
        m += math.isfinite(values[n])
    ascending, ranks = scratch[:m], scratch[count : count + m]
    for i in range(m):
        ascending[i] = label_row[kept_names[i]]
    _sorted_ranks(ascending, m, ranks)
    sum_sq = 0.0
    for i in range(m):
        out[kept_names[i]] = ranks[i]
        sum_sq += ranks[i] * ranks[i]
    return sum_sq


@njit(cache=True, nogil=True)
def _rank_ic_from_words(words, low, kept, missed, factor, prepared_label, position_bits, min_names):
    """Step 2 of `rank_ic_fast`, after each row of ``words`` was sorted: finish the order on
    the full keys where names tie on the window, then correlate with the label's ranks, re-ranked
    over the common names on dates where the factor misses some label names."""
    label, row_mask, centered, sum_sq, counts, names_by_value = prepared_label
    n_dates, n_names = factor.shape
    out = np.full(n_dates, np.nan)
    keys = np.empty(n_names, dtype=np.uint64)
    order = np.empty(n_names, dtype=np.int64)
    ranks = np.empty(n_names)
    kept_names = np.empty(n_names, dtype=np.int64)
    reranked = np.empty(n_names)
    scratch = np.empty(2 * n_names)
    for t in range(n_dates):
        m = kept[t]
        if not row_mask[t] or counts[t] < min_names or m < min_names:
            continue
        many_ties = _ranked_order(words[t], factor[t], m, position_bits, low[t], keys, order, ranks)
        cy, syy = centered[t], sum_sq[t]
        if missed[t] > 0:
            syy = _ranks_over_kept(
                label[t], names_by_value[t], counts[t], factor[t], kept_names, scratch, reranked
            )
            cy = reranked
        if many_ties:
            out[t] = _spearman_from_keys(keys, order, m, cy, syy, ranks)
        else:
            out[t] = _spearman_from_ranks(order, ranks, m, cy, syy)
    return out


@njit(cache=True, nogil=True)
def _rank_autocorr_core(centered, counts, row_mask, lag):
    """Pearson of the 1-based average ranks at t and t-lag over names ranked on both dates."""
    n_dates, n_names = centered.shape
    out = np.full(n_dates, np.nan)
    xs = np.empty(n_names)
    ys = np.empty(n_names)
    for t in range(lag, n_dates):
        if not (row_mask[t] and row_mask[t - lag]):
            continue
        mid_now = 0.5 * (counts[t] + 1)
        mid_before = 0.5 * (counts[t - lag] + 1)
        m = 0
        for n in range(n_names):
            now = centered[t, n]
            before = centered[t - lag, n]
            if now == now and before == before:
                xs[m] = now + mid_now
                ys[m] = before + mid_before
                m += 1
        out[t] = _pearson(xs, ys, m)
    return out


# ------------------------------------------------------------------ numba kernels: quantiles


@njit(cache=True, nogil=True)
def _quantile_codes(values, m, probs, ws, codes):
    """pandas.qcut(values[:m], probs, labels=False) + 1 into codes[:m]; False if edges repeat.

    Edges are numpy's 'linear' quantiles of the values (same interpolation arithmetic);
    a value's code is the number of edges strictly below it (at least 1).
    """
    n_edges = probs.shape[0]
    keys, order = _sorted_order(values, m, ws)
    edges = np.empty(n_edges)
    last = m - 1
    for e in range(n_edges):
        virtual = last * probs[e]
        if virtual >= last:
            edges[e] = values[order[last]]
            continue
        below = math.floor(virtual)
        gamma = virtual - below
        a = values[order[int(below)]]
        b = values[order[int(below) + 1]]
        diff = b - a
        if gamma >= 0.5:
            edges[e] = b - diff * (1.0 - gamma)
        else:
            edges[e] = a + diff * gamma
    if n_edges > 2:
        for e in range(n_edges):
            for f in range(e + 1, n_edges):
                if edges[e] == edges[f]:
                    return False
    below_count = 0
    for k in range(m):
        v = values[order[k]]
        while below_count < n_edges and edges[below_count] < v:
            below_count += 1
        codes[order[k]] = max(below_count, 1)
    return True


@njit(cache=True, nogil=True)
def _quantile_returns_core(factor, label, row_mask, probs):
    n_dates, n_names = factor.shape
    n_q = probs.shape[0] - 1
    out = np.full((n_dates, n_q), np.nan)
    xs = np.empty(n_names)
    ys = np.empty(n_names)
    codes = np.empty(n_names, dtype=np.int64)
    sums = np.empty(n_q)
    counts = np.empty(n_q, dtype=np.int64)
    ws = _workspace(n_names)
    for t in range(n_dates):
        if not row_mask[t]:
            continue
        m = _gather_pairs(factor[t], label[t], xs, ys)
        if m == 0 or not _quantile_codes(xs, m, probs, ws, codes):
            continue
        sums[:] = 0.0
        counts[:] = 0
        for k in range(m):
            q = codes[k] - 1
            sums[q] += ys[k]
            counts[q] += 1
        for q in range(n_q):
            if counts[q] > 0:
                out[t, q] = sums[q] / counts[q]
    return out


@njit(cache=True, nogil=True)
def _quantile_row_codes(row, probs, xs, pos, qcodes, ws, codes_out):
    """codes_out[n] = quantile (1..Q) of row[n] among the valid names, else 0.

    False (and no codes) when the row has no valid name or the bin edges repeat.
    """
    m = 0
    for n in range(row.shape[0]):
        codes_out[n] = 0
        x = row[n]
        if math.isfinite(x):
            xs[m] = _gather_value(x)
            pos[m] = n
            m += 1
    if m == 0 or not _quantile_codes(xs, m, probs, ws, qcodes):
        return False
    for k in range(m):
        codes_out[pos[k]] = qcodes[k]
    return True


@njit(cache=True, nogil=True)
def _quantile_turnover_core(factor, row_mask, probs):
    """(T, 2): share of the bottom (column 0) / top (column 1) quantile new since the last row."""
    n_dates, n_names = factor.shape
    top = probs.shape[0] - 1
    out = np.full((n_dates, 2), np.nan)
    xs = np.empty(n_names)
    pos = np.empty(n_names, dtype=np.int64)
    qcodes = np.empty(n_names, dtype=np.int64)
    now = np.zeros(n_names, dtype=np.int64)
    before = np.zeros(n_names, dtype=np.int64)
    ws = _workspace(n_names)
    before_ok = False
    for t in range(n_dates):
        if not row_mask[t]:
            before_ok = False
            continue
        now_ok = _quantile_row_codes(factor[t], probs, xs, pos, qcodes, ws, now)
        if now_ok and before_ok:
            for col in range(2):
                target = 1 if col == 0 else top
                size_now = 0
                size_before = 0
                new = 0
                for n in range(n_names):
                    if before[n] == target:
                        size_before += 1
                    if now[n] == target:
                        size_now += 1
                        if before[n] != target:
                            new += 1
                if size_now > 0 and size_before > 0:
                    out[t, col] = new / size_now
        now, before = before, now
        before_ok = now_ok
    return out


# ------------------------------------------------------------------ numba kernels: coverage


@njit(cache=True, nogil=True)
def _coverage_core(factor, universe, row_mask, use_universe):
    """(factor valid and in universe, in universe) cell counts over the selected dates."""
    n_dates, n_names = factor.shape
    covered = 0
    total = 0
    for t in range(n_dates):
        if not row_mask[t]:
            continue
        for n in range(n_names):  # no branch: the loop vectorises
            member = universe[t, n] if use_universe else True
            total += member
            covered += member and math.isfinite(factor[t, n])
    return covered, total


# --------------------------------------------------------------------------- public API


def ic(factor: np.ndarray, label: np.ndarray, min_names: int = 10, rows: Rows = None) -> np.ndarray:
    """(T,) Pearson correlation of factor and label per date over the names valid in both.

    NaN on dates with fewer than ``min_names`` pairs, or where either side is constant.
    """
    factor, label = _panel(factor, "factor"), _panel(label, "label")
    _same_shape(factor, label, "factor and label")
    mask = _row_mask(rows, factor.shape[0])
    return _ic_core(factor, label, mask, _check_min_names(min_names))


def rank_ic(factor: np.ndarray, label: np.ndarray, min_names: int = 10, rows: Rows = None) -> np.ndarray:
    """(T,) Spearman correlation (average ranks for ties) per date over names valid in both.

    NaN on dates with fewer than ``min_names`` pairs, or where either side is constant.
    """
    factor, label = _panel(factor, "factor"), _panel(label, "label")
    _same_shape(factor, label, "factor and label")
    return rank_ic_fast(factor, prepare_label(label, rows), min_names)


@dataclass(frozen=True, eq=False)
class LabelRanks:
    """A label ranked once per date, reused to score many factors against it (`rank_ic_fast`)."""

    label: np.ndarray  # (T, N) the label, re-ranked over the common names where a factor misses some
    row_mask: np.ndarray  # (T,) dates to score
    centered: np.ndarray  # (T, N) average rank minus the date's mean rank; NaN where invalid
    sum_sq: np.ndarray  # (T,) sum of centered**2 per date
    counts: np.ndarray  # (T,) valid label names per date
    names_by_value: np.ndarray  # (T, N) int32: per date, the valid names in ascending label order


def prepare_label(label: np.ndarray, rows: Rows = None) -> LabelRanks:
    """Rank the label once for `rank_ic_fast` (only the dates in ``rows``)."""
    label = _panel(label, "label")
    mask = _row_mask(rows, label.shape[0])
    centered, sum_sq, counts, names_by_value = _centered_rank_panel(label, mask)
    return LabelRanks(label, mask, centered, sum_sq, counts, names_by_value)


def rank_ic_fast(factor: np.ndarray, prepared: LabelRanks, min_names: int = 10) -> np.ndarray:
    """`rank_ic(factor, label, min_names, rows)` for a prepared label: bit-identical, faster.

    Each date's factor values are ordered by numpy's sort of 32-bit words (a window of the
    value's sort key and its column), finished on the full keys where the window ties. Dates
    where the factor is valid on every valid label name reuse the label's ranks; elsewhere the
    label is re-ranked over the common names by walking its stored order (no second sort).
    """
    factor = _panel(factor, "factor")
    _same_shape(factor, prepared.label, "factor and prepared label")
    min_names = _check_min_names(min_names)
    position_bits = max(1, factor.shape[1].bit_length())
    words, low, kept, missed = _pack_factor_words(
        factor, prepared.centered, prepared.row_mask, prepared.counts, min_names, position_bits
    )
    words.sort(axis=1)  # numpy's SIMD sort of 32-bit words: several times faster than 64-bit keys
    label_ranks = (
        prepared.label, prepared.row_mask, prepared.centered, prepared.sum_sq, prepared.counts,
        prepared.names_by_value,
    )  # fmt: skip
    return _rank_ic_from_words(words, low, kept, missed, factor, label_ranks, position_bits, min_names)


def ic_stats(series: np.ndarray, annualize: float | None = None, rows: Rows = None) -> dict:
    """Summary of a per-date IC series over its finite values.

    Keys: mean, std (ddof=1; 0 for a constant series), icir (mean / std, NaN when std is 0),
    t_stat (icir * sqrt(n)), hit_rate (share of values > 0), n; plus icir_annualized
    (icir * sqrt(annualize)) when ``annualize`` (periods per year) is given. Undefined
    entries are NaN.
    """
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"series must be 1-D, got shape {series.shape}")
    values = series[_row_mask(rows, series.shape[0])]
    values = values[np.isfinite(values)]
    n = int(values.size)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        std = math.nan
    elif (values == values[0]).all():
        std = 0.0  # exactly: numpy's two-pass std of a constant can be a rounding residue
    else:
        std = float(values.std(ddof=1))
    icir = mean / std if std > 0.0 else math.nan
    stats = {
        "mean": mean,
        "std": std,
        "icir": icir,
        "t_stat": icir * math.sqrt(n),
        "hit_rate": float((values > 0.0).sum() / n) if n else math.nan,
        "n": n,
    }
    if annualize is not None:
        stats["icir_annualized"] = icir * math.sqrt(annualize)
    return stats


def rank_autocorrelation(factor: np.ndarray, lag: int = 1, rows: Rows = None) -> np.ndarray:
    """(T,) rank autocorrelation of the factor, as alphalens ``factor_rank_autocorrelation``.

    Per date, the factor's ranks at t and t-lag (each ranked among the names valid on its own
    date, average ties) are correlated (Pearson) over the names valid on both dates. ``lag``
    counts rows; NaN with fewer than 2 common names or when either rank vector is constant.
    """
    factor = _panel(factor, "factor")
    if int(lag) != lag or lag < 1:
        raise ValueError(f"lag must be an integer >= 1, got {lag!r}")
    mask = _row_mask(rows, factor.shape[0])
    centered, _, counts, _ = _centered_rank_panel(factor, mask)
    return _rank_autocorr_core(centered, counts, mask, int(lag))


def factor_turnover(factor: np.ndarray, lag: int = 1, rows: Rows = None) -> float:
    """1 - mean rank autocorrelation (0: the ranking never changes; ~1: a new one every date)."""
    return 1.0 - _nanmean(rank_autocorrelation(factor, lag, rows))


def quantile_turnover(
    factor: np.ndarray,
    quantiles: int = 5,
    which: Literal["top", "bottom"] = "top",
    rows: Rows = None,
) -> np.ndarray:
    """(T,) share of the names in the top (bottom) quantile at t that were not in it at t-1.

    Quantiles as in `quantile_returns`, over the names with a valid factor. NaN on the first
    date, and where the quantile is empty on t or t-1 (alphalens ``quantile_turnover`` instead
    compares with the last earlier date that had names in the quantile).
    """
    if which not in ("top", "bottom"):
        raise ValueError(f"which must be 'top' or 'bottom', got {which!r}")
    factor = _panel(factor, "factor")
    probs = _pandas_qcut_probabilities(quantiles)
    both = _quantile_turnover_core(factor, _row_mask(rows, factor.shape[0]), probs)
    return both[:, 1 if which == "top" else 0].copy()


def ic_decay(
    factor: np.ndarray,
    labels: Mapping[int, np.ndarray],
    min_names: int = 10,
    rows: Rows = None,
) -> dict[int, float]:
    """{horizon: mean rank IC of the factor against that horizon's label}."""
    return {int(h): _nanmean(rank_ic(factor, label, min_names, rows)) for h, label in sorted(labels.items())}


def half_life(decay: Mapping[int, float]) -> float:
    """Horizon at which |mean rank IC| first falls to half its value at the shortest horizon.

    Between the two horizons that bracket the halving, log|IC| is interpolated linearly in the
    horizon (exponential decay); if the later |IC| is exactly 0, |IC| itself is. Horizons with
    a NaN IC after the first are skipped. NaN when the shortest horizon's IC is NaN or 0, or
    when |IC| never falls to half within the horizons given.
    """
    if not decay:
        return math.nan
    points = sorted((int(h), abs(float(v))) for h, v in decay.items())
    first_value = points[0][1]
    if not (math.isfinite(first_value) and first_value > 0.0):
        return math.nan
    target = 0.5 * first_value
    points = [(h, v) for h, v in points if math.isfinite(v)]
    for (h_a, v_a), (h_b, v_b) in zip(points, points[1:]):
        if v_b <= target:
            if v_b > 0.0:
                frac = (math.log(v_a) - math.log(target)) / (math.log(v_a) - math.log(v_b))
            else:
                frac = (v_a - target) / v_a
            return h_a + frac * (h_b - h_a)
    return math.nan


def coverage(factor: np.ndarray, universe: np.ndarray | None = None, rows: Rows = None) -> float:
    """Share of universe cells where the factor is valid.

    ``universe`` is a boolean (T, N) mask or a (T, N) panel (e.g. price or label) whose valid
    cells form the universe; None means every cell. NaN when the universe is empty.
    """
    factor = _panel(factor, "factor")
    mask = _row_mask(rows, factor.shape[0])
    if universe is None:
        members = np.ones((1, 1), dtype=np.bool_)
    else:
        members = np.asarray(universe)
        _same_shape(factor, members, "factor and universe")
        if members.dtype != np.bool_:
            members = np.isfinite(_panel(members, "universe"))
    covered, total = _coverage_core(factor, members, mask, universe is not None)
    return covered / total if total else math.nan


def quantile_returns(
    factor: np.ndarray, label: np.ndarray, quantiles: int = 5, rows: Rows = None
) -> np.ndarray:
    """(T, Q) mean label per factor quantile (column q-1 holds quantile q, Q = top).

    Per date, the names valid in both are bucketed like alphalens ``quantize_factor``
    (``pandas.qcut(factor, Q, labels=False) + 1``). Dates where qcut would fail (repeated bin
    edges, e.g. heavy ties) are NaN, as alphalens drops them; an empty bucket is NaN.
    Returns are raw, not demeaned (alphalens ``demeaned=False``).
    """
    factor, label = _panel(factor, "factor"), _panel(label, "label")
    _same_shape(factor, label, "factor and label")
    probs = _pandas_qcut_probabilities(quantiles)
    return _quantile_returns_core(factor, label, _row_mask(rows, factor.shape[0]), probs)


def long_short(qret: np.ndarray, rows: Rows = None) -> np.ndarray:
    """(T,) top minus bottom quantile return."""
    qret = np.asarray(qret, dtype=np.float64)
    out = np.full(qret.shape[0], np.nan)
    mask = _row_mask(rows, qret.shape[0])
    out[mask] = qret[mask, -1] - qret[mask, 0]
    return out


def monotonicity(qret: np.ndarray, rows: Rows = None) -> float:
    """Spearman correlation between the quantile number and the quantile's mean return over dates.

    +1: returns rise with every quantile; NaN when a quantile never has a return.
    """
    qret = np.asarray(qret, dtype=np.float64)
    selected = qret[_row_mask(rows, qret.shape[0])]
    means = np.array([_nanmean(selected[:, q]) for q in range(qret.shape[1])])
    if means.size < 2 or not np.isfinite(means).all():
        return math.nan
    numbers = np.arange(1.0, means.size + 1.0)
    return float(rank_ic(means[None, :], numbers[None, :], min_names=2)[0])


def factor_correlation(a: np.ndarray, b: np.ndarray, min_names: int = 10, rows: Rows = None) -> float:
    """Mean over dates of the cross-sectional Spearman correlation of two factors."""
    return _nanmean(rank_ic(a, b, min_names, rows))


def factor_summary(
    factor: np.ndarray,
    price: np.ndarray,
    horizons: Sequence[int] = (1, 5, 10, 20),
    delay: int = 1,
    quantiles: int = 5,
    min_names: int = 10,
    rows: Rows = None,
    tradable: np.ndarray | None = None,
) -> dict:
    """The standard report of one factor against forward returns of ``price``.

    Labels are computed on the whole price panel (NaN where the entry bar is not tradable, given
    ``tradable``: `evaluation.labels.forward_returns`); ``rows`` then selects the scored dates
    (to keep labels inside a segment, end ``rows`` delay + max(horizons) dates earlier).
    Per horizon h: ``ic_mean_h{h}``, ``ic_icir_h{h}``, ``rank_ic_mean_h{h}``, ``rank_ic_std_h{h}``,
    ``rank_icir_h{h}``, ``rank_ic_t_stat_h{h}``, ``rank_ic_hit_rate_h{h}``, ``n_dates_h{h}``;
    the first horizon's values also without the suffix. Then ``rank_autocorr`` (lag 1),
    ``turnover`` (1 - rank_autocorr), ``top_turnover`` / ``bottom_turnover`` (quantile
    turnover means), ``coverage`` (of the valid price cells), ``half_life``, and, on the first
    horizon's label, ``long_short_mean`` and ``monotonicity``. All floats, except ``decay``:
    {h: mean rank IC}.
    """
    factor, price = _panel(factor, "factor"), _panel(price, "price")
    _same_shape(factor, price, "factor and price")
    horizons = [int(h) for h in horizons]
    if not horizons:
        raise ValueError("horizons must name at least one horizon")
    mask = _row_mask(rows, factor.shape[0])
    labels = forward_returns_multi(price, horizons, delay, tradable)
    # Spearman is symmetric: rank the factor once and score each horizon's label against it
    factor_ranks = prepare_label(factor, mask)
    summary: dict = {}
    decay: dict[int, float] = {}
    for h in horizons:
        pearson = ic_stats(ic(factor, labels[h], min_names, mask))
        spearman = ic_stats(rank_ic_fast(labels[h], factor_ranks, min_names))
        per_horizon = {
            "ic_mean": pearson["mean"],
            "ic_icir": pearson["icir"],
            "rank_ic_mean": spearman["mean"],
            "rank_ic_std": spearman["std"],
            "rank_icir": spearman["icir"],
            "rank_ic_t_stat": spearman["t_stat"],
            "rank_ic_hit_rate": spearman["hit_rate"],
            "n_dates": float(spearman["n"]),
        }
        if h == horizons[0]:
            summary.update(per_horizon)
        summary.update({f"{key}_h{h}": value for key, value in per_horizon.items()})
        decay[h] = spearman["mean"]
    autocorr = _nanmean(_rank_autocorr_core(factor_ranks.centered, factor_ranks.counts, mask, 1))
    turnovers = _quantile_turnover_core(factor, mask, _pandas_qcut_probabilities(quantiles))
    qret = quantile_returns(factor, labels[horizons[0]], quantiles, mask)
    summary.update(
        {
            "rank_autocorr": autocorr,
            "turnover": 1.0 - autocorr,
            "top_turnover": _nanmean(turnovers[:, 1]),
            "bottom_turnover": _nanmean(turnovers[:, 0]),
            "coverage": coverage(factor, price, mask),
            "half_life": half_life(decay),
            "long_short_mean": _nanmean(long_short(qret)),
            "monotonicity": monotonicity(qret),
            "decay": decay,
        }
    )
    return summary

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

Ranks, Spearman sums and quantile codes come from the kernels of `evaluation.ranking`: the rank
of a value is exact (average ranks of exact ties). `rank_ic` is `rank_ic_fast` against a label
prepared for the call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit

from evaluation.labels import DEFAULT_HORIZONS, forward_returns_multi
from evaluation.ranking import (
    centered_rank_panel,
    clipped_correlation,
    quantile_codes,
    rank_ic_by_date,
    sort_workspace,
    without_negative_zero,
)

Rows = slice | np.ndarray | None


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


# ------------------------------------------------------------------ numba kernels: correlation


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
    return clipped_correlation(sxy, sxx, syy)


@njit(cache=True, nogil=True)
def _gather_pairs(x_row, y_row, xs, ys):
    """xs[:m], ys[:m] = the pairs of a date where both sides are finite (-0.0 in x stored as 0.0);
    returns m."""
    m = 0
    for n in range(x_row.shape[0]):
        x = x_row[n]
        y = y_row[n]
        if math.isfinite(x) and math.isfinite(y):
            xs[m] = without_negative_zero(x)
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
def _quantile_returns_core(factor, label, row_mask, probs):
    n_dates, n_names = factor.shape
    n_q = probs.shape[0] - 1
    out = np.full((n_dates, n_q), np.nan)
    xs = np.empty(n_names)
    ys = np.empty(n_names)
    codes = np.empty(n_names, dtype=np.int64)
    sums = np.empty(n_q)
    counts = np.empty(n_q, dtype=np.int64)
    ws = sort_workspace(n_names)
    for t in range(n_dates):
        if not row_mask[t]:
            continue
        m = _gather_pairs(factor[t], label[t], xs, ys)
        if m == 0 or not quantile_codes(xs, m, probs, ws, codes):
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
            xs[m] = without_negative_zero(x)
            pos[m] = n
            m += 1
    if m == 0 or not quantile_codes(xs, m, probs, ws, qcodes):
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
    ws = sort_workspace(n_names)
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
    centered, sum_sq, counts, names_by_value = centered_rank_panel(label, mask)
    return LabelRanks(label, mask, centered, sum_sq, counts, names_by_value)


def rank_ic_fast(factor: np.ndarray, prepared: LabelRanks, min_names: int = 10) -> np.ndarray:
    """`rank_ic(factor, label, min_names, rows)` for a prepared label: bit-identical, faster
    (the label is not ranked again; `ranking.rank_ic_by_date` says how the factor is)."""
    factor = _panel(factor, "factor")
    _same_shape(factor, prepared.label, "factor and prepared label")
    label_ranks = (
        prepared.label, prepared.row_mask, prepared.centered, prepared.sum_sq, prepared.counts,
        prepared.names_by_value,
    )  # fmt: skip
    return rank_ic_by_date(factor, label_ranks, _check_min_names(min_names))


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
    centered, _, counts, _ = centered_rank_panel(factor, mask)
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
    horizons: Sequence[int] = DEFAULT_HORIZONS,
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

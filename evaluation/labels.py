"""Forward-return labels (DESIGN rule 2): label[t] = price[t+d+h] / price[t+d] - 1.

With a ``tradable`` panel (0/1, NaN = no bar), the label is NaN wherever its entry bar, row
t + d, is not tradable (anything but 1): a label cannot enter a stock that is suspended or locked
at its price limit. The exit bar is not checked. The mining loop, `miner eval` and the factor
library's monitor all build their labels here.

`process_label` turns a forward return into the mining label: optionally neutralized against
groups (e.g. industries), then a per-date cross-sectional transform (rank or winsorized z-score).
Each date is transformed on its own, over its finite values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import numpy as np
from numba import njit

from evaluation.ranking import centered_rank_panel
from operators.cross_section import group_neutralize

LabelTransform = Literal["raw", "rank", "zscore"]

DEFAULT_HORIZONS = (1, 5, 10, 20)
"""Forward-return horizons (rows) that IC decay and factor summaries are measured on by default."""


def _validate(horizon: int, delay: int) -> None:
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    if int(delay) != delay or delay < 0:
        raise ValueError(f"delay must be an integer >= 0, got {delay!r}")


def forward_returns(
    price: np.ndarray, horizon: int = 1, delay: int = 1, tradable: np.ndarray | None = None
) -> np.ndarray:
    """(T, N) forward return price[t+delay+horizon] / price[t+delay] - 1.

    NaN where either end is missing, non-finite or non-positive, and, given a (T, N)
    `tradable` panel, where tradable[t+delay] != 1; the last delay+horizon rows are NaN
    (their second end lies beyond the panel).
    """
    _validate(horizon, delay)
    price = np.asarray(price, dtype=np.float64)
    if price.ndim != 2:
        raise ValueError(f"price must be a 2-D (T, N) array, got shape {price.shape}")
    if tradable is not None and np.shape(tradable) != price.shape:
        raise ValueError(f"tradable has shape {np.shape(tradable)}, price {price.shape}")
    horizon, delay = int(horizon), int(delay)
    out = np.full(price.shape, np.nan)
    n_labelled = price.shape[0] - delay - horizon
    if n_labelled <= 0:
        return out
    start = price[delay : delay + n_labelled]
    end = price[delay + horizon :]
    ok = np.isfinite(start) & np.isfinite(end) & (start > 0.0) & (end > 0.0)
    if tradable is not None:
        ok &= np.asarray(tradable)[delay : delay + n_labelled] == 1.0
    ratio = np.divide(end, start, out=np.full(start.shape, np.nan), where=ok)
    out[:n_labelled] = ratio - 1.0
    return out


def forward_returns_multi(
    price: np.ndarray,
    horizons: Iterable[int] = DEFAULT_HORIZONS,
    delay: int = 1,
    tradable: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """Forward returns for several horizons: {horizon: (T, N) label}."""
    return {int(h): forward_returns(price, h, delay, tradable) for h in horizons}


# ------------------------------------------------------------------ cross-sectional processing


def _centered_ranks(values: np.ndarray) -> np.ndarray:
    """Per date: (rank - 0.5) / n - 0.5 (1-based average ranks over the n finite values, in (-0.5, 0.5))."""
    centered, _, counts, _ = centered_rank_panel(values, np.ones(values.shape[0], dtype=np.bool_))
    out = centered / np.maximum(counts, 1)[:, None]  # rank - (n + 1) / 2, over n
    out[counts < 2] = np.nan
    return out


@njit(cache=True, nogil=True)
def _standardized(xs, m):
    """xs[:m] -> (x - mean) / std (ddof 0) in place; False (xs untouched) when the std is 0."""
    mean = 0.0
    for k in range(m):
        mean += xs[k]
    mean /= m
    square = 0.0
    for k in range(m):
        square += (xs[k] - mean) ** 2
    std = math.sqrt(square / m)
    if not (std > 0.0 and math.isfinite(std)):
        return False
    for k in range(m):
        xs[k] = (xs[k] - mean) / std
    return True


@njit(cache=True, nogil=True)
def _winsorized_zscores(values, winsor):
    """Per date over the finite values: z-score, clip to +-winsor, z-score again; NaN elsewhere and
    on dates with fewer than 2 finite values or no spread."""
    n_dates, n_names = values.shape
    out = np.full((n_dates, n_names), np.nan)
    xs = np.empty(n_names)
    names = np.empty(n_names, dtype=np.int64)
    for t in range(n_dates):
        m = 0
        for n in range(n_names):
            if math.isfinite(values[t, n]):
                xs[m] = values[t, n]
                names[m] = n
                m += 1
        if m < 2 or not _standardized(xs, m):
            continue
        for k in range(m):
            xs[k] = min(winsor, max(-winsor, xs[k]))
        if not _standardized(xs, m):
            continue
        for k in range(m):
            out[t, names[k]] = xs[k]
    return out


def _panel(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (T, N) array, got shape {arr.shape}")
    return arr


def cross_sectional_transform(
    values: np.ndarray, transform: LabelTransform, winsor: float = 3.0
) -> np.ndarray:
    """Per date over its finite values: raw (a copy), rank or zscore.

    rank: (rank - 0.5) / n - 0.5 with 1-based average-tie ranks, in (-0.5, 0.5); zscore:
    (x - mean) / std (ddof=0) clipped to +-winsor, then re-centred and re-scaled once. For rank
    and zscore, non-finite cells and dates with fewer than 2 finite values (or no spread) are NaN.
    """
    values = _panel(values, "values")
    if transform == "raw":
        return values.copy()
    if transform == "rank":
        return _centered_ranks(values)
    if transform == "zscore":
        if not winsor > 0.0:
            raise ValueError(f"winsor must be > 0, got {winsor!r}")
        return _winsorized_zscores(values, float(winsor))
    raise ValueError(f"unknown label transform {transform!r} (expected raw, rank or zscore)")


def neutralize(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Subtract, per date, each group's mean of its finite values; NaN where the group code is NaN."""
    values = _panel(values, "values")
    groups = _panel(groups, "groups")
    if groups.shape != values.shape:
        raise ValueError(f"groups has shape {groups.shape}, values {values.shape}")
    return group_neutralize(np.where(np.isfinite(values), values, np.nan), groups)


def process_label(
    label: np.ndarray, transform: LabelTransform, groups: np.ndarray | None = None
) -> np.ndarray:
    """The mining label: neutralized against groups first (when given), then transformed."""
    neutral = label if groups is None else neutralize(label, groups)
    return cross_sectional_transform(neutral, transform)

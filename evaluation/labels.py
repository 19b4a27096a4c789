"""Forward-return labels (DESIGN rule 2): label[t] = price[t+d+h] / price[t+d] - 1."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_HORIZONS = (1, 5, 10, 20)
"""Forward-return horizons (rows) that IC decay and factor summaries are measured on by default."""


def _validate(horizon: int, delay: int) -> None:
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    if int(delay) != delay or delay < 0:
        raise ValueError(f"delay must be an integer >= 0, got {delay!r}")


def forward_returns(price: np.ndarray, horizon: int = 1, delay: int = 1) -> np.ndarray:
    """(T, N) forward return price[t+delay+horizon] / price[t+delay] - 1.

    NaN where either end is missing, non-finite or non-positive; the last delay+horizon
    rows are NaN (their second end lies beyond the panel).
    """
    _validate(horizon, delay)
    price = np.asarray(price, dtype=np.float64)
    if price.ndim != 2:
        raise ValueError(f"price must be a 2-D (T, N) array, got shape {price.shape}")
    horizon, delay = int(horizon), int(delay)
    out = np.full(price.shape, np.nan)
    n_labelled = price.shape[0] - delay - horizon
    if n_labelled <= 0:
        return out
    start = price[delay : delay + n_labelled]
    end = price[delay + horizon :]
    ok = np.isfinite(start) & np.isfinite(end) & (start > 0.0) & (end > 0.0)
    ratio = np.divide(end, start, out=np.full(start.shape, np.nan), where=ok)
    out[:n_labelled] = ratio - 1.0
    return out


def forward_returns_multi(
    price: np.ndarray, horizons: Iterable[int] = DEFAULT_HORIZONS, delay: int = 1
) -> dict[int, np.ndarray]:
    """Forward returns for several horizons: {horizon: (T, N) label}."""
    return {int(h): forward_returns(price, h, delay) for h in horizons}

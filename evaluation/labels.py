"""Forward-return labels (DESIGN rule 2): label[t] = price[t+d+h] / price[t+d] - 1.

With a ``tradable`` panel (0/1, NaN = no bar), the label is NaN wherever its entry bar, row
t + d, is not tradable (anything but 1): a label cannot enter a stock that is suspended or locked
at its price limit. The exit bar is not checked. The mining loop, `miner eval` and the factor
library's monitor all build their labels here.
"""

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

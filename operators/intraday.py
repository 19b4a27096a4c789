"""Derived intraday fields from minute bars: minute returns and the buy / sell volume split.

Every function takes float64 `(T, N, M)` minute arrays (M slots per day on a regular grid,
NaN = no bar), never modifies them, and returns new arrays of the same shape. A day's
values depend on that day's bars only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _minute_returns(close: np.ndarray, out: np.ndarray) -> None:
    days, names, slots = close.shape
    for t in range(days):
        for i in range(names):
            previous = np.nan
            for m in range(slots):
                price = close[t, i, m]
                if np.isnan(price):
                    out[t, i, m] = np.nan
                    continue
                if previous > 0.0:
                    out[t, i, m] = price / previous - 1.0
                else:
                    out[t, i, m] = np.nan
                previous = price


def minute_returns(close: np.ndarray) -> np.ndarray:
    """Return of each bar against the previous bar of the same day: close / previous close - 1.

    The previous close is that of the latest earlier bar of the same day (a missing minute
    had no trade, so the next bar's return spans the gap). The first bar of each day, missing
    bars and bars whose previous close is not positive are NaN; nothing crosses a day.
    """
    out = np.empty(close.shape)
    _minute_returns(np.asarray(close, dtype=np.float64), out)
    return out


@njit(cache=True, nogil=True)
def _buy_share(open_: float, high: float, low: float, close: float) -> float:
    spread = high - low
    if spread > 0.0:
        return min(max((close - low) / spread, 0.0), 1.0)
    if close > open_:
        return 1.0
    if close < open_:
        return 0.0
    return 0.5


@njit(cache=True, nogil=True)
def _buy_sell_volume(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    buy: np.ndarray,
    sell: np.ndarray,
) -> None:
    days, names, slots = volume.shape
    for t in range(days):
        for i in range(names):
            for m in range(slots):
                o = open_[t, i, m]
                h = high[t, i, m]
                lo = low[t, i, m]
                c = close[t, i, m]
                v = volume[t, i, m]
                if np.isnan(o) or np.isnan(h) or np.isnan(lo) or np.isnan(c) or np.isnan(v):
                    buy[t, i, m] = np.nan
                    sell[t, i, m] = np.nan
                    continue
                bought = v * _buy_share(o, h, lo, c)
                buy[t, i, m] = bought
                sell[t, i, m] = v - bought


def buy_sell_volume(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Split each bar's volume into (buy, sell) by where the close sits in the bar's range.

    Rule, per bar:
    * high > low: buy share = (close - low) / (high - low), clipped to [0, 1] (a close
      outside the range, i.e. inconsistent data, counts as all buy or all sell);
    * otherwise (no range): close > open -> all buy, close < open -> all sell, else half/half.
    buy = volume * share, sell = volume - buy (so buy + sell == volume up to rounding).
    Both are NaN where any of the five inputs is NaN. `workers` threads share the days (the
    values do not depend on it).
    """
    o, h, lo, c, v = (np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, volume))
    shape = v.shape
    if any(a.shape != shape for a in (o, h, lo, c)):
        raise ValueError(f"buy_sell_volume needs equal shapes, got {[a.shape for a in (o, h, lo, c, v)]}")
    buy = np.empty(shape)
    sell = np.empty(shape)
    bounds = np.linspace(0, shape[0], max(1, min(workers, shape[0])) + 1).astype(int)
    days = [slice(first, stop) for first, stop in zip(bounds[:-1], bounds[1:])]

    def split(rows: slice) -> None:
        _buy_sell_volume(o[rows], h[rows], lo[rows], c[rows], v[rows], buy[rows], sell[rows])

    if len(days) == 1:
        split(days[0])
    else:
        with ThreadPoolExecutor(len(days)) as pool:
            list(pool.map(split, days))
    return buy, sell

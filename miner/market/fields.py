"""Field names, and the fields derived from the bars.

Derived fields (added when the input does not carry a column of that name):

* ``returns = close / delay(close, 1) - 1``: NaN on the first row and wherever either close is
  missing or the previous close is 0.
* ``vwap``: ``amount / volume`` when ``amount`` exists (NaN where volume is 0 or missing), else
  ``(high + low + close) / 3`` when high and low exist, else a copy of ``close``.
* with trading rules, ``tradable`` and the A-share ``limit_up`` / ``limit_down``
  (`miner.market.rules`).

Derived intraday fields, computed once where the minute cubes are assembled (`from_frame`,
`load_market`, the synthetic market) and stored next to open/high/low/close/volume in
``MarketData.intraday`` (read-only, part of the fingerprint like every cube):

* ``minute_returns`` (when the bars have ``close``): ``close / previous close - 1``, the previous
  close being that of the latest earlier bar of the same day (a missing minute had no trade, so
  the next bar's return spans the gap). NaN on the first bar of each day, on missing bars and
  where the previous close is not positive; nothing crosses a day.
* ``buy_volume`` and ``sell_volume`` (when the bars have all of open, high, low, close, volume):
  each bar's volume split by where its close sits in its own high-low range. With
  ``share = (close - low) / (high - low)`` clipped to [0, 1] when ``high > low``, else 1 if
  ``close > open``, 0 if ``close < open`` and 0.5 if they are equal (a bar without range):
  ``buy_volume = volume * share`` and ``sell_volume = volume - buy_volume``. Both are NaN where
  any of the five inputs is NaN. A bar closing at its high counts as all buying, at its low as
  all selling, mid-range as half and half.

No derived value is ever inf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from operators.intraday import buy_sell_volume, minute_returns

PRICE_FIELDS = ("open", "high", "low", "close", "vwap")
QUANTITY_FIELDS = ("volume", "amount")
MINUTE_FIELDS = ("open", "high", "low", "close", "volume")
DEFAULT_GROUPS = ("sector", "industry", "subindustry")


def derive_returns(close: np.ndarray) -> np.ndarray:
    """``close / delay(close, 1) - 1``; NaN on row 0, where a close is missing or the last is 0."""
    returns = np.full(close.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns[1:] = close[1:] / close[:-1] - 1.0
    returns[~np.isfinite(returns)] = np.nan
    return returns


def derive_vwap(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """amount / volume, else (high + low + close) / 3, else close; never inf."""
    if "amount" in fields and "volume" in fields:
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = fields["amount"] / fields["volume"]
        vwap[~np.isfinite(vwap)] = np.nan
        return vwap
    if "high" in fields and "low" in fields:
        return (fields["high"] + fields["low"] + fields["close"]) / 3.0
    return np.array(fields["close"], dtype=np.float64)


def derivable_intraday(present: Iterable[str]) -> tuple[str, ...]:
    """The derived intraday fields that minute cubes named `present` allow (and do not carry)."""
    have = set(present)
    derived = []
    if "close" in have:
        derived.append("minute_returns")
    if have.issuperset(MINUTE_FIELDS):
        derived += ["buy_volume", "sell_volume"]
    return tuple(name for name in derived if name not in have)


def with_derived_intraday(cubes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The minute cubes plus the derived intraday fields they allow (module doc); inputs unchanged."""
    out = dict(cubes)
    wanted = derivable_intraday(out)
    if "minute_returns" in wanted:
        out["minute_returns"] = minute_returns(out["close"])
    if "buy_volume" in wanted or "sell_volume" in wanted:
        split = buy_sell_volume(out["open"], out["high"], out["low"], out["close"], out["volume"])
        out.update((name, cube) for name, cube in zip(("buy_volume", "sell_volume"), split) if name in wanted)
    return out


def with_derived(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if "returns" not in fields:
        fields["returns"] = derive_returns(fields["close"])
    if "vwap" not in fields:
        fields["vwap"] = derive_vwap(fields)
    return fields

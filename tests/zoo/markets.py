"""A small random daily market for checking zoo formulas against pandas: no gaps, no ties."""

from __future__ import annotations

import numpy as np
import pandas as pd

from miner.market import MarketData

SECTORS = ("Energy", "Health", "Tech")


def random_bars(seed: int, rows: int, names: int) -> tuple[MarketData, dict[str, pd.DataFrame], pd.Series]:
    """The market (with a `sector` label), its fields and `returns` as (date x instrument) frames,
    and each instrument's sector."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-02", periods=rows)
    instruments = [f"S{i:02d}" for i in range(names)]
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (rows, names)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, close.shape))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.001, 0.02, close.shape))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.001, 0.02, close.shape))
    fields = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": rng.lognormal(12, 0.5, close.shape),
        "vwap": (high + low + 2 * close) / 4,
    }
    frames = {k: pd.DataFrame(v, index=dates, columns=instruments) for k, v in fields.items()}
    sectors = pd.Series(rng.choice(SECTORS, names), index=instruments)
    long = pd.concat({k: f.stack() for k, f in frames.items()}, axis=1).rename_axis(["date", "instrument"])
    long = long.reset_index()
    long["sector"] = long["instrument"].map(sectors)
    frames["returns"] = frames["close"].pct_change()
    return MarketData.from_frame(long), frames, sectors

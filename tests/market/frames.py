"""Small long frames of bars for the market tests, and a store's minutes read back with SQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd


def daily(dates=("2020-01-02", "2020-01-03"), names=("AAA", "BBB")) -> pd.DataFrame:
    """Every (date, name) with the same bar: open 10, high 11, low 9, close 10, volume 1000."""
    rows = [(day, name) for day in dates for name in names]
    return pd.DataFrame(
        {"date": [day for day, _ in rows], "instrument": [name for _, name in rows]}
        | {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0, "volume": 1000.0}
    )


def minutes(stamps: list[str], instrument: str = "AAA") -> pd.DataFrame:
    """One-price bars at the given times, close = 1, 2, 3... in order, volume 100."""
    close = np.arange(1.0, len(stamps) + 1.0)
    return pd.DataFrame(
        {"datetime": stamps, "instrument": instrument, "open": close, "high": close, "low": close}
        | {"close": close, "volume": 100.0}
    )


def daily_from_minutes(minute: pd.DataFrame) -> pd.DataFrame:
    """Daily OHLCV bars aggregated from minute bars with pandas."""
    return (
        minute.assign(date=minute["datetime"].dt.normalize())
        .groupby(["date", "instrument"])
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        .reset_index()
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` to a CSV or Parquet file, by the path's suffix."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return path


def stored_minutes(store: Path) -> list[str]:
    """The minute_bars timestamps a store holds, in order."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        return [
            str(stamp) for (stamp,) in con.execute("SELECT datetime FROM minute_bars ORDER BY 1").fetchall()
        ]
    finally:
        con.close()

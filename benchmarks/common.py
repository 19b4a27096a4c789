"""Helpers shared by the benchmark scripts (run them as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def timed(action: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time over `repeat` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def daily_from_minutes(minute: pd.DataFrame) -> pd.DataFrame:
    """Daily OHLCV bars (`date`, `instrument`, ...) aggregated from minute bars (`datetime`, ...)."""
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


STOOQ_DAILY = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_stooq_daily_2008_2017.parquet"
HELDOUT_FORMULAS = Path(__file__).resolve().parent / "heldout_formulas.txt"


def read_formulas(path: Path) -> list[str]:
    """One formula per line; blank lines and `#` comments are skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def heldout_frame(path: Path = STOOQ_DAILY, names: int = 319, days: int = 2425) -> pd.DataFrame:
    """The held-out panel as a long frame: the last `days` dates of the stooq file, suspect rows
    dropped, and the `names` instruments with the most remaining rows there (ties by ticker)."""
    frame = pd.read_parquet(path)
    frame = frame[~frame["suspect"]].drop(columns=["suspect"])
    kept_dates = np.sort(frame["date"].unique())[-days:]
    frame = frame[frame["date"].isin(set(kept_dates))]
    counts = frame.groupby("instrument").size().reset_index(name="rows")
    chosen = counts.sort_values(["rows", "instrument"], ascending=[False, True])["instrument"][:names]
    return frame[frame["instrument"].isin(set(chosen))].reset_index(drop=True)

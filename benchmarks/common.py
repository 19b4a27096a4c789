"""Helpers shared by the benchmark scripts (run them as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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

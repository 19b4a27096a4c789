"""Shared fixtures: the real market data beside the repository, and random test panels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; skipped when absent, a failure when MINER_REQUIRE_SHARED_DATA=1."""
    if not (SHARED_DATA / "us_sp500_5yr_daily.parquet").exists():
        if os.environ.get("MINER_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"shared data required but missing at {SHARED_DATA}")
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def random_panel(rng: np.random.Generator, t: int = 60, n: int = 12, nan_share: float = 0.1) -> np.ndarray:
    """A (t, n) panel with NaN holes, a late listing, a constant stretch and an all-NaN column."""
    x = rng.standard_normal((t, n)).cumsum(axis=0) + 50.0
    x[rng.random((t, n)) < nan_share] = np.nan
    x[: t // 3, 0] = np.nan
    x[t // 4 : t // 4 + 8, 1] = 7.0
    x[:, 2] = np.nan
    return x


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)

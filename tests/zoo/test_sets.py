"""Every zoo set evaluates on the shared real US panels: no error, no inf, never all-NaN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miner.lang import Evaluator
from miner.market import MarketData
from miner.zoo import load_zoo, zoo_names

STOOQ_SLICE = ("2010-01-01", "2012-12-31")  # three years of 1,501 names, thinned below
STOOQ_NAMES = 300


@pytest.fixture(scope="module")
def sp500(shared_data: Path) -> MarketData:
    daily = pd.read_parquet(shared_data / "us_sp500_5yr_daily.parquet")
    return MarketData.from_frame(daily, source="us_sp500_5yr_daily.parquet")


@pytest.fixture(scope="module")
def stooq(shared_data: Path) -> MarketData:
    daily = pd.read_parquet(shared_data / "us_stooq_daily_2008_2017.parquet")
    dates = pd.to_datetime(daily["date"])
    daily = daily[(dates >= STOOQ_SLICE[0]) & (dates <= STOOQ_SLICE[1])]
    names = sorted(daily["instrument"].unique())[::5][:STOOQ_NAMES]
    return MarketData.from_frame(daily[daily["instrument"].isin(names)], source="us_stooq slice")


def assert_every_factor_evaluates(name: str, market: MarketData) -> None:
    evaluator = Evaluator(market, cache_bytes=256 << 20)
    problems = []
    for factor in load_zoo(name):
        values = evaluator.evaluate(factor.formula)
        if np.isinf(values).any():
            problems.append(f"{factor.id}: inf")
        if not np.isfinite(values).any():
            problems.append(f"{factor.id}: all NaN")
    assert problems == []


@pytest.mark.shared_data
@pytest.mark.parametrize("name", zoo_names())
def test_every_set_evaluates_on_the_sp500_panel_with_sectors(name: str, sp500: MarketData) -> None:
    assert sp500.is_group("sector")
    assert_every_factor_evaluates(name, sp500)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", zoo_names())
def test_every_set_evaluates_on_a_slice_of_the_stooq_panel(name: str, stooq: MarketData) -> None:
    assert_every_factor_evaluates(name, stooq)

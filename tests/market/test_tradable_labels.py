"""One tradable label for the mining loop, `miner eval` and the library's monitor, and the rule
fields under the library's incremental updates, checked against direct numpy/pandas computations
on a market store imported with ``--rules cn``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation import forward_returns, rank_ic
from miner import Evaluator, evaluate
from miner.app.experiment import market_for
from miner.app.formula_report import evaluate_formula
from miner.app.promote import ensure_market
from miner.app.zoo_report import zoo_report
from miner.config import config_from_dict
from miner.errors import ConfigError
from miner.library import FactorLibrary
from miner.market.store import load_market
from miner.market.synthetic import synthetic_frames
from miner.search.evolution import Miner
from miner.zoo import ZooFactor

SETTINGS = dict(n_instruments=40, n_days=90, seed=6, session="cn", limit_streak_share=0.05)
FACTOR = "rank(high <= low) + rank(ts_mean(returns, 3))"  # flags one-price bars, among others
SPLITS = {
    "train": {"start": "2020-01-01", "end": "2020-02-28"},
    "valid": {"start": "2020-03-02", "end": "2020-03-31"},
    "test": {"start": "2020-04-01", "end": "2020-05-05"},
}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library file whose market tables hold the synthetic A-share bars, imported with rules."""
    path = tmp_path_factory.mktemp("lib") / "cn.duckdb"
    daily, _ = synthetic_frames(**SETTINGS)
    with FactorLibrary(path) as lib:
        lib.market_store.import_frame(daily, source="synthetic cn", rules="cn")
    return path


def masked_rank_ic(factor: np.ndarray, close: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """Rank IC against close[t+2] / close[t+1] - 1, NaN where the bar at t+1 is not tradable."""
    label = pd.DataFrame(close).shift(-2) / pd.DataFrame(close).shift(-1) - 1
    entry = pd.DataFrame(tradable).shift(-1)
    return rank_ic(factor, label.where(entry == 1).to_numpy())


def test_the_loop_eval_and_monitor_use_the_same_tradable_label(library: Path):
    market = load_market(library)
    tradable, close = market.fields["tradable"], market.fields["close"]
    assert (tradable == 0).sum() > 40
    factor = evaluate(FACTOR, market)
    expected = masked_rank_ic(factor, close, tradable)
    unmasked = rank_ic(factor, forward_returns(close))
    assert np.nanmean(unmasked) - np.nanmean(expected) > 0.01  # the mask matters here

    config = config_from_dict(
        {"name": "cn", "splits": SPLITS, "data": {"source": "store", "path": str(library)}}
    )
    miner = Miner(config, market)
    np.testing.assert_array_equal(rank_ic(factor, miner.label), expected)

    report = evaluate_formula(FACTOR, library, None, "1")
    assert report.summary["rank_ic_mean"] == pytest.approx(np.nanmean(expected), abs=1e-12)

    with FactorLibrary(library) as lib:
        lib.register_factor("flags", FACTOR)
        monitored = lib.monitor("flags", window=5)
    np.testing.assert_allclose(monitored["rank_ic"].to_numpy(), expected, rtol=0, atol=1e-12)

    flags = ZooFactor("flags", FACTOR, "test", "test")
    row = zoo_report([flags], market, config).iloc[0]
    valid = miner.segments.valid
    assert row["valid_rank_ic"] == pytest.approx(np.nanmean(expected[valid]), abs=1e-12)


def test_label_tradable_none_and_entry(library: Path):
    market = load_market(library)
    base = {"name": "cn", "splits": SPLITS, "data": {"source": "store", "path": str(library)}}
    plain = Miner(config_from_dict(base | {"label": {"tradable": "none"}}), market)
    np.testing.assert_array_equal(plain.label, forward_returns(market.fields["close"]))
    synthetic_us = {"name": "us", "splits": SPLITS, "label": {"tradable": "entry"}}
    synthetic_us["data"] = {"synthetic": {"n_instruments": 20, "n_days": 90}}
    with pytest.raises(ConfigError, match=r"^x.yaml: label.tradable: entry needs a 'tradable' field"):
        market_for(config_from_dict(synthetic_us, "x.yaml"))
    cn = synthetic_us | {
        "data": {"session": "us", "synthetic": {"n_instruments": 20, "n_days": 90, "session": "cn"}}
    }
    with pytest.raises(ConfigError, match=r"data.session: 'us', but the synthetic market"):
        market_for(config_from_dict(cn, "x.yaml"))


def test_incremental_updates_of_rule_fields_equal_a_full_recomputation(tmp_path: Path):
    daily, _ = synthetic_frames(**SETTINGS)
    dates = np.sort(daily["date"].unique())
    path = tmp_path / "lib.duckdb"
    formulas = {
        "locked": "ts_sum(tradable, 5)",
        "room": "rank(limit_up / close - 1)",
        "gap": "delta(limit_down, 3)",
    }
    with FactorLibrary(path) as lib:
        lib.market_store.import_frame(daily[daily["date"] <= dates[59]], source="head", rules="cn")
        for factor_id, formula in formulas.items():
            lib.register_factor(factor_id, formula)
        lib.market_store.import_frame(daily[daily["date"] > dates[59]], source="tail")
        lib.update()
        market = lib.market_store.load()
        for factor_id, formula in formulas.items():
            stored = lib.get_factor(factor_id).reindex(
                index=pd.DatetimeIndex(market.dates), columns=market.instruments
            )
            full = Evaluator(market).evaluate(formula)
            assert np.array_equal(stored.to_numpy(dtype=float), full, equal_nan=True), factor_id


def test_promoting_from_a_synthetic_cn_run_imports_the_same_market(tmp_path: Path):
    synthetic = {"n_instruments": 40, "n_days": 40, "minute_days": 3, "session": "cn", "seed": 2}
    config = config_from_dict({"name": "cn", "splits": SPLITS, "data": {"synthetic": synthetic}})
    with FactorLibrary(tmp_path / "lib.duckdb") as lib:
        ensure_market(lib, config)
        stored = lib.market_store.load(minute=True)
    assert stored.M == 240
    assert stored.fingerprint == market_for(config).fingerprint

"""The research comparison's guard: choices are made on a market whose test period is withheld, so
changing test-period prices changes no choice, while the frozen choices do score differently on the
changed test rows."""

from __future__ import annotations

import dataclasses

import numpy as np

from miner.app.experiment import market_for
from miner.app.research import frozen_run, score_choices, withhold_test
from miner.market import MarketData
from miner.search.members import Context
from tests.search.test_evolution import small


def scrambled_test_period(market: MarketData, first: int) -> MarketData:
    rng = np.random.default_rng(1)

    def scramble(name: str, array: np.ndarray) -> np.ndarray:
        out = np.array(array)
        if not market.is_group(name):
            out[first:] *= rng.lognormal(0.0, 0.3, out[first:].shape)
        return out

    return dataclasses.replace(market, fields={k: scramble(k, v) for k, v in market.fields.items()})


def test_changing_test_period_prices_changes_no_choice() -> None:
    config = small(gp__generations=2, baselines={"zoo": "classic", "top_k": 3})
    market = market_for(config)
    segments = Context.of(config, market).segments
    changed = scrambled_test_period(market, segments.test.start)

    withheld = withhold_test(changed, segments)
    for name, values in withheld.fields.items():
        assert np.isnan(values[segments.test.start :]).all(), name
        np.testing.assert_array_equal(
            values[: segments.test.start], market.fields[name][: segments.test.start]
        )

    runs = [frozen_run(config, withhold_test(m, segments)) for m in (market, changed)]
    assert runs[0].choices == runs[1].choices
    assert runs[0].candidates == runs[1].candidates > 0
    assert runs[0].choices["survivors"] and runs[0].choices["zoo"]["top_k"]

    scores = [score_choices(runs[0].choices, Context.of(config, m)) for m in (market, changed)]
    assert scores[0].keys() == scores[1].keys()
    assert all(np.isfinite(v) for v in scores[0].values())
    assert all(scores[0][k] != scores[1][k] for k in scores[0])

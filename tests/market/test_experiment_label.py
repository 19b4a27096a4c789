"""The experiment's label: forward returns neutralised against a group field, then transformed per date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import forward_returns
from miner.config import LabelSpec
from miner.errors import ConfigError
from miner.market.labels import experiment_label
from miner.market.synthetic import synthetic_market


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_instruments=40, n_days=60, seed=3)


def long(panel: np.ndarray, name: str) -> pd.Series:
    return pd.DataFrame(panel).stack(future_stack=True).rename(name)


def test_raw_is_the_forward_return(market) -> None:
    expected = forward_returns(market.field("close"), 1, 1)
    np.testing.assert_array_equal(experiment_label(market, LabelSpec()), expected)


def test_neutralised_then_ranked_matches_a_pandas_reference(market) -> None:
    spec = LabelSpec(horizon=5, neutralize="sector", transform="rank")
    raw = forward_returns(market.field("close"), 5, 1)
    frame = pd.concat([long(raw, "label"), long(market.field("sector"), "sector")], axis=1).dropna()
    dates = frame.index.get_level_values(0)
    frame["demeaned"] = frame["label"] - frame.groupby([dates, frame["sector"]])["label"].transform("mean")
    ranks = frame.groupby(dates)["demeaned"].rank(method="average")
    counts = frame.groupby(dates)["demeaned"].transform("count")
    frame["expected"] = (ranks - 0.5) / counts - 0.5
    got = long(experiment_label(market, spec), "got").reindex(frame.index)
    np.testing.assert_allclose(got.to_numpy(), frame["expected"].to_numpy(), atol=1e-12)


def test_a_field_that_is_not_a_group_is_refused_in_one_line(market) -> None:
    with pytest.raises(ConfigError, match=r"label.neutralize: 'close' is not a group field .*sector"):
        experiment_label(market, LabelSpec(neutralize="close"))

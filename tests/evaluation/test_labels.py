"""Forward-return labels: hand-worked examples, NaN rules, locality and a pandas cross-check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import forward_returns
from evaluation.labels import forward_returns_multi

NAN = np.nan

# column 0: a zero (non-positive) price at row 3 and a missing price at row 5
# column 1: doubles every row, so an h-row return is 2**h - 1
# column 2: a negative price at row 2
PRICE = np.array(
    [
        [10.0, 1.0, 5.0],
        [11.0, 2.0, 5.0],
        [12.0, 4.0, -1.0],
        [0.0, 8.0, 5.0],
        [15.0, 16.0, 5.0],
        [NAN, 32.0, 5.0],
        [20.0, 64.0, 5.0],
        [22.0, 128.0, 5.0],
    ]
)

# label[t] = price[t + delay + horizon] / price[t + delay] - 1, worked out by hand
EXPECTED = {
    (0, 1): [
        [0.1, 1.0, 0.0],
        [1 / 11, 1.0, NAN],
        [NAN, 1.0, NAN],
        [NAN, 1.0, 0.0],
        [NAN, 1.0, 0.0],
        [NAN, 1.0, 0.0],
        [0.1, 1.0, 0.0],
        [NAN, NAN, NAN],
    ],
    (1, 1): [
        [1 / 11, 1.0, NAN],
        [NAN, 1.0, NAN],
        [NAN, 1.0, 0.0],
        [NAN, 1.0, 0.0],
        [NAN, 1.0, 0.0],
        [0.1, 1.0, 0.0],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
    ],
    (2, 1): [
        [NAN, 1.0, NAN],
        [NAN, 1.0, 0.0],
        [NAN, 1.0, 0.0],
        [NAN, 1.0, 0.0],
        [0.1, 1.0, 0.0],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
    ],
    (0, 3): [
        [NAN, 7.0, 0.0],
        [4 / 11, 7.0, 0.0],
        [NAN, 7.0, NAN],
        [NAN, 7.0, 0.0],
        [7 / 15, 7.0, 0.0],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
    ],
    (1, 3): [
        [4 / 11, 7.0, 0.0],
        [NAN, 7.0, NAN],
        [NAN, 7.0, 0.0],
        [7 / 15, 7.0, 0.0],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
    ],
    (2, 3): [
        [NAN, 7.0, NAN],
        [NAN, 7.0, 0.0],
        [7 / 15, 7.0, 0.0],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
        [NAN, NAN, NAN],
    ],
}


@pytest.mark.parametrize(("delay", "horizon"), sorted(EXPECTED))
def test_hand_worked_examples(delay: int, horizon: int) -> None:
    got = forward_returns(PRICE, horizon=horizon, delay=delay)
    np.testing.assert_allclose(got, np.array(EXPECTED[(delay, horizon)]), rtol=1e-15)


def test_default_is_one_day_after_a_one_day_delay() -> None:
    np.testing.assert_allclose(forward_returns(PRICE), np.array(EXPECTED[(1, 1)]), rtol=1e-15)


@pytest.mark.parametrize(("delay", "horizon"), [(0, 1), (1, 1), (2, 3), (1, 20), (5, 2)])
def test_last_delay_plus_horizon_rows_are_nan(delay: int, horizon: int) -> None:
    price = np.exp(np.random.default_rng(1).standard_normal((40, 6)).cumsum(axis=0))
    got = forward_returns(price, horizon, delay)
    assert np.isnan(got[-(delay + horizon) :]).all()
    assert np.isfinite(got[: -(delay + horizon)]).all()


def test_panel_shorter_than_delay_plus_horizon_is_all_nan() -> None:
    got = forward_returns(np.ones((3, 2)), horizon=2, delay=1)
    assert got.shape == (3, 2)
    assert np.isnan(got).all()


def test_infinite_price_gives_nan() -> None:
    price = np.array([[1.0], [np.inf], [2.0], [4.0]])
    np.testing.assert_allclose(forward_returns(price, 1, 0)[:, 0], [NAN, NAN, 1.0, NAN])


def test_label_at_t_depends_only_on_rows_t_plus_delay_and_t_plus_delay_plus_horizon() -> None:
    price = np.exp(np.random.default_rng(2).standard_normal((30, 4)).cumsum(axis=0))
    delay, horizon = 2, 3
    base = forward_returns(price, horizon, delay)
    for row in range(price.shape[0]):
        bumped = price.copy()
        bumped[row] *= 1.5
        after = forward_returns(bumped, horizon, delay)
        same = (after == base) | (np.isnan(after) & np.isnan(base))
        changed = np.flatnonzero(~same.all(axis=1))
        expected = [t for t in (row - delay - horizon, row - delay) if 0 <= t < 30 - 5]
        assert sorted(changed) == sorted(expected), row


def test_read_only_input_is_accepted_and_left_alone() -> None:
    price = PRICE.copy()
    price.setflags(write=False)
    forward_returns(price, 3, 1)
    np.testing.assert_array_equal(price, PRICE)


def test_multi_returns_one_label_per_horizon() -> None:
    got = forward_returns_multi(PRICE, horizons=(1, 2, 3), delay=1)
    assert list(got) == [1, 2, 3]
    for h, label in got.items():
        np.testing.assert_allclose(label[: 8 - 1 - h, 1], 2.0**h - 1.0)
        assert np.isnan(label[8 - 1 - h :]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0}, "horizon"),
        ({"horizon": -2}, "horizon"),
        ({"horizon": 1.5}, "horizon"),
        ({"delay": -1}, "delay"),
        ({"delay": 0.5}, "delay"),
    ],
)
def test_invalid_horizon_or_delay_is_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        forward_returns(PRICE, **kwargs)
    with pytest.raises(ValueError, match=message):
        forward_returns_multi(PRICE, horizons=(kwargs.get("horizon", 1),), delay=kwargs.get("delay", 1))


def test_one_dimensional_price_is_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        forward_returns(PRICE[:, 0])


@pytest.mark.shared_data
def test_matches_pandas_shift_on_real_prices(shared_data) -> None:
    daily = pd.read_parquet(
        shared_data / "us_sp500_5yr_daily.parquet", columns=["date", "instrument", "close"]
    )
    close = daily.pivot(index="date", columns="instrument", values="close").iloc[:300, :80]
    for delay, horizon in [(0, 1), (1, 5), (2, 10)]:
        reference = close.shift(-(delay + horizon)) / close.shift(-delay) - 1.0
        got = forward_returns(close.to_numpy(), horizon, delay)
        np.testing.assert_allclose(got, reference.to_numpy(), rtol=1e-15, atol=0)

"""Alpha101 entries against the paper's definitions (Kakushadze 2016), worked with pandas.

rank is the cross-sectional percentile rank, Ts_Rank the percentile of today in the trailing window,
Ts_ArgMax the 1-based position of the window's maximum, IndNeutralize(x, g) x minus its group's mean
on the date, adv{d} the d-day mean of volume * vwap; windows are compared once they are full.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from miner.lang import evaluate
from miner.zoo import load_zoo
from tests.zoo.markets import random_bars

Frame = pd.DataFrame
ROWS, NAMES = 300, 12


def rank(x: Frame) -> Frame:
    return x.rank(axis=1, pct=True)


def ts_rank(x: Frame, d: int) -> Frame:
    return x.rolling(d).rank(pct=True)


def ts_argmax(x: Frame, d: int) -> Frame:
    return x.rolling(d).apply(lambda w: w.argmax() + 1, raw=True)


def correlation(x: Frame, y: Frame, d: int) -> Frame:
    return x.rolling(d).corr(y)


def delta(x: Frame, d: int) -> Frame:
    return x - x.shift(d)


def decay_linear(x: Frame, d: int) -> Frame:
    weights = np.arange(1, d + 1) / (d * (d + 1) / 2)
    return x.rolling(d).apply(lambda w: w @ weights, raw=True)


def neutralize(x: Frame, groups: pd.Series) -> Frame:
    """x minus the mean of its group on each date (groups: instrument -> label)."""
    return x - x.T.groupby(groups).transform("mean").T


MARKET, P, SECTORS = random_bars(seed=101, rows=ROWS, names=NAMES)
ZOO = {f.id: f for f in load_zoo("alpha101")}


def alpha001(p: dict[str, Frame]) -> Frame:
    inner = p["close"].where(p["returns"] >= 0, p["returns"].rolling(20).std())
    return rank(ts_argmax(np.sign(inner) * inner.abs() ** 2, 5)) - 0.5


def alpha023(p: dict[str, Frame]) -> Frame:
    return (-1 * delta(p["high"], 2)).where(p["high"].rolling(20).sum() / 20 < p["high"], 0.0)


def alpha048(p: dict[str, Frame]) -> Frame:
    change = delta(p["close"], 1)
    inner = correlation(change, delta(p["close"].shift(1), 1), 250) * change / p["close"]
    return neutralize(inner, SECTORS) / ((change / p["close"].shift(1)) ** 2).rolling(250).sum()


def alpha058(p: dict[str, Frame]) -> Frame:
    corr = correlation(neutralize(p["vwap"], SECTORS), p["volume"], 3)
    return -1 * ts_rank(decay_linear(corr, 7), 5)


PAPER: dict[str, tuple[Callable[[dict[str, Frame]], Frame], int]] = {
    "alpha001": (alpha001, 25),
    "alpha004": (lambda p: -1 * ts_rank(rank(p["low"]), 9), 8),
    "alpha006": (lambda p: -1 * correlation(p["open"], p["volume"], 10), 9),
    "alpha012": (lambda p: np.sign(delta(p["volume"], 1)) * (-1 * delta(p["close"], 1)), 1),
    "alpha023": (alpha023, 19),
    "alpha041": (lambda p: (p["high"] * p["low"]) ** 0.5 - p["vwap"], 0),
    "alpha048": (alpha048, 251),
    "alpha053": (
        lambda p: (
            -1 * delta(((p["close"] - p["low"]) - (p["high"] - p["close"])) / (p["close"] - p["low"]), 9)
        ),
        9,
    ),
    "alpha054": (
        lambda p: (
            (-1 * ((p["low"] - p["close"]) * p["open"] ** 5)) / ((p["low"] - p["high"]) * p["close"] ** 5)
        ),
        0,
    ),
    "alpha058": (alpha058, 12),
    "alpha101": (lambda p: (p["close"] - p["open"]) / ((p["high"] - p["low"]) + 0.001), 0),
}


@pytest.mark.parametrize("alpha", sorted(PAPER))
def test_values_match_the_papers_definition(alpha: str) -> None:
    reference, first_row = PAPER[alpha]
    expected = reference(P).to_numpy(dtype=float)
    got = evaluate(ZOO[alpha].formula, MARKET)
    np.testing.assert_allclose(got[first_row:], expected[first_row:], rtol=1e-8, atol=1e-10)
    assert np.isfinite(expected[first_row:]).all()


def test_every_alpha_but_56_is_present_with_the_papers_formula() -> None:
    assert sorted(ZOO) == [f"alpha{n:03d}" for n in range(1, 102) if n != 56]
    for factor in ZOO.values():
        number = int(factor.id.removeprefix("alpha"))
        assert factor.description.startswith(f"Alpha#{number}: "), factor.id
        assert factor.source.endswith(f"Alpha#{number}")
        assert ("IndNeutralize" in factor.description or "indneutralize" in factor.description) == (
            "group_neutralize" in factor.formula
        ), factor.id


def test_adv_is_the_mean_dollar_volume_and_windows_are_floored() -> None:
    assert "ts_mean(volume * vwap, 20)" in ZOO["alpha025"].formula
    assert "ts_min(vwap, 16)" in ZOO["alpha061"].formula  # ts_min(vwap, 16.1219)
    assert "ts_mean(volume * vwap, 180), 17)" in ZOO["alpha061"].formula  # correlation(vwap, adv180, 17.9282)

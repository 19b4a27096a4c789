"""Alpha158 against Qlib's definitions, worked independently with pandas on a small market.

Each reference below is the feature's Qlib expression (`Alpha158DL.get_feature_config`) written with
pandas functions that follow Qlib's operators (`qlib/data/ops.py`): rolling windows with
min_periods=1, `Std` with ddof=1, `Rank` the rolling percentile, `IdxMax` numpy's argmax + 1 in the
window, `Corr` pandas' rolling correlation set to NaN where a side's rolling std is ~0, and `Slope`,
`Rsquare`, `Resi` the least-squares line of the window on its positions (numpy polyfit).
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
ROWS, NAMES = 90, 5


def Ref(x: Frame, d: int) -> Frame:
    return x.shift(d)


def Mean(x: Frame, d: int) -> Frame:
    return x.astype(float).rolling(d, min_periods=1).mean()


def Std(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).std()


def Sum(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).sum()


def Max(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).max()


def Min(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).min()


def Quantile(x: Frame, d: int, q: float) -> Frame:
    return x.rolling(d, min_periods=1).quantile(q)


def IdxMax(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).apply(lambda w: w.argmax() + 1, raw=True)


def IdxMin(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).apply(lambda w: w.argmin() + 1, raw=True)


def Corr(x: Frame, y: Frame, d: int) -> Frame:
    flat = np.isclose(Std(x, d), 0, atol=2e-5) | np.isclose(Std(y, d), 0, atol=2e-5)
    return x.rolling(d, min_periods=1).corr(y).mask(flat)


def _fit(window: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the window on its positions 0, 1, ..."""
    slope, intercept = np.polyfit(np.arange(len(window)), window, 1)
    return slope, intercept


def Slope(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=2).apply(lambda w: _fit(w)[0], raw=True)


def Rsquare(x: Frame, d: int) -> Frame:
    r2 = x.rolling(d, min_periods=2).apply(lambda w: np.corrcoef(np.arange(len(w)), w)[0, 1] ** 2, raw=True)
    return r2.mask(np.isclose(Std(x, d), 0, atol=2e-5))


def Resi(x: Frame, d: int) -> Frame:
    def residual(w: np.ndarray) -> float:
        slope, intercept = _fit(w)
        return w[-1] - (intercept + slope * (len(w) - 1))

    return x.rolling(d, min_periods=2).apply(residual, raw=True)


def Greater(x: Frame, y: Frame | float) -> Frame:
    return np.maximum(x, y)


def Log(x: Frame) -> Frame:
    return np.log(x)


def Abs(x: Frame) -> Frame:
    return x.abs()


Reference = Callable[[dict[str, Frame]], Frame]

# Qlib's expression for each feature, with $field written p["field"]; the first row compared
# (0 unless the two conventions differ over a window's first rows, see the set's header)
QLIB: dict[str, tuple[Reference, int]] = {
    "KMID": (lambda p: (p["close"] - p["open"]) / p["open"], 0),
    "KLEN": (lambda p: (p["high"] - p["low"]) / p["open"], 0),
    "KUP2": (lambda p: (p["high"] - Greater(p["open"], p["close"])) / (p["high"] - p["low"] + 1e-12), 0),
    "VWAP0": (lambda p: p["vwap"] / p["close"], 0),
    "ROC5": (lambda p: Ref(p["close"], 5) / p["close"], 0),
    "MA10": (lambda p: Mean(p["close"], 10) / p["close"], 0),
    "STD20": (lambda p: Std(p["close"], 20) / p["close"], 0),
    "BETA10": (lambda p: Slope(p["close"], 10) / p["close"], 0),
    "RSQR10": (lambda p: Rsquare(p["close"], 10), 0),
    "RESI10": (lambda p: Resi(p["close"], 10) / p["close"], 0),
    "MIN30": (lambda p: Min(p["low"], 30) / p["close"], 0),
    "QTLU20": (lambda p: Quantile(p["close"], 20, 0.8) / p["close"], 0),
    "QTLD5": (lambda p: Quantile(p["close"], 5, 0.2) / p["close"], 0),
    "RANK10": (lambda p: p["close"].rolling(10, min_periods=1).rank(pct=True), 0),
    "RSV10": (
        lambda p: (p["close"] - Min(p["low"], 10)) / (Max(p["high"], 10) - Min(p["low"], 10) + 1e-12),
        0,
    ),
    "IMAX20": (lambda p: IdxMax(p["high"], 20) / 20, 19),
    "IMXD10": (lambda p: (IdxMax(p["high"], 10) - IdxMin(p["low"], 10)) / 10, 9),
    "CORR20": (lambda p: Corr(p["close"], Log(p["volume"] + 1), 20), 0),
    "CORD10": (
        lambda p: Corr(p["close"] / Ref(p["close"], 1), Log(p["volume"] / Ref(p["volume"], 1) + 1), 10),
        0,
    ),
    "CNTP20": (lambda p: Mean(p["close"] > Ref(p["close"], 1), 20), 20),
    "CNTD5": (
        lambda p: Mean(p["close"] > Ref(p["close"], 1), 5) - Mean(p["close"] < Ref(p["close"], 1), 5),
        5,
    ),
    "SUMP20": (
        lambda p: (
            Sum(Greater(p["close"] - Ref(p["close"], 1), 0), 20)
            / (Sum(Abs(p["close"] - Ref(p["close"], 1)), 20) + 1e-12)
        ),
        0,
    ),
    "VMA5": (lambda p: Mean(p["volume"], 5) / (p["volume"] + 1e-12), 0),
    "VSTD60": (lambda p: Std(p["volume"], 60) / (p["volume"] + 1e-12), 0),
    "WVMA10": (
        lambda p: (
            Std(Abs(p["close"] / Ref(p["close"], 1) - 1) * p["volume"], 10)
            / (Mean(Abs(p["close"] / Ref(p["close"], 1) - 1) * p["volume"], 10) + 1e-12)
        ),
        0,
    ),
    "VSUMD30": (
        lambda p: (
            (
                Sum(Greater(p["volume"] - Ref(p["volume"], 1), 0), 30)
                - Sum(Greater(Ref(p["volume"], 1) - p["volume"], 0), 30)
            )
            / (Sum(Abs(p["volume"] - Ref(p["volume"], 1)), 30) + 1e-12)
        ),
        0,
    ),
}


MARKET, FRAMES, _ = random_bars(seed=158, rows=ROWS, names=NAMES)
ZOO = {f.id: f for f in load_zoo("alpha158")}


@pytest.mark.parametrize("factor_id", sorted(QLIB))
def test_values_match_qlibs_definition(factor_id: str) -> None:
    reference, first_row = QLIB[factor_id]
    expected = reference(FRAMES).to_numpy(dtype=float)
    got = evaluate(ZOO[factor_id].formula, MARKET)
    np.testing.assert_allclose(got[first_row:], expected[first_row:], rtol=1e-9, atol=1e-12)
    assert np.isfinite(expected[first_row:]).mean() > 0.9


def test_the_set_is_qlibs_158_features_in_qlibs_order() -> None:
    rolling = (
        "ROC MA STD BETA RSQR RESI MAX MIN QTLU QTLD RANK RSV IMAX IMIN IMXD CORR CORD CNTP CNTN CNTD "
        "SUMP SUMN SUMD VMA VSTD WVMA VSUMP VSUMN VSUMD"
    ).split()
    names = ["KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2"]
    names += ["OPEN0", "HIGH0", "LOW0", "VWAP0"]
    names += [f"{op}{d}" for op in rolling for d in (5, 10, 20, 30, 60)]
    assert list(ZOO) == names and len(names) == 158

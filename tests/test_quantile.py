"""ts_quantile against pandas rolling quantiles (linear interpolation) and a worked example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from test_timeseries import bits, make_x, read_only

from miner.errors import FormulaError
from miner.lang import parse
from operators import REGISTRY, Kind
from operators.quantile import ts_quantile

NAN = np.nan


X = make_x()


@pytest.mark.parametrize("q", (0.0, 0.2, 0.5, 0.8, 1.0))
@pytest.mark.parametrize("d", (1, 2, 5, 20, 75))
def test_matches_pandas_rolling_quantile(d: int, q: float) -> None:
    expected = pd.DataFrame(X).rolling(d, min_periods=1).quantile(q).to_numpy()
    assert_allclose(ts_quantile(X, d, q), expected, rtol=1e-12, atol=1e-12)


def test_hand_worked_interpolation() -> None:
    x = read_only(np.array([[3.0, 1.0, NAN, 2.0, NAN, NAN, NAN, NAN]]).T)
    # t=3: the valid values of rows 0..3 are 1, 2, 3; q = 0.25 sits halfway between 1 and 2
    assert_allclose(ts_quantile(x, 4, 0.25)[:, 0], [3.0, 1.5, 1.5, 1.5, 1.25, 2.0, 2.0, NAN])


def test_recomputing_from_lookback_rows_is_bit_identical() -> None:
    tied = read_only(np.where(np.isnan(X), NAN, np.sign(X - 50.0) * 0.0))  # 0.0 and -0.0 ties
    for panel in (X, tied):
        full = ts_quantile(panel, 7, 0.3)
        for t0 in (6, 17, 40, 59):
            part = ts_quantile(panel[t0 - 6 :], 7, 0.3)
            assert_array_equal(bits(part[6:]), bits(full[t0:]), err_msg=f"t0={t0}")


def test_no_lookahead_and_no_inf() -> None:
    """Rows after 30 become huge values of both signs and infinities: nothing before changes, and
    no quantile is inf (an infinite order statistic, or an overflowing interpolation, is NaN)."""
    rng = np.random.default_rng(1)
    scrambled = np.array(X)
    tail = scrambled[31:]
    tail[...] = rng.choice([-1.7e308, -1e300, 1.0, 1e300, 1.7e308, np.inf, -np.inf], size=tail.shape)
    out = ts_quantile(read_only(scrambled), 10, 0.8)
    assert_array_equal(bits(out[:31]), bits(ts_quantile(X, 10, 0.8)[:31]))
    assert not np.isinf(out).any()
    assert np.isfinite(ts_quantile(read_only([[-1.7e308], [1.7e308]]), 2, 0.5)).all()


def test_q_outside_the_unit_interval_is_a_formula_error() -> None:
    with pytest.raises(FormulaError, match="must be <= 1"):
        parse("ts_quantile(close, 5, 1.5)")


def test_registry_declaration() -> None:
    spec = REGISTRY["ts_quantile"]
    assert spec.family == "quantile"
    assert [a.kind for a in spec.args] == [Kind.SERIES, Kind.WINDOW, Kind.CONST]
    assert (spec.args[2].lower, spec.args[2].upper) == (0.0, 1.0)
    assert spec.lookback({"d": 7, "q": 0.5}) == 6

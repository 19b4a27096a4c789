"""Objectives on a per-date IC series: Newey-West t by hand and by plain loops, block means,
and the three Objective kinds (icir must equal the existing fitness)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation import WORST_FITNESS, ic_stats
from evaluation.fitness import Objective, block_means, fitness_from_stats, hac_tstat

NAN = np.nan


def reference_hac_tstat(series: list[float], lag: int) -> float:
    """Newey-West t of the mean with plain loops: gamma_j = sum e_t e_(t-j) / n, Bartlett weights."""
    x = [v for v in series if math.isfinite(v)]
    n = len(x)
    mean = sum(x) / n
    e = [v - mean for v in x]
    long_run = 0.0
    for j in range(0, min(lag, n - 1) + 1):
        gamma = 0.0
        for t in range(j, n):
            gamma += e[t] * e[t - j]
        gamma /= n
        long_run += gamma if j == 0 else 2.0 * (1.0 - j / (lag + 1)) * gamma
    return mean / math.sqrt(long_run / n) if long_run > 0.0 else math.nan  # e.g. squares underflow


def test_hac_tstat_lag_zero_is_the_ordinary_t_with_ddof_zero() -> None:
    # [1, 2, 3, 4]: mean 2.5, std (ddof 0) sqrt(1.25), t = 2.5 / (sqrt(1.25) / 2)
    assert hac_tstat(np.array([1.0, 2.0, 3.0, 4.0]), 0) == pytest.approx(2.5 / (math.sqrt(1.25) / 2))


def test_hac_tstat_lag_one_by_hand() -> None:
    # [1, 3, 2, 6]: mean 3, e = [-2, 0, -1, 3]; gamma0 = 14 / 4 = 3.5; gamma1 = (0 + 0 - 3) / 4 = -0.75
    # long-run variance 3.5 + 2 * (1 - 1/2) * -0.75 = 2.75; se = sqrt(2.75 / 4)
    assert hac_tstat(np.array([1.0, 3.0, NAN, 2.0, 6.0]), 1) == pytest.approx(3.0 / math.sqrt(2.75 / 4))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1, 1, allow_nan=False) | st.just(NAN), min_size=3, max_size=60),
    st.integers(0, 8),
)
def test_hac_tstat_matches_plain_loops(series: list[float], lag: int) -> None:
    finite = [v for v in series if math.isfinite(v)]
    if len(finite) < 3 or len(set(finite)) == 1:
        assert math.isnan(hac_tstat(np.array(series), lag))
        return
    expected = reference_hac_tstat(series, lag)
    assert hac_tstat(np.array(series), lag) == pytest.approx(expected, rel=1e-9, abs=1e-12, nan_ok=True)


def test_hac_tstat_is_nan_when_undefined() -> None:
    assert math.isnan(hac_tstat(np.array([0.0, 0.0, 5e-324]), 0))  # the squares underflow to 0
    assert math.isnan(hac_tstat(np.array([0.1, 0.2, NAN]), 0))  # 2 finite values
    assert math.isnan(hac_tstat(np.array([0.1, 0.1, 0.1, 0.1]), 2))  # no variance
    with pytest.raises(ValueError, match="lag"):
        hac_tstat(np.array([0.1, 0.2, 0.3]), -1)


def test_positive_autocorrelation_shrinks_the_hac_t() -> None:
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(2000)
    overlapping = 0.05 + np.convolve(noise, np.ones(10) / 10, mode="valid")  # a 10-day label's IC
    assert abs(hac_tstat(overlapping, 10)) < 0.5 * abs(hac_tstat(overlapping, 0))


def test_block_means_by_hand() -> None:
    series = np.arange(10.0)
    np.testing.assert_array_equal(block_means(series, 4), [1.0, 4.0, 6.5, 8.5])  # 3, 3, 2, 2 values
    with_gaps = np.array([1.0, NAN, 3.0, NAN, NAN, 2.0, 4.0])  # parts [1 nan] [3 nan] [nan 2] [4]
    np.testing.assert_array_equal(block_means(with_gaps, 4), [1.0, 3.0, 2.0, 4.0])
    np.testing.assert_array_equal(block_means(np.array([NAN, NAN, 5.0, 7.0]), 2), [NAN, 6.0])


def test_icir_objective_is_the_existing_fitness() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        series = 0.02 + 0.1 * rng.standard_normal(rng.integers(5, 300))
        series[rng.random(series.size) < 0.1] = NAN
        series *= rng.choice([-1.0, 1.0])
        expected = fitness_from_stats(ic_stats(series), size=7, parsimony=0.001, min_dates=20)
        assert Objective("icir").fitness(series, 7, 0.001, 20) == expected
        assert Objective("icir").value(series) == abs(ic_stats(series)["icir"])


def test_tstat_objective_by_hand() -> None:
    series = np.array([1.0, 3.0, 2.0, 6.0])
    assert Objective("tstat", hac_lag=1).value(series) == pytest.approx(3.0 / math.sqrt(2.75 / 4) / 2)
    assert Objective("tstat").value(-series) == pytest.approx(3.0 / series.std(ddof=0))  # lag 0, |.|


def test_mean_std_objective_by_hand() -> None:
    # 8 values, 4 blocks of 2: block means 1, 2, 3, 2 (mean 2, std ddof 1 sqrt(2/3))
    series = np.array([0.0, 2.0, 1.0, 3.0, 3.0, 3.0, 2.0, 2.0])
    std = series.std(ddof=1)
    assert Objective("mean_std").value(series) == pytest.approx((2.0 - math.sqrt(2 / 3)) / std)
    assert Objective("mean_std", beta=0.5).value(-series) == pytest.approx(
        (2.0 - 0.5 * math.sqrt(2 / 3)) / std
    )


def test_mean_std_prefers_an_ic_that_holds_in_every_block() -> None:
    steady = np.tile([0.04, 0.06], 50)
    flipping = steady.copy()
    flipping[25:50] *= -1  # the second quarter has the opposite sign
    assert Objective("mean_std").value(steady) > Objective("mean_std").value(flipping)
    assert Objective("mean_std").value(-steady) == pytest.approx(Objective("mean_std").value(steady))


def test_fitness_is_worst_when_undefined() -> None:
    short = np.array([0.1, 0.2, NAN, 0.3])
    for kind in ("icir", "tstat", "mean_std"):
        objective = Objective(kind)  # type: ignore[arg-type]
        assert objective.fitness(short, 3, 0.0, min_dates=5) == WORST_FITNESS
        assert objective.fitness(np.full(30, 0.05), 3, 0.0, min_dates=5) == WORST_FITNESS  # no variance
    value = Objective("tstat", hac_lag=2).value(np.arange(30.0))
    assert Objective("tstat", hac_lag=2).fitness(np.arange(30.0), 4, 0.01, 5) == pytest.approx(value - 0.04)


def test_objective_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="kind"):
        Objective("sharpe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hac_lag"):
        Objective("tstat", hac_lag=-1)
    with pytest.raises(ValueError, match="blocks"):
        Objective("mean_std", blocks=1)

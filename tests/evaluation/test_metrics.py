"""Factor metrics and fitness against independent references.

References: alphalens-reloaded on real S&P 500 data (IC, rank autocorrelation, quantile mean
returns, quantile turnover), scipy.stats spearmanr / pearsonr and pandas per date on random
panels with ties, constant cross-sections, all-NaN dates and too few names, and hand-worked
examples.
"""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from evaluation import (
    WORST_FITNESS,
    SurvivorThresholds,
    admit,
    coverage,
    factor_correlation,
    factor_summary,
    factor_turnover,
    forward_returns,
    half_life,
    ic,
    ic_decay,
    ic_stats,
    icir_fitness,
    long_short,
    monotonicity,
    prepare_label,
    quantile_returns,
    quantile_turnover,
    rank_autocorrelation,
    rank_ic,
    rank_ic_fast,
)
from tests.conftest import random_panel

# --------------------------------------------------------------------------- references


def scipy_corr_per_date(x: np.ndarray, y: np.ndarray, min_names: int, method) -> np.ndarray:
    """Per date: scipy correlation over the names finite in both; NaN below min_names pairs."""
    out = np.full(x.shape[0], np.nan)
    for t in range(x.shape[0]):
        ok = np.isfinite(x[t]) & np.isfinite(y[t])
        if ok.sum() < min_names:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns, and returns NaN, on constant input
            out[t] = method(x[t, ok], y[t, ok])[0]
    return out


def pandas_rank_autocorrelation(x: np.ndarray, lag: int) -> np.ndarray:
    """alphalens factor_rank_autocorrelation, re-stated on a wide frame."""
    ranks = pd.DataFrame(np.where(np.isfinite(x), x, np.nan)).rank(axis=1)
    return ranks.corrwith(ranks.shift(lag), axis=1).to_numpy()


def pandas_quantile_returns(x: np.ndarray, y: np.ndarray, quantiles: int) -> np.ndarray:
    """alphalens quantize_factor (pd.qcut per date; failing dates dropped) + per-bucket mean."""
    out = np.full((x.shape[0], quantiles), np.nan)
    for t in range(x.shape[0]):
        ok = np.isfinite(x[t]) & np.isfinite(y[t])
        if not ok.any():
            continue
        try:
            bucket = pd.qcut(pd.Series(x[t, ok]), quantiles, labels=False) + 1
        except ValueError:
            continue
        means = pd.Series(y[t, ok]).groupby(bucket.to_numpy()).mean()
        out[t, means.index.to_numpy() - 1] = means.to_numpy()
    return out


def python_quantile_turnover(x: np.ndarray, quantiles: int, top: bool) -> np.ndarray:
    """Share of names new to the top/bottom qcut bucket since the previous row (plain sets)."""
    members = []
    for t in range(x.shape[0]):
        ok = np.flatnonzero(np.isfinite(x[t]))
        try:
            bucket = pd.qcut(pd.Series(x[t, ok]), quantiles, labels=False).to_numpy() + 1
        except ValueError:
            members.append(set())
            continue
        members.append(set(ok[bucket == (quantiles if top else 1)]))
    out = np.full(x.shape[0], np.nan)
    for t in range(1, x.shape[0]):
        if members[t] and members[t - 1]:
            out[t] = len(members[t] - members[t - 1]) / len(members[t])
    return out


# --------------------------------------------------------------------------- fixtures

MIN_NAMES = 10


@pytest.fixture
def awkward(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(factor, label) 40 x 30 with ties, holes, and one special cross-section per date 3..10."""
    factor = np.round(random_panel(rng, t=40, n=30), 0)  # heavy ties
    label = np.round(rng.standard_normal((40, 30)), 2)
    label[rng.random(label.shape) < 0.1] = np.nan
    factor[3] = np.nan  # no factor at all
    factor[4] = 1.5  # constant factor
    label[5] = -0.25  # constant label
    factor[6, 9:] = np.nan  # 9 pairs (min_names - 1) ...
    label[6, :9] = 1.0 + np.arange(9)
    factor[6, :9] = np.arange(9.0)
    factor[7, 10:] = np.nan  # ... and exactly 10
    label[7, :10] = np.arange(10.0) ** 2
    factor[7, :10] = np.arange(10.0)[::-1]
    label[8] = np.nan  # no label
    factor[9, ::4] = np.inf  # inf is not valid
    factor[10, ::2] = -0.0  # -0.0 ties with 0.0
    factor[10, 1::2] = 0.0
    factor[10, 1::6] = 3.0
    return factor, label


@pytest.fixture(scope="module")
def real(shared_data) -> dict:
    """100 S&P 500 names x 250 dates: 5-day reversal factor, 1-day label (delay 1), via pandas."""
    daily = pd.read_parquet(
        shared_data / "us_sp500_5yr_daily.parquet", columns=["date", "instrument", "close"]
    )
    daily["date"] = pd.to_datetime(daily["date"])
    close = daily.pivot(index="date", columns="instrument", values="close").iloc[500:750, :100]
    factor = -(close / close.shift(5) - 1.0)
    label = close.shift(-2) / close.shift(-1) - 1.0
    clean = pd.DataFrame({"factor": factor.stack(), "1D": label.stack()}).dropna()
    clean.index.names = ["date", "asset"]
    factor_only = pd.DataFrame({"factor": factor.stack()}).dropna()
    factor_only.index.names = ["date", "asset"]
    return {
        "dates": close.index,
        "factor": factor.to_numpy(),
        "label": label.to_numpy(),
        "clean": clean,
        "factor_only": factor_only,
    }


def on_dates(values: np.ndarray, dates: pd.DatetimeIndex, wanted: pd.Index) -> np.ndarray:
    return pd.DataFrame(values, index=dates).loc[wanted].to_numpy().squeeze()


# --------------------------------------------------------------------------- IC and rank IC


def test_rank_ic_matches_scipy_spearman_on_awkward_dates(awkward) -> None:
    factor, label = awkward
    got = rank_ic(factor, label, min_names=MIN_NAMES)
    expected = scipy_corr_per_date(factor, label, MIN_NAMES, stats.spearmanr)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    assert np.isnan(got[[3, 4, 5, 6, 8]]).all()
    assert np.isfinite(got[[7, 9, 10]]).all()
    assert got[7] == pytest.approx(-1.0)


def test_ic_matches_scipy_pearson_on_awkward_dates(awkward) -> None:
    factor, label = awkward
    got = ic(factor, label, min_names=MIN_NAMES)
    expected = scipy_corr_per_date(factor, label, MIN_NAMES, stats.pearsonr)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    assert np.isnan(got[[3, 4, 5, 6, 8]]).all()
    assert np.isfinite(got[[7, 9, 10]]).all()


def test_rank_ic_orders_extreme_and_signed_zero_values_like_scipy(rng) -> None:
    special = np.array([-1e300, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1e-300, 1.0, 1.0, 1e300, 3.0, -1.0])
    # many values with equal high 32 bits (differing in low mantissa bits), plus exact repeats
    near_one = [1.0 + rng.permutation(size) * 2.0**-50 for size in (12, 120)]
    near_one[1][::7] = near_one[1][0]
    for values in (special, *near_one, -near_one[1]):
        label = rng.standard_normal(values.size)
        got = rank_ic(values[None, :], label[None, :], min_names=2)[0]
        assert got == pytest.approx(stats.spearmanr(values, label)[0], rel=1e-12, abs=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(2, 40)),
    seed=st.integers(0, 2**32 - 1),
    levels=st.sampled_from([2, 3, 10, 1000]),
    nan_share=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_rank_ic_matches_scipy_on_random_tied_panels(shape, seed, levels, nan_share) -> None:
    rng = np.random.default_rng(seed)
    factor = rng.integers(0, levels, shape).astype(float)
    label = rng.standard_normal(shape).round(1)
    factor[rng.random(shape) < nan_share] = np.nan
    label[rng.random(shape) < nan_share] = np.nan
    got = rank_ic(factor, label, min_names=3)
    expected = scipy_corr_per_date(factor, label, 3, stats.spearmanr)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@settings(max_examples=80, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 8), st.integers(2, 60)),
    seed=st.integers(0, 2**32 - 1),
    levels=st.sampled_from([2, 5, 0]),
    factor_holes=st.sampled_from([0.0, 0.05, 0.3]),
    label_decimals=st.sampled_from([0, 1, 8]),
    min_names=st.integers(2, 12),
)
def test_rank_ic_fast_matches_scipy_and_is_symmetric_bit_for_bit(
    shape, seed, levels, factor_holes, label_decimals, min_names
):
    rng = np.random.default_rng(seed)
    label = rng.standard_normal(shape).round(label_decimals)
    label[rng.random(shape) < 0.1] = np.nan
    factor = rng.integers(0, levels, shape).astype(float) if levels else rng.standard_normal(shape)
    factor[rng.random(shape) < factor_holes] = np.nan  # NaN where the label is valid (few, many)
    rows = slice(0, max(1, shape[0] - 1))
    got = rank_ic_fast(factor, prepare_label(label, rows=rows), min_names)
    expected = scipy_corr_per_date(factor[rows], label[rows], min_names, stats.spearmanr)
    np.testing.assert_allclose(got[rows], expected, rtol=1e-12, atol=1e-14)
    assert np.isnan(got[rows.stop :]).all()
    # the two sides are ranked by different code (the label's stored order re-walked over the
    # common names, the factor's word sort): swapping them gives the same bits
    swapped = rank_ic_fast(label, prepare_label(factor, rows=rows), min_names)
    np.testing.assert_array_equal(swapped, got)
    np.testing.assert_array_equal(rank_ic(factor, label, min_names, rows=rows), got)


@settings(max_examples=60, deadline=None)
@given(
    names=st.integers(64, 400),
    seed=st.integers(0, 2**32 - 1),
    copies=st.sampled_from([1, 3, 8]),
    run=st.sampled_from([2, 5, 20]),
)
def test_rank_ic_finishes_a_few_near_tied_runs_like_scipy(names, seed, copies, run) -> None:
    """Continuous values with a few runs of near-copies (last mantissa bits apart, shuffled) and
    exact copies: the runs tie on the sorting window and are finished alone on the full keys."""
    rng = np.random.default_rng(seed)
    factor = rng.standard_normal((3, names))
    for row in factor:
        for source in rng.choice(names, copies, replace=False):
            targets = rng.choice(names, run, replace=False)
            row[targets] = row[source] * (1.0 + rng.integers(-2, 3, run) * 2.0**-52)
    label = rng.standard_normal((3, names)).round(2)
    got = rank_ic(factor, label, min_names=3)
    expected = scipy_corr_per_date(factor, label, 3, stats.spearmanr)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(rank_ic(label, factor, min_names=3), got)


def test_rank_ic_fast_when_the_factor_misses_some_label_names(rng) -> None:
    label = np.round(rng.standard_normal((24, 50)), 1)  # many ties
    factor = rng.standard_normal((24, 50))
    for t in range(24):  # 0..11 names missing: label ranks adjusted (<= 8) or re-ranked
        factor[t, rng.choice(50, t % 12, replace=False)] = np.nan
    got = rank_ic_fast(factor, prepare_label(label))
    np.testing.assert_array_equal(got, rank_ic(factor, label))
    expected = scipy_corr_per_date(factor, label, MIN_NAMES, stats.spearmanr)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n_names", [2, 511, 512, 700])
def test_rank_ic_fast_orders_near_ties_like_scipy(rng, n_names) -> None:
    """Values that tie on the top bits of their sort key (price differences with rounding
    noise, a long run of values 2**-50 apart, extremes and signed zeros) are ordered exactly."""
    cents = rng.integers(-30, 30, n_names) * 0.01
    noisy_cents = (100.0 + cents) - 100.0  # 0.01 * k with float noise: near-ties, exact ties
    long_run = 1.0 + rng.permutation(n_names) * 2.0**-50
    special = np.resize([-1e300, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1e-300, 1.0, 1e300, np.nan], n_names)
    factor = np.vstack([noisy_cents, long_run, -long_run, special, rng.standard_normal(n_names)])
    label = np.round(rng.standard_normal(factor.shape), 1)
    label[:, 0] = np.nan  # a label name the factor keeps is dropped
    factor[2, -1] = np.nan  # a factor name the label keeps is missing
    got = rank_ic_fast(factor, prepare_label(label), min_names=2)
    expected = scipy_corr_per_date(factor, label, 2, stats.spearmanr)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(got, rank_ic(factor, label, min_names=2))


@pytest.mark.shared_data
def test_rank_ic_matches_alphalens_information_coefficient(real) -> None:
    from alphalens.performance import factor_information_coefficient

    reference = factor_information_coefficient(real["clean"])["1D"]
    series = rank_ic(real["factor"], real["label"], min_names=2)
    got = on_dates(series, real["dates"], reference.index)
    assert len(reference) > 200
    np.testing.assert_allclose(got, reference.to_numpy(), rtol=1e-12, atol=1e-14)


def test_min_names_below_two_is_rejected(awkward) -> None:
    with pytest.raises(ValueError, match="min_names"):
        rank_ic(*awkward, min_names=1)


def test_shape_mismatch_is_rejected(awkward) -> None:
    factor, label = awkward
    with pytest.raises(ValueError, match="same shape"):
        ic(factor, label[:, :-1])


def test_read_only_inputs_are_accepted_and_left_alone(awkward) -> None:
    factor, label = (a.copy() for a in awkward)
    for a in (factor, label):
        a.setflags(write=False)
    rank_ic(factor, label)
    rank_ic_fast(factor, prepare_label(label))
    quantile_returns(factor, label)
    np.testing.assert_array_equal(factor, awkward[0])
    np.testing.assert_array_equal(label, awkward[1])


# --------------------------------------------------------------------------- IC statistics


def test_ic_stats_against_the_statistics_module() -> None:
    series = np.array([0.05, np.nan, -0.02, 0.03, 0.0, 0.08, np.nan, 0.01])
    values = [0.05, -0.02, 0.03, 0.0, 0.08, 0.01]
    got = ic_stats(series, annualize=252)
    mean, std = statistics.mean(values), statistics.stdev(values)
    assert got["n"] == 6
    assert got["mean"] == pytest.approx(mean)
    assert got["std"] == pytest.approx(std)
    assert got["icir"] == pytest.approx(mean / std)
    assert got["t_stat"] == pytest.approx(mean / std * math.sqrt(6))
    assert got["hit_rate"] == pytest.approx(4 / 6)
    assert got["icir_annualized"] == pytest.approx(mean / std * math.sqrt(252))


def test_ic_stats_of_degenerate_series_are_nan_not_inf() -> None:
    empty = ic_stats(np.full(5, np.nan))
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("mean", "std", "hit_rate"))
    constant = ic_stats(np.full(30, 0.05))  # numpy's std of this is 1.4e-17, not 0
    assert constant["std"] == 0.0
    assert math.isnan(constant["icir"]) and math.isnan(constant["t_stat"])
    assert "icir_annualized" not in constant


# --------------------------------------------------------------------------- turnover


@pytest.mark.parametrize("lag", [1, 3])
def test_rank_autocorrelation_matches_pandas_restatement(awkward, lag) -> None:
    factor, _ = awkward
    got = rank_autocorrelation(factor, lag=lag)
    expected = pandas_rank_autocorrelation(factor, lag)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.shared_data
def test_rank_autocorrelation_matches_alphalens(real) -> None:
    from alphalens.performance import factor_rank_autocorrelation

    reference = factor_rank_autocorrelation(real["factor_only"])
    got = on_dates(rank_autocorrelation(real["factor"]), real["dates"], reference.index)
    assert np.isfinite(reference.to_numpy()).sum() > 200
    np.testing.assert_allclose(got, reference.to_numpy(), rtol=1e-12, atol=1e-14)
    assert factor_turnover(real["factor"]) == pytest.approx(1.0 - reference.mean())


@pytest.mark.shared_data
@pytest.mark.parametrize("which", ["top", "bottom"])
def test_quantile_turnover_matches_alphalens(real, which) -> None:
    from alphalens.performance import quantile_turnover as al_quantile_turnover
    from alphalens.utils import quantize_factor

    buckets = quantize_factor(real["factor_only"], quantiles=5)
    reference = al_quantile_turnover(buckets, 5 if which == "top" else 1)
    got = on_dates(quantile_turnover(real["factor"], 5, which), real["dates"], reference.index)
    assert np.isfinite(reference.to_numpy()).sum() > 200
    np.testing.assert_allclose(got, reference.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("which", ["top", "bottom"])
def test_quantile_turnover_matches_plain_sets_on_awkward_dates(awkward, which) -> None:
    factor, _ = awkward
    got = quantile_turnover(factor, 4, which)
    np.testing.assert_allclose(got, python_quantile_turnover(factor, 4, which == "top"))


def test_quantile_turnover_rejects_unknown_side(awkward) -> None:
    with pytest.raises(ValueError, match="top"):
        quantile_turnover(awkward[0], which="middle")


# --------------------------------------------------------------------------- quantile returns


@pytest.mark.parametrize("quantiles", [1, 3, 5])
def test_quantile_returns_match_pandas_qcut_on_awkward_dates(awkward, quantiles) -> None:
    factor, label = awkward
    got = quantile_returns(factor, label, quantiles)
    assert got.shape == (40, quantiles)
    np.testing.assert_allclose(got, pandas_quantile_returns(factor, label, quantiles), rtol=1e-12)


def test_quantile_returns_match_qcut_on_fine_grained_values(rng) -> None:
    factor = rng.standard_normal((30, 57)) * 10.0 ** rng.integers(-3, 3, (30, 1))
    factor[:, :7] = np.round(factor[:, :7])
    label = rng.standard_normal((30, 57))
    for q in (2, 5, 10):
        np.testing.assert_allclose(
            quantile_returns(factor, label, q),
            pandas_quantile_returns(factor, label, q),
            rtol=1e-12,
        )


@pytest.mark.shared_data
def test_quantile_returns_match_alphalens_mean_return_by_quantile(real) -> None:
    from alphalens.performance import mean_return_by_quantile
    from alphalens.utils import quantize_factor

    clean = real["clean"].copy()
    clean["factor_quantile"] = quantize_factor(clean, quantiles=5)
    mean_ret, _ = mean_return_by_quantile(clean, by_date=True, demeaned=False)
    reference = mean_ret["1D"].unstack(level="factor_quantile")
    series = quantile_returns(real["factor"], real["label"], 5)
    got = on_dates(series, real["dates"], reference.index)
    assert reference.shape[0] > 200
    np.testing.assert_allclose(got, reference.to_numpy(), rtol=1e-12, atol=1e-15)


def test_long_short_and_monotonicity_by_hand() -> None:
    qret = np.array([[0.01, 0.02, 0.03], [-0.01, np.nan, 0.05], [np.nan] * 3])
    np.testing.assert_allclose(long_short(qret), [0.02, 0.06, np.nan])
    assert monotonicity(qret) == pytest.approx(1.0)  # column means 0.0, 0.02, 0.04
    assert monotonicity(qret[:, ::-1]) == pytest.approx(-1.0)
    assert math.isnan(monotonicity(np.full((4, 5), np.nan)))


def test_monotonicity_is_spearman_of_mean_quantile_returns(rng) -> None:
    qret = rng.standard_normal((50, 7))
    expected = stats.spearmanr(np.arange(7), qret.mean(axis=0))[0]
    assert monotonicity(qret) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ decay, coverage, correlation


def test_ic_decay_is_mean_scipy_rank_ic_per_horizon(awkward, rng) -> None:
    factor, _ = awkward
    price = np.exp(rng.standard_normal(factor.shape).cumsum(axis=0) * 0.02)
    labels = {h: forward_returns(price, h) for h in (5, 1, 3)}
    got = ic_decay(factor, labels)
    assert list(got) == [1, 3, 5]
    for h, label in labels.items():
        reference = scipy_corr_per_date(factor, label, MIN_NAMES, stats.spearmanr)
        assert got[h] == pytest.approx(np.nanmean(reference), rel=1e-12)


def test_half_life_by_hand() -> None:
    # |IC| 0.10 -> 0.06 -> 0.04: halves (0.05) between 5 and 10, log-linearly
    expected = 5 + 5 * math.log(0.06 / 0.05) / math.log(0.06 / 0.04)
    assert half_life({1: 0.10, 5: -0.06, 10: 0.04}) == pytest.approx(expected)
    assert half_life({1: -0.1, 5: 0.05}) == pytest.approx(5.0)
    assert half_life({1: 0.1, 2: 0.0}) == pytest.approx(1.5)  # reaches 0: linear
    assert half_life({1: 0.1, 3: np.nan, 5: 0.025}) == pytest.approx(1 + 4 * 0.5)
    assert math.isnan(half_life({1: 0.1, 5: 0.09, 10: 0.08}))  # never halves
    assert math.isnan(half_life({1: np.nan, 5: 0.01}))
    assert math.isnan(half_life({1: 0.0, 5: 0.0}))
    assert math.isnan(half_life({}))


def test_coverage_by_hand() -> None:
    factor = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, 3.0]])
    price = np.array([[10.0, 10.0, np.nan], [10.0, np.nan, 10.0]])
    assert coverage(factor) == pytest.approx(3 / 6)
    assert coverage(factor, price) == pytest.approx(2 / 4)  # universe: (0,0) (0,1) (1,0) (1,2)
    assert coverage(factor, np.isfinite(price)) == pytest.approx(2 / 4)
    assert coverage(factor, price, rows=slice(1, 2)) == pytest.approx(1 / 2)
    assert math.isnan(coverage(factor, np.zeros((2, 3), dtype=bool)))


def test_factor_correlation_is_mean_scipy_spearman(awkward) -> None:
    factor, label = awkward
    reference = scipy_corr_per_date(factor, label, MIN_NAMES, stats.spearmanr)
    assert factor_correlation(factor, label) == pytest.approx(np.nanmean(reference), rel=1e-12)
    assert factor_correlation(factor, factor) == pytest.approx(1.0)


# --------------------------------------------------------------------------- rows segments

SEGMENT = slice(12, 31)


def _per_date_metrics(factor, label):
    return {
        "ic": lambda rows, f=factor, y=label: ic(f, y, rows=rows),
        "rank_ic": lambda rows, f=factor, y=label: rank_ic(f, y, rows=rows),
        "rank_ic_fast": lambda rows, f=factor, y=label: rank_ic_fast(f, prepare_label(y, rows)),
        "rank_autocorrelation": lambda rows, f=factor: rank_autocorrelation(f, 2, rows=rows),
        "quantile_turnover": lambda rows, f=factor: quantile_turnover(f, 3, "bottom", rows=rows),
        "quantile_returns": lambda rows, f=factor, y=label: quantile_returns(f, y, 4, rows=rows),
    }


PER_DATE_METRICS = [
    "ic",
    "rank_ic",
    "rank_ic_fast",
    "rank_autocorrelation",
    "quantile_turnover",
    "quantile_returns",
]


@pytest.mark.parametrize("name", PER_DATE_METRICS)
def test_rows_slice_equals_the_metric_on_sliced_arrays(awkward, name) -> None:
    factor, label = awkward
    on_segment = _per_date_metrics(factor, label)[name](SEGMENT)
    on_sliced = _per_date_metrics(factor[SEGMENT], label[SEGMENT])[name](None)
    np.testing.assert_array_equal(on_segment[SEGMENT], on_sliced)
    assert np.isnan(on_segment[: SEGMENT.start]).all()
    assert np.isnan(on_segment[SEGMENT.stop :]).all()
    mask = np.zeros(factor.shape[0], dtype=bool)
    mask[SEGMENT] = True
    np.testing.assert_array_equal(_per_date_metrics(factor, label)[name](mask), on_segment)


def test_rows_on_scalar_metrics_equal_sliced_arrays(awkward) -> None:
    factor, label = awkward
    s = SEGMENT
    assert coverage(factor, label, rows=s) == coverage(factor[s], label[s])
    assert factor_correlation(factor, label, rows=s) == factor_correlation(factor[s], label[s])
    assert factor_turnover(factor, rows=s) == factor_turnover(factor[s])
    qret = quantile_returns(factor, label)
    np.testing.assert_array_equal(long_short(qret, rows=s)[s], long_short(qret[s]))
    assert monotonicity(qret, rows=s) == monotonicity(qret[s])
    series = rank_ic(factor, label)
    assert ic_stats(series, rows=s) == ic_stats(series[s])


def test_rows_must_be_a_contiguous_slice_or_a_full_length_mask(awkward) -> None:
    factor, label = awkward
    with pytest.raises(ValueError, match="step"):
        rank_ic(factor, label, rows=slice(0, 20, 2))
    with pytest.raises(ValueError, match="boolean mask"):
        rank_ic(factor, label, rows=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="boolean mask"):
        rank_ic(factor, label, rows=np.arange(5))


# --------------------------------------------------------------------------- factor summary


def test_factor_summary_against_pandas_restatements(rng) -> None:
    price = np.exp(rng.standard_normal((80, 25)).cumsum(axis=0) * 0.02) * 50.0
    price[:20, 0] = np.nan  # late listing
    price[rng.random(price.shape) < 0.05] = np.nan
    close = pd.DataFrame(price)
    factor = -(close / close.shift(3) - 1.0)
    segment = slice(5, 70)
    summary = factor_summary(factor.to_numpy(), price, horizons=(1, 5), rows=segment)

    for h in (1, 5):
        label = close.shift(-(1 + h)) / close.shift(-1) - 1.0
        both = factor.notna() & label.notna() & (np.arange(80) >= 5)[:, None]
        both &= (np.arange(80) < 70)[:, None]
        enough = both.sum(axis=1) >= MIN_NAMES
        fr, lr = factor.where(both), label.where(both)
        rank_series = fr.rank(axis=1).corrwith(lr.rank(axis=1), axis=1)[enough]
        pearson_series = fr.corrwith(lr, axis=1)[enough]
        assert summary[f"rank_ic_mean_h{h}"] == pytest.approx(rank_series.mean(), rel=1e-10)
        assert summary[f"rank_ic_std_h{h}"] == pytest.approx(rank_series.std(), rel=1e-10)
        assert summary[f"ic_mean_h{h}"] == pytest.approx(pearson_series.mean(), rel=1e-10)
        assert summary[f"n_dates_h{h}"] == enough.sum()
        assert summary["decay"][h] == summary[f"rank_ic_mean_h{h}"]
    assert summary["rank_ic_mean"] == summary["rank_ic_mean_h1"]

    autocorr = pandas_rank_autocorrelation(factor.to_numpy()[segment], 1)
    assert summary["turnover"] == pytest.approx(1.0 - np.nanmean(autocorr), rel=1e-10)
    in_universe = close.notna().to_numpy()[segment]
    expected_coverage = (factor.notna().to_numpy()[segment] & in_universe).sum() / in_universe.sum()
    assert summary["coverage"] == pytest.approx(expected_coverage)
    top = python_quantile_turnover(factor.to_numpy()[segment], 5, top=True)
    assert summary["top_turnover"] == pytest.approx(np.nanmean(top), rel=1e-12)

    for key, value in summary.items():
        if key != "decay":
            assert isinstance(value, float) and not math.isinf(value), key


# --------------------------------------------------------------------------- fitness


def test_icir_fitness_by_hand() -> None:
    series = np.array([0.1, np.nan, 0.2, 0.3])
    assert icir_fitness(series, size=5, parsimony=0.01, min_dates=3) == pytest.approx(2.0 - 0.05)
    assert icir_fitness(-series, size=5, parsimony=0.01, min_dates=3) == pytest.approx(1.95)
    assert icir_fitness(series, size=5, min_dates=4) == WORST_FITNESS
    assert icir_fitness(np.full(30, 0.05), size=1) == WORST_FITNESS
    assert icir_fitness(np.full(30, np.nan), size=1) == WORST_FITNESS


def test_admit_follows_the_training_sign_and_the_thresholds() -> None:
    rules = SurvivorThresholds(min_abs_rank_ic=0.02, max_turnover=0.5, min_coverage=0.8)
    good = {"rank_ic_mean": -0.03, "turnover": 0.3, "coverage": 0.9}
    assert admit(good, -1.0, rules) == (True, "admitted")
    ok, reason = admit(good, 1.0, rules)
    assert not ok and "rank IC" in reason
    assert not admit({**good, "turnover": 0.6}, -1.0, rules)[0]
    assert not admit({**good, "coverage": 0.5}, -1.0, rules)[0]
    assert not admit({**good, "rank_ic_mean": np.nan}, -1.0, rules)[0]
    assert not admit(good, 0.0, rules)[0]
    with pytest.raises(KeyError, match="coverage"):
        admit({"rank_ic_mean": 0.1, "turnover": 0.1}, 1.0, rules)

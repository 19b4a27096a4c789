"""Cross-sectional operators against pandas, scipy and numpy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from numpy.testing import assert_allclose, assert_array_equal

from operators import REGISTRY, Kind
from operators import cross_section as cs
from tests.conftest import random_panel

NAN = np.nan
CROSS_SECTION = [
    "rank", "zscore", "scale", "demean", "cs_resid",
    "group_neutralize", "group_rank", "group_zscore",
]  # fmt: skip
GROUP_CODES = np.array([0.0, 3.0, 250.0, 417.0])
EMPTY_ROW, SINGLE_ROW, CONSTANT_ROW = 5, 6, 7


def read_only(x: np.ndarray) -> np.ndarray:
    x.flags.writeable = False
    return x


def make_panel(rng: np.random.Generator, t: int = 40, n: int = 15) -> np.ndarray:
    """Random panel plus: a date with no valid value, one valid name, a constant date, ties."""
    x = random_panel(rng, t=t, n=n)
    x[EMPTY_ROW] = NAN
    x[SINGLE_ROW] = NAN
    x[SINGLE_ROW, 4] = 3.0
    x[CONSTANT_ROW] = np.where(np.isnan(x[CONSTANT_ROW]), NAN, 5.0)
    x[20:30] = np.round(x[20:30] / 3.0)
    return read_only(x)


def make_groups(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Codes up to a few hundred, some names without a label, one name alone in its group."""
    g = rng.choice(GROUP_CODES, size=shape)
    g[rng.random(shape) < 0.1] = NAN
    g[:, -1] = 999.0
    return read_only(g)


def per_valid_row(x: np.ndarray, reduce) -> np.ndarray:
    """Apply `reduce` to each date's valid values; NaN elsewhere."""
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        valid = ~np.isnan(x[t])
        if valid.any():
            out[t, valid] = reduce(x[t, valid])
    return out


def long_frame(x: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    t, n = x.shape
    return pd.DataFrame({"date": np.repeat(np.arange(t), n), "g": g.ravel(), "x": x.ravel()})


def pandas_group(x: np.ndarray, g: np.ndarray, how: str) -> np.ndarray:
    """The group operator computed by pandas groupby on the long (date, instrument) table."""
    frame = long_frame(x, g)
    grouped = frame.groupby(["date", "g"])["x"]
    if how == "neutralize":
        result = frame["x"] - grouped.transform("mean")
    elif how == "rank":
        result = grouped.rank(pct=True)
    else:
        result = (frame["x"] - grouped.transform("mean")) / grouped.transform("std", ddof=0)
    return result.to_numpy(dtype=np.float64).reshape(x.shape)


# --- declarations ------------------------------------------------------------------------


def test_declarations():
    declared = {spec.name for spec in REGISTRY.values() if spec.family == "cross_section"}
    assert declared == set(CROSS_SECTION)
    for name in CROSS_SECTION:
        assert REGISTRY[name].lookback({"a": 1.0}) == 0
    for name in ("group_neutralize", "group_rank", "group_zscore"):
        assert [a.kind for a in REGISTRY[name].args] == [Kind.SERIES, Kind.GROUP]
    assert REGISTRY["scale"].args[1].default == 1.0


# --- rank --------------------------------------------------------------------------------


def test_rank_matches_pandas_pct_rank(rng):
    x = make_panel(rng)
    assert_allclose(cs.rank(x), pd.DataFrame(x).rank(axis=1, pct=True).to_numpy(), rtol=1e-15)


def test_rank_with_heavy_ties_matches_pandas(rng):
    x = rng.integers(0, 4, size=(30, 11)).astype(np.float64)
    x[rng.random(x.shape) < 0.2] = NAN
    read_only(x)
    assert_allclose(cs.rank(x), pd.DataFrame(x).rank(axis=1, pct=True).to_numpy(), rtol=1e-15)


def awkward_rank_panels(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Panels that stress rank's sort keys: values ulps apart beside a huge one (so that they
    share keys: more than 32 on some dates, fewer on others), signs mixed with zeros of both
    signs, huge outliers and infinities, and many columns."""
    ulps = 1.0 + rng.integers(0, 1 << 10, size=(6, 200)) * np.finfo(float).eps
    ulps[:, 0] = 1e300
    ulps[3:, 25:] = NAN
    mixed = rng.choice([-1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, np.inf, -np.inf, NAN], size=(20, 40))
    mixed[:, :20] = rng.standard_normal((20, 20)) * 10.0 ** rng.integers(-200, 200, (20, 20))
    wide = rng.integers(0, 1000, size=(2, 70_000)).astype(np.float64)
    wide[rng.random(wide.shape) < 0.1] = NAN
    return {"ulps": ulps, "mixed": mixed, "wide": wide}


@pytest.mark.parametrize("name", ["ulps", "mixed", "wide"])
def test_rank_matches_pandas_on_awkward_values(name):
    x = read_only(awkward_rank_panels(np.random.default_rng(7))[name])
    assert_array_equal(cs.rank(x), pd.DataFrame(x).rank(axis=1, pct=True).to_numpy())


def test_rank_of_adjacent_shared_buckets_at_both_ends_matches_scipy(rng):
    """Runs of keys sharing a bucket side by side, first and last on the date: ties and values
    ulps apart (one bucket beside a huge value), in random column order."""
    eps = np.finfo(float).eps
    base = np.array(
        [1.0, 1.0, 1.0 + eps, 1.0 + 2 * eps, 1.0 + 2 * eps, 7.0, 7.0, 1e300, 1e300, 1e300 * (1 + eps)]
    )
    x = np.stack([rng.permutation(base) for _ in range(40)])
    x[::3, rng.integers(0, base.size)] = NAN
    want = per_valid_row(x, lambda v: scipy.stats.rankdata(v) / v.size)
    assert_array_equal(cs.rank(read_only(x)), want)


def test_rank_edge_dates(rng):
    out = cs.rank(make_panel(rng))
    assert np.isnan(out[EMPTY_ROW]).all()
    assert out[SINGLE_ROW, 4] == 1.0 and np.isnan(np.delete(out[SINGLE_ROW], 4)).all()
    valid = out[CONSTANT_ROW][~np.isnan(out[CONSTANT_ROW])]
    assert_allclose(valid, (valid.size + 1) / (2 * valid.size))
    assert np.nanmin(out) > 0.0 and np.nanmax(out) == 1.0


# --- zscore, demean, scale ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")
def test_zscore_matches_scipy_on_valid_values(rng):
    x = make_panel(rng)
    with np.errstate(all="ignore"):
        want = per_valid_row(x, lambda v: scipy.stats.zscore(v, ddof=0))
    assert_allclose(cs.zscore(x), want, rtol=1e-10, atol=1e-12)


def test_zscore_is_nan_for_constant_single_and_empty_dates(rng):
    out = cs.zscore(make_panel(rng))
    assert np.isnan(out[[EMPTY_ROW, SINGLE_ROW, CONSTANT_ROW]]).all()


def test_zscore_of_equal_values_is_nan_despite_rounding_in_the_mean():
    x = read_only(np.array([[0.1, 0.1, 0.1, NAN], [0.1, 0.1, 0.1, 0.1]]))
    assert np.isnan(cs.zscore(x)).all()


def test_demean_matches_pandas(rng):
    x = make_panel(rng)
    frame = pd.DataFrame(x)
    want = frame.sub(frame.mean(axis=1), axis=0).to_numpy()
    assert_allclose(cs.demean(x), want, rtol=1e-12, atol=1e-12)
    assert np.isnan(cs.demean(x)[EMPTY_ROW]).all() and cs.demean(x)[SINGLE_ROW, 4] == 0.0


@pytest.mark.parametrize("a", [1.0, 2.5, -1.0])
def test_scale_matches_pandas_and_sums_to_a(rng, a):
    x = make_panel(rng) - 50.0
    x[9] = np.where(np.isnan(x[9]), NAN, 0.0)
    read_only(x)
    frame = pd.DataFrame(x)
    with np.errstate(all="ignore"):
        want = frame.mul(a).div(frame.abs().sum(axis=1), axis=0).to_numpy()
    out = cs.scale(x, a)
    assert_allclose(out, want, rtol=1e-14)
    assert np.isnan(out[[EMPTY_ROW, 9]]).all()
    gross = np.nansum(np.abs(out), axis=1)
    has_values = ~np.isnan(out).all(axis=1)
    assert_allclose(gross[has_values], abs(a), rtol=1e-12)


def test_scale_default_is_one(rng):
    x = make_panel(rng)
    assert_array_equal(cs.scale(x), cs.scale(x, 1.0))


# --- cs_resid ----------------------------------------------------------------------------


def lstsq_residuals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        both = ~(np.isnan(x[t]) | np.isnan(y[t]))
        if both.sum() < 3 or np.ptp(y[t, both]) == 0:
            continue
        design = np.column_stack([np.ones(both.sum()), y[t, both]])
        coef, *_ = np.linalg.lstsq(design, x[t, both], rcond=None)
        out[t, both] = x[t, both] - design @ coef
    return out


def test_cs_resid_matches_lstsq_per_date(rng):
    x = make_panel(rng)
    y = random_panel(rng, t=x.shape[0], n=x.shape[1])
    y[11, 4:] = NAN  # at most 2 pairs: x is NaN in columns 0 and 2 on this date
    y[12] = 4.0  # constant regressor
    read_only(y)
    got = cs.cs_resid(x, y)
    want = lstsq_residuals(x, y)
    assert_allclose(got, want, rtol=1e-8, atol=1e-8)
    assert np.isnan(got[12]).all()
    assert np.isnan(got[11]).all()
    assert (np.isnan(got) == np.isnan(want)).all()


def test_cs_resid_of_an_exact_line_is_zero_and_needs_three_pairs():
    y = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, NAN, NAN]])
    x = read_only(3.0 * y + 1.0)
    out = cs.cs_resid(x, read_only(y))
    assert_allclose(out[0], 0.0, atol=1e-12)
    assert np.isnan(out[1]).all()


# --- group operators ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["neutralize", "rank", "zscore"])
def test_group_ops_match_pandas_groupby(rng, how):
    x = make_panel(rng)
    g = make_groups(rng, x.shape)
    with np.errstate(all="ignore"):
        want = pandas_group(x, g, how)
    got = REGISTRY[f"group_{how}"].kernel(x, g)
    assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.isnan(got[np.isnan(g)]).all()


@pytest.mark.parametrize("how", ["neutralize", "rank", "zscore"])
def test_group_labels_that_are_not_small_integer_codes(rng, how):
    x = make_panel(rng)
    labels = rng.choice(np.array([-2.5, 0.5, 7.0, 1e9]), size=x.shape)
    labels[rng.random(x.shape) < 0.1] = NAN
    read_only(labels)
    with np.errstate(all="ignore"):
        want = pandas_group(x, labels, how)
    assert_allclose(REGISTRY[f"group_{how}"].kernel(x, labels), want, rtol=1e-10, atol=1e-12)


def test_group_edge_cases():
    x = read_only(np.array([[1.0, 2.0, 3.0, 7.0, 7.0, NAN, 4.0]]))
    g = read_only(np.array([[0.0, 0.0, NAN, 300.0, 300.0, 0.0, 5.0]]))
    assert_allclose(cs.group_neutralize(x, g), [[-0.5, 0.5, NAN, 0.0, 0.0, NAN, 0.0]])
    assert_allclose(cs.group_rank(x, g), [[0.5, 1.0, NAN, 0.75, 0.75, NAN, 1.0]])
    assert_allclose(cs.group_zscore(x, g), [[-1.0, 1.0, NAN, NAN, NAN, NAN, NAN]])


def test_group_ops_on_real_sp500_returns_by_sector(shared_data):
    columns = ["date", "instrument", "close", "sector"]
    daily = pd.read_parquet(shared_data / "us_sp500_5yr_daily.parquet", columns=columns)
    close = daily.pivot(index="date", columns="instrument", values="close").iloc[-120:]
    returns = close.pct_change(fill_method=None).to_numpy()
    sectors = daily.drop_duplicates("instrument").set_index("instrument")["sector"]
    codes = pd.Series(pd.factorize(sectors.reindex(close.columns))[0], dtype=np.float64)
    g = np.tile(codes.replace(-1.0, NAN).to_numpy(), (returns.shape[0], 1))
    x, g = read_only(np.ascontiguousarray(returns)), read_only(g)
    assert_allclose(cs.rank(x), pd.DataFrame(x).rank(axis=1, pct=True).to_numpy(), rtol=1e-15)
    for name, how in [("group_neutralize", "neutralize"), ("group_rank", "rank")]:
        assert_allclose(REGISTRY[name].kernel(x, g), pandas_group(x, g, how), rtol=1e-9, atol=1e-12)


# --- contract shared by all ----------------------------------------------------------------


def call(name: str, x: np.ndarray, other: np.ndarray, g: np.ndarray) -> np.ndarray:
    kinds = [a.kind for a in REGISTRY[name].args if a.default is None]
    extra = {Kind.SERIES: other, Kind.GROUP: g}
    return REGISTRY[name].kernel(x, *(extra[k] for k in kinds[1:]))


@pytest.mark.parametrize("name", CROSS_SECTION)
def test_no_lookahead_no_inf_and_inputs_untouched(rng, name):
    x = make_panel(rng)
    other = read_only(random_panel(rng, t=x.shape[0], n=x.shape[1]))
    g = make_groups(rng, x.shape)
    before = [x.copy(), other.copy(), g.copy()]
    full = call(name, x, other, g)
    assert full.shape == x.shape and full.dtype == np.float64 and full.flags.c_contiguous
    assert not np.isinf(full).any()
    assert np.isnan(full[np.isnan(x)]).all()
    for arg, copy in zip((x, other, g), before, strict=True):
        assert_array_equal(arg, copy)
    changed = x.copy()
    changed[25:] = rng.standard_normal(changed[25:].shape) * 1e6
    assert_array_equal(call(name, read_only(changed), other, g)[:25], full[:25])


@pytest.mark.parametrize("name", CROSS_SECTION)
def test_huge_values_never_give_inf(rng, name):
    x = rng.choice(np.array([1.7e308, -1.7e308, 1e300, 0.0, 1.0, NAN]), size=(6, 8))
    g = read_only(rng.choice(np.array([0.0, 1.0]), size=x.shape))
    out = call(name, read_only(x), read_only(x[::-1].copy()), g)
    assert not np.isinf(out).any()

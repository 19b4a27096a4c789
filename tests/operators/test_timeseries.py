"""Time-series operators against independent references: pandas, scipy, loops, worked examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from operators import REGISTRY, Kind
from operators import timeseries as ts
from tests.conftest import random_panel

NAN = np.nan
ROWS, COLS = 60, 12
WINDOWS = (1, 2, 5, 20, ROWS + 15)
LAGS = (0, 1, 5, ROWS + 3)
SHIFTS = ("delay", "delta", "pct_change")
WINDOWED = (
    "ts_sum", "ts_mean", "ts_std", "ts_var", "ts_min", "ts_max", "ts_argmin", "ts_argmax",
    "ts_rank", "ts_product", "ts_zscore", "ts_skew", "ts_kurt", "ts_median", "decay_linear",
    "ts_corr", "ts_cov", "ts_slope", "ts_cv",
)  # fmt: skip
TIMESERIES = SHIFTS + WINDOWED
TOLERANCE = {"rtol": 1e-9, "atol": 1e-9}


def read_only(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=float)
    x.flags.writeable = False
    return x


def make_x() -> np.ndarray:
    """random_panel (NaN holes, late listing, constant stretch, all-NaN column), ties and zeros."""
    x = random_panel(np.random.default_rng(2024), t=ROWS, n=COLS)
    x[:, 3] = np.round(x[:, 3] / 2.0)  # ties inside windows
    x[40:44, 4] = 0.0  # zeros (pct_change denominators, cv means)
    return read_only(x)


def make_y(x: np.ndarray) -> np.ndarray:
    """A second series correlated with x, with its own NaN holes and constant stretch."""
    rng = np.random.default_rng(99)
    y = x + rng.standard_normal(x.shape) * 2.0
    y[rng.random(x.shape) < 0.1] = NAN
    y[30:40, 5] = -3.0
    y[:, 6] = x[:, 6]  # identical series: correlation 1
    return read_only(y)


X = make_x()
Y = make_y(X)


def call(name: str, x: np.ndarray, y: np.ndarray, d: int) -> np.ndarray:
    series = sum(arg.kind is Kind.SERIES for arg in REGISTRY[name].args)
    return REGISTRY[name].kernel(*((x, y)[:series]), d)


def window_rows(t: int, d: int) -> range:
    return range(max(0, t - d + 1), t + 1)


# ----------------------------------------------------------------------------- pandas rolling


def rolling(x: np.ndarray, d: int, min_periods: int, method: str, *args, **kwargs) -> np.ndarray:
    """pandas rolling(d, min_periods).method(...); all NaN when d < min_periods."""
    if d < min_periods:
        return np.full(x.shape, NAN)
    frame = pd.DataFrame(x).rolling(d, min_periods=min_periods)
    return np.array(getattr(frame, method)(*args, **kwargs), dtype=float)


def pandas_rank(x: np.ndarray, d: int) -> np.ndarray:
    return np.where(np.isnan(x), NAN, rolling(x, d, 1, "rank", pct=True))


def pandas_zscore(x: np.ndarray, d: int) -> np.ndarray:
    std = rolling(x, d, 2, "std")
    with np.errstate(all="ignore"):
        return np.where(std == 0, NAN, (x - rolling(x, d, 2, "mean")) / std)


def pandas_cv(x: np.ndarray, d: int) -> np.ndarray:
    mean = rolling(x, d, 2, "mean")
    with np.errstate(all="ignore"):
        return np.where(mean == 0, NAN, rolling(x, d, 2, "std") / np.abs(mean))


PANDAS_REFERENCES = {
    "ts_sum": lambda x, d: rolling(x, d, 1, "sum"),
    "ts_mean": lambda x, d: rolling(x, d, 1, "mean"),
    "ts_std": lambda x, d: rolling(x, d, 2, "std"),
    "ts_var": lambda x, d: rolling(x, d, 2, "var"),
    "ts_min": lambda x, d: rolling(x, d, 1, "min"),
    "ts_max": lambda x, d: rolling(x, d, 1, "max"),
    "ts_median": lambda x, d: rolling(x, d, 1, "median"),
    "ts_skew": lambda x, d: rolling(x, d, 3, "skew"),
    "ts_kurt": lambda x, d: rolling(x, d, 4, "kurt"),
    "ts_product": lambda x, d: rolling(x, d, 1, "apply", np.nanprod, raw=True),
    "ts_rank": pandas_rank,
    "ts_zscore": pandas_zscore,
    "ts_cv": pandas_cv,
}


# pandas updates skew and kurt online, which drifts by ~1e-8 after a level shift; the scipy test
# below pins them per window.
LOOSE = {"ts_skew": {"rtol": 1e-6, "atol": 1e-6}, "ts_kurt": {"rtol": 1e-6, "atol": 1e-6}}


@pytest.mark.parametrize("d", WINDOWS)
@pytest.mark.parametrize("name", sorted(PANDAS_REFERENCES))
def test_matches_pandas_rolling(name: str, d: int) -> None:
    tolerance = LOOSE.get(name, TOLERANCE)
    assert_allclose(call(name, X, Y, d), PANDAS_REFERENCES[name](X, d), **tolerance)


def scipy_moment(x: np.ndarray, d: int, name: str) -> np.ndarray:
    """Bias-corrected skew / excess kurtosis of each window's valid values, NaN when constant."""
    needed, moment = (3, scipy.stats.skew) if name == "ts_skew" else (4, scipy.stats.kurtosis)
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        for n in range(x.shape[1]):
            values = x[window_rows(t, d), n]
            values = values[~np.isnan(values)]
            if values.size >= needed and values.min() < values.max():
                out[t, n] = moment(values, bias=False)
    return out


@pytest.mark.parametrize("d", (5, 20))
@pytest.mark.parametrize("name", ["ts_skew", "ts_kurt"])
def test_higher_moments_match_scipy_per_window(name: str, d: int) -> None:
    assert_allclose(call(name, X, Y, d), scipy_moment(X, d, name), **TOLERANCE)


def pandas_pairwise(x: np.ndarray, y: np.ndarray, d: int, method: str) -> np.ndarray:
    """Per column, pandas rolling corr/cov of x and y masked to the rows where both are valid."""
    both = ~np.isnan(x) & ~np.isnan(y)
    xs, ys = np.where(both, x, NAN), np.where(both, y, NAN)
    if d < 2:
        return np.full(x.shape, NAN)
    out = np.column_stack([
        getattr(pd.Series(xs[:, n]).rolling(d, min_periods=2), method)(pd.Series(ys[:, n]))
        for n in range(x.shape[1])
    ])  # fmt: skip
    if method == "corr":
        constant = (rolling(xs, d, 1, "max") == rolling(xs, d, 1, "min")) | (
            rolling(ys, d, 1, "max") == rolling(ys, d, 1, "min")
        )
        out[constant] = NAN
    return out


@pytest.mark.parametrize("d", WINDOWS)
@pytest.mark.parametrize("name", ["ts_corr", "ts_cov"])
def test_pairwise_matches_pandas_on_rows_where_both_are_valid(name: str, d: int) -> None:
    expected = pandas_pairwise(X, Y, d, name.removeprefix("ts_"))
    assert_allclose(call(name, X, Y, d), expected, **TOLERANCE)


@pytest.mark.parametrize("name", ["ts_corr", "ts_cov"])
def test_pairwise_is_symmetric(name: str) -> None:
    assert_array_equal(call(name, X, Y, 5), call(name, Y, X, 5))


def test_corr_of_a_series_with_itself_is_one_where_it_varies() -> None:
    corr = ts.ts_corr(X, Y, 5)[:, 6]
    varying = ts.ts_std(X, 5)[:, 6] > 0
    assert_allclose(corr[varying], 1.0, rtol=0, atol=1e-12)
    assert np.isnan(corr[~varying]).all()


# -------------------------------------------------------------------------------- plain loops


def loop_extreme(x: np.ndarray, d: int, largest: bool, position: bool) -> np.ndarray:
    """Per window: the max (min) of the valid values at the latest row holding it, or its slot."""
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        for n in range(x.shape[1]):
            valid = [k for k in window_rows(t, d) if not np.isnan(x[k, n])]
            if valid:
                extreme = (max if largest else min)(x[k, n] for k in valid)
                latest = max(k for k in valid if x[k, n] == extreme)  # -0.0 == 0.0
                out[t, n] = d - (t - latest) if position else x[latest, n]
    return np.where(np.isinf(out), NAN, out)


def loop_decay_linear(x: np.ndarray, d: int) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        rows = np.array(window_rows(t, d))
        weights = d - (t - rows)
        for n in range(x.shape[1]):
            valid = ~np.isnan(x[rows, n])
            if valid.any():
                out[t, n] = np.average(x[rows, n][valid], weights=weights[valid])
    return out


def loop_slope(x: np.ndarray, d: int) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        rows = np.array(window_rows(t, d))
        for n in range(x.shape[1]):
            valid = ~np.isnan(x[rows, n])
            if valid.sum() >= 2:
                out[t, n] = np.polyfit(rows[valid], x[rows, n][valid], 1)[0]
    return out


def loop_shift(x: np.ndarray, d: int, name: str) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t in range(d, x.shape[0]):
        for n in range(x.shape[1]):
            now, before = x[t, n], x[t - d, n]
            if name == "delay":
                out[t, n] = before
            elif name == "delta":
                out[t, n] = now - before
            elif before != 0 and not np.isnan(before):
                out[t, n] = now / before - 1.0
    return out


LOOP_REFERENCES = {
    "ts_argmax": lambda x, d: loop_extreme(x, d, largest=True, position=True),
    "ts_argmin": lambda x, d: loop_extreme(x, d, largest=False, position=True),
    "decay_linear": loop_decay_linear,
    "ts_slope": loop_slope,
}


@pytest.mark.parametrize("d", WINDOWS)
@pytest.mark.parametrize("name", sorted(LOOP_REFERENCES))
def test_matches_plain_loops(name: str, d: int) -> None:
    assert_allclose(call(name, X, Y, d), LOOP_REFERENCES[name](X, d), **TOLERANCE)


@pytest.mark.parametrize("d", LAGS)
@pytest.mark.parametrize("name", SHIFTS)
def test_shifts_match_plain_loops(name: str, d: int) -> None:
    assert_array_equal(call(name, X, Y, d), loop_shift(X, d, name))


def test_pct_change_is_nan_where_the_old_value_is_zero() -> None:
    x = read_only([[2.0], [0.0], [3.0], [NAN], [4.0], [-0.0], [1.0]])
    assert_array_equal(ts.pct_change(x, 1)[:, 0], [NAN, -1.0, NAN, NAN, NAN, -1.0, NAN])


# ------------------------------------------------------------------------ hand-worked examples


def test_argmax_and_argmin_hand_worked_with_ties_and_nan() -> None:
    x = read_only(np.array([[1.0, 3.0, 3.0, 2.0, NAN, NAN, NAN]]).T)
    # windows of 3 slots, today is slot 3; at the start the missing rows are the leading slots
    assert_array_equal(ts.ts_argmax(x, 3)[:, 0], [3, 3, 3, 2, 1, 1, NAN])
    assert_array_equal(ts.ts_argmin(x, 3)[:, 0], [3, 2, 1, 3, 2, 1, NAN])
    assert_array_equal(ts.ts_argmax(x, 1)[:, 0], [1, 1, 1, 1, NAN, NAN, NAN])


def test_extremes_hand_worked_with_infinities_and_signed_zeros() -> None:
    x = read_only(np.array([[-np.inf, NAN, 0.0, -0.0, NAN, NAN], [NAN, NAN, NAN, -np.inf, NAN, NAN]]).T)
    # an infinite extreme is found (it has a slot) but is no value; among 0.0 and -0.0 the latest wins
    expected = {
        "ts_max": [[NAN, NAN, 0.0, -0.0, -0.0, -0.0], [NAN] * 6],
        "ts_argmax": [[5, 4, 5, 5, 4, 3], [NAN, NAN, NAN, 5, 4, 3]],
        "ts_min": [[NAN, NAN, NAN, NAN, NAN, -0.0], [NAN] * 6],
        "ts_argmin": [[5, 4, 3, 2, 1, 3], [NAN, NAN, NAN, 5, 4, 3]],
    }
    for name, want in expected.items():
        got = call(name, x, x, 5).T
        assert_array_equal(got, want, err_msg=name)
        assert_array_equal(np.signbit(got), np.signbit(want), err_msg=name)


def test_decay_linear_hand_worked_weights() -> None:
    x = read_only(np.array([[1.0, 2.0, NAN, 4.0, NAN, NAN, NAN]]).T)
    expected = [
        1.0,  # 3*1 / 3
        (2 * 1.0 + 3 * 2.0) / 5,
        (1 * 1.0 + 2 * 2.0) / 3,  # today is NaN: its weight 3 is left out
        (1 * 2.0 + 3 * 4.0) / 4,
        (2 * 4.0) / 2,
        (1 * 4.0) / 1,
        NAN,
    ]
    assert_allclose(ts.decay_linear(x, 3)[:, 0], expected, rtol=1e-15)


def test_minimum_counts_and_constant_windows() -> None:
    x = read_only(np.array([[0.1, NAN, 0.1, 0.1, 0.1, 0.1, 0.7]]).T)
    assert_array_equal(ts.ts_std(x, 4)[:4, 0], [NAN, NAN, 0.0, 0.0])
    assert_array_equal(ts.ts_mean(x, 4)[:6, 0], 0.1)  # exact for a constant window
    assert_array_equal(ts.ts_zscore(x, 4)[:6, 0], NAN)
    assert_array_equal(ts.ts_skew(x, 4)[:6, 0], NAN)
    assert_array_equal(ts.ts_kurt(x, 4)[:6, 0], NAN)
    assert_array_equal(ts.ts_slope(x, 4)[:6, 0], [NAN, NAN, 0.0, 0.0, 0.0, 0.0])
    assert_array_equal(ts.ts_corr(x, x, 4)[:6, 0], NAN)
    assert np.isfinite(ts.ts_zscore(x, 4)[6, 0])


def test_all_nan_windows_give_nan() -> None:
    x = read_only(np.full((5, 2), NAN))
    for name in WINDOWED:
        assert np.isnan(call(name, x, x, 3)).all(), name


def test_invalid_windows_and_lags_are_rejected() -> None:
    with pytest.raises(ValueError, match="window"):
        ts.ts_mean(X, 0)
    with pytest.raises(ValueError, match="lag"):
        ts.delay(X, -1)


# -------------------------------------------------------------------------------- properties


def bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).view(np.uint64)


def extreme_panel() -> np.ndarray:
    """Huge, tiny, signed-zero and NaN values, plus a constant huge column and a zero column."""
    rng = np.random.default_rng(5)
    choices = [0.0, -0.0, 5e-324, -1e-300, 1e-300, 1.0, -1.0, 1e300, -1e300, 1.7e308, -1.7e308, NAN]
    x = rng.choice(choices, size=(40, 8))
    x[:, 6] = 1.7e308
    x[:, 7] = 0.0
    return read_only(x)


PANELS = {"random": (X, Y), "extreme": (extreme_panel(), read_only(extreme_panel()[::-1]))}


@pytest.mark.parametrize("panel", sorted(PANELS))
@pytest.mark.parametrize("d", (2, 5, 20))
@pytest.mark.parametrize("name", TIMESERIES)
def test_recomputing_from_lookback_rows_is_bit_identical(name: str, d: int, panel: str) -> None:
    """The incremental-recomputation property: a slice from t0 - lookback gives the same bits."""
    x, y = PANELS[panel]
    need = REGISTRY[name].lookback({"d": d})
    full = call(name, x, y, d)
    for t0 in np.random.default_rng(d).integers(need, x.shape[0], size=4):
        start = t0 - need
        part = call(name, x[start:], y[start:], d)
        assert_array_equal(bits(part[t0 - start :]), bits(full[t0:]), err_msg=f"t0={t0}")


@pytest.mark.parametrize("name", ["ts_std", "ts_zscore", "ts_skew", "ts_kurt", "ts_corr", "ts_cv"])
@pytest.mark.parametrize("factor", [1e200, 1e-200])
def test_moments_survive_huge_and_tiny_magnitudes(name: str, factor: float) -> None:
    """std scales with x; zscore, skew, kurt, corr and cv do not change (no overflow/underflow)."""
    scaled = read_only(X * factor)
    expected = call(name, X, Y, 10) * (factor if name == "ts_std" else 1.0)
    assert_allclose(call(name, scaled, read_only(Y * factor), 10), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("d", (1, 2, 5, 20))
def test_no_inf_and_inputs_unchanged_on_extreme_values(d: int) -> None:
    x, y = PANELS["extreme"]
    x_before, y_before = x.copy(), y.copy()
    for name in TIMESERIES:
        out = call(name, x, y, d)
        assert out.shape == x.shape and out.dtype == np.float64, name
        assert not np.isinf(out).any(), name
    assert_array_equal(x, x_before)
    assert_array_equal(y, y_before)


# (largest, position) of each extreme, its two kernels, and small panels full of ties and specials
EXTREMES = {
    "ts_max": (True, False),
    "ts_min": (False, False),
    "ts_argmax": (True, True),
    "ts_argmin": (False, True),
}
EXTREME_KERNELS = (ts._extreme_scan, ts._extreme_blocks)
SPECIAL = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, np.inf, -np.inf, NAN])


@st.composite
def tied_panels(draw: st.DrawFn) -> np.ndarray:
    """Up to (30, 8) rows and columns of a few values: many ties, signed zeros, NaN and infinities."""
    palette = draw(st.lists(SPECIAL, min_size=1, max_size=4))
    palette += draw(st.lists(st.floats(width=64), max_size=2))
    rows, cols = draw(st.integers(1, 30)), draw(st.integers(1, 8))
    values = draw(st.lists(st.sampled_from(palette), min_size=rows * cols, max_size=rows * cols))
    return read_only(np.reshape(values, (rows, cols)))


def assert_same_values_and_signs(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert_array_equal(got, want, err_msg=name)
    assert_array_equal(np.signbit(got), np.signbit(want), err_msg=name)


@st.composite
def tied_panels_and_windows(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """A `tied_panels` panel and a window of 1 to 2 rows more than it has."""
    x = draw(tied_panels())
    return x, draw(st.integers(1, x.shape[0] + 2))


@pytest.mark.parametrize("name", sorted(EXTREMES))
@settings(max_examples=300, deadline=None)
@given(case=tied_panels_and_windows())
def test_extremes_match_the_window_loop_exactly(name: str, case: tuple[np.ndarray, int]) -> None:
    """Both kernels and the operator, for any window: NaN skipped, the latest of equal values wins."""
    x, d = case
    want = loop_extreme(x, d, *EXTREMES[name])
    assert_same_values_and_signs(call(name, x, x, d), want, name)
    for kernel in EXTREME_KERNELS:
        assert_same_values_and_signs(kernel(x, d, *EXTREMES[name]), want, kernel.__name__)


@pytest.mark.parametrize("name", sorted(EXTREMES))
@settings(max_examples=300, deadline=None)
@given(case=tied_panels_and_windows(), data=st.data())
def test_extremes_do_not_depend_on_where_the_panel_starts(
    name: str, case: tuple[np.ndarray, int], data: st.DataObject
) -> None:
    """Blocks start at the panel's first row, yet a later start gives the same bits once a window fits."""
    x, d = case
    k = data.draw(st.integers(0, x.shape[0] - 1), label="k")
    full_rows = slice(k + d - 1, None)
    part_rows = slice(d - 1, None)
    assert_array_equal(bits(call(name, x[k:], x[k:], d)[part_rows]), bits(call(name, x, x, d)[full_rows]))
    for kernel in EXTREME_KERNELS:
        part, full = kernel(x[k:], d, *EXTREMES[name]), kernel(x, d, *EXTREMES[name])
        assert_array_equal(bits(part[part_rows]), bits(full[full_rows]), err_msg=kernel.__name__)


def test_registry_declarations() -> None:
    declared = {spec.name for spec in REGISTRY.values() if spec.family == "timeseries"}
    assert declared == set(TIMESERIES)
    for name in TIMESERIES:
        spec = REGISTRY[name]
        (window,) = [a for a in spec.args if a.kind in (Kind.WINDOW, Kind.LAG)]
        assert window.name == "d"
        assert window.kind is (Kind.LAG if name in SHIFTS else Kind.WINDOW)
        assert spec.lookback({"d": 7}) == (7 if name in SHIFTS else 6)
        assert spec.commutative == (name in ("ts_corr", "ts_cov"))

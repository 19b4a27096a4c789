"""ts_rsquare and ts_resi against per-window least squares (scipy, numpy) and worked examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from numpy.testing import assert_allclose, assert_array_equal
from test_timeseries import bits, extreme_panel, make_x, read_only

from operators import REGISTRY, Kind
from operators.regression import ts_resi, ts_rsquare

NAN = np.nan
WINDOWS = (1, 2, 5, 20, 75)
TOLERANCE = {"rtol": 1e-9, "atol": 1e-9}


X = make_x()


def window_fits(x: np.ndarray, d: int):
    """(t, n, rows, values) of every window with 2 valid values or more, in row order."""
    for t in range(x.shape[0]):
        rows = np.arange(max(0, t - d + 1), t + 1)
        for n in range(x.shape[1]):
            valid = ~np.isnan(x[rows, n])
            if valid.sum() >= 2:
                yield t, n, rows[valid], x[rows[valid], n]


def scipy_rsquare(x: np.ndarray, d: int) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t, n, rows, values in window_fits(x, d):
        if values.min() < values.max():
            out[t, n] = scipy.stats.linregress(rows, values).rvalue ** 2
    return out


def numpy_residual(x: np.ndarray, d: int) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t, n, rows, values in window_fits(x, d):
        if not np.isnan(x[t, n]):
            slope, intercept = np.polyfit(rows, values, 1)
            out[t, n] = x[t, n] - (intercept + slope * t)
    return out


@pytest.mark.parametrize("d", WINDOWS)
def test_rsquare_matches_scipy_linregress_per_window(d: int) -> None:
    assert_allclose(ts_rsquare(X, d), scipy_rsquare(X, d), **TOLERANCE)


@pytest.mark.parametrize("d", WINDOWS)
def test_residual_matches_numpy_polyfit_per_window(d: int) -> None:
    expected = numpy_residual(X, d)
    got = ts_resi(X, d)
    assert_array_equal(np.isnan(got), np.isnan(expected))
    assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.nanmax(np.abs(X)))


def test_hand_worked_windows() -> None:
    x = read_only(np.array([[1.0, 3.0, 2.0, NAN, 4.0, 4.0, 4.0]]).T)
    # t=2: rows 0..2, y = 1, 3, 2: slope 0.5 through the mean 2 at row 1; Sxy = 1, Sxx = 2, Syy = 2
    # t=3: two valid rows (today is NaN: no residual); t=4: rows 2 and 4 (y 2, 4) lie on a line;
    # t=5, 6: the valid values are constant
    assert_allclose(ts_rsquare(x, 3)[:, 0], [NAN, 1.0, 0.25, 1.0, 1.0, NAN, NAN], rtol=1e-14)
    assert_allclose(ts_resi(x, 3)[:, 0], [NAN, 0.0, -0.5, NAN, 0.0, 0.0, 0.0], atol=1e-14)


def test_constant_windows_fit_exactly() -> None:
    x = read_only(np.array([[0.1, NAN, 0.1, 0.1, 0.1, 0.7]]).T)
    assert_array_equal(ts_resi(x, 4)[:5, 0], [NAN, NAN, 0.0, 0.0, 0.0])
    assert np.isnan(ts_rsquare(x, 4)[:5, 0]).all()
    assert np.isfinite(ts_rsquare(x, 4)[5, 0]) and np.isfinite(ts_resi(x, 4)[5, 0])


@pytest.mark.parametrize("panel", [X, extreme_panel()], ids=["random", "extreme"])
@pytest.mark.parametrize("d", (2, 5, 20))
@pytest.mark.parametrize("kernel", [ts_rsquare, ts_resi])
def test_recomputing_from_lookback_rows_is_bit_identical(kernel, d: int, panel: np.ndarray) -> None:
    full = kernel(panel, d)
    for t0 in np.random.default_rng(d).integers(d - 1, panel.shape[0], size=4):
        start = t0 - (d - 1)
        assert_array_equal(bits(kernel(panel[start:], d)[t0 - start :]), bits(full[t0:]), err_msg=f"t0={t0}")


@pytest.mark.parametrize("kernel", [ts_rsquare, ts_resi])
def test_no_lookahead(kernel) -> None:
    scrambled = np.array(X)
    scrambled[31:] = np.random.default_rng(1).standard_normal(scrambled[31:].shape)
    assert_array_equal(bits(kernel(read_only(scrambled), 10)[:31]), bits(kernel(X, 10)[:31]))


@pytest.mark.parametrize("d", (1, 2, 5, 20))
def test_no_inf_and_rsquare_in_the_unit_interval_on_extreme_values(d: int) -> None:
    x = extreme_panel()
    for kernel in (ts_rsquare, ts_resi):
        out = kernel(x, d)
        assert out.shape == x.shape and not np.isinf(out).any(), kernel.__name__
    rsquare = ts_rsquare(x, d)
    assert ((rsquare[~np.isnan(rsquare)] >= 0) & (rsquare[~np.isnan(rsquare)] <= 1)).all()


@pytest.mark.parametrize("factor", [1e200, 1e-200])
def test_scale_huge_and_tiny_magnitudes(factor: float) -> None:
    """R-squared does not change with the scale of x, the residual scales with it."""
    scaled = read_only(X * factor)
    assert_allclose(ts_rsquare(scaled, 10), ts_rsquare(X, 10), rtol=1e-9, atol=1e-12)
    assert_allclose(ts_resi(scaled, 10) / factor, ts_resi(X, 10), rtol=1e-9, atol=1e-9)


def test_registry_declarations() -> None:
    declared = {spec.name for spec in REGISTRY.values() if spec.family == "regression"}
    assert declared == {"ts_rsquare", "ts_resi"}
    for name in declared:
        spec = REGISTRY[name]
        assert [a.kind for a in spec.args] == [Kind.SERIES, Kind.WINDOW]
        assert spec.lookback({"d": 7}) == 6

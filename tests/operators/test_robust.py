"""MAD despike / winsorize against plain Python loops with np.median."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from operators import REGISTRY, Kind, robust
from tests.conftest import random_panel

NAN = np.nan


def read_only(x: np.ndarray) -> np.ndarray:
    x.flags.writeable = False
    return x


def clipped(value: float, values: np.ndarray, k: float) -> float:
    """`value` clipped to median +- k * 1.4826 * MAD of `values`, untouched when they are flat
    (MAD <= 1e-12 * |median|)."""
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    if mad <= 1e-12 * abs(median):
        return value
    half_width = k * 1.4826 * mad
    return min(max(value, median - half_width), median + half_width)


def despike_reference(x: np.ndarray, d: int, k: float) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        for n in range(x.shape[1]):
            if np.isnan(x[t, n]):
                continue
            window = x[max(0, t - d + 1) : t + 1, n]
            out[t, n] = clipped(x[t, n], window[~np.isnan(window)], k)
    return out


def winsorize_reference(x: np.ndarray, k: float) -> np.ndarray:
    out = np.full(x.shape, NAN)
    for t in range(x.shape[0]):
        valid = x[t][~np.isnan(x[t])]
        for n in range(x.shape[1]):
            if not np.isnan(x[t, n]):
                out[t, n] = clipped(x[t, n], valid, k)
    return out


def spiky_panel(rng: np.random.Generator, t: int = 80, n: int = 10) -> np.ndarray:
    """Random panel with NaN holes and constant stretches, plus frequent large spikes."""
    x = random_panel(rng, t=t, n=n)
    spikes = rng.random(x.shape) < 0.08
    x[spikes] += rng.choice([-40.0, 40.0], size=spikes.sum())
    x[: t // 4 + 8, 1] = 7.0
    return read_only(x)


def test_declarations():
    despike = REGISTRY["ts_mad_despike"]
    assert despike.family == REGISTRY["cs_mad_winsorize"].family == "robust"
    assert [a.kind for a in despike.args] == [Kind.SERIES, Kind.WINDOW, Kind.CONST]
    assert despike.lookback({"d": 10, "k": 3.0}) == 9
    assert REGISTRY["cs_mad_winsorize"].lookback({"k": 3.0}) == 0
    for name in ("ts_mad_despike", "cs_mad_winsorize"):
        k = REGISTRY[name].args[-1]
        assert (k.default, k.lower) == (3.0, 0.0)


# --- ts_mad_despike ----------------------------------------------------------------------


@pytest.mark.parametrize(("d", "k"), [(1, 3.0), (2, 3.0), (5, 3.0), (10, 1.5), (21, 0.0)])
def test_ts_mad_despike_matches_the_loop_reference(rng, d, k):
    x = spiky_panel(rng)
    assert_allclose(robust.ts_mad_despike(x, d, k), despike_reference(x, d, k), rtol=1e-14)


def test_planted_spike_is_clipped_to_the_band():
    base = np.array([10.0, 10.4, 9.8, 10.1, 9.9, 10.3, 9.7, 10.2, 10.0, 9.6])
    x = np.column_stack([np.append(base, 1000.0), np.append(base, -1000.0)])
    out = robust.ts_mad_despike(read_only(x), 11, 3.0)
    window = x[:, 0]
    median = np.median(window)  # 10.0: one spike does not move the median
    mad = np.median(np.abs(window - median))
    assert_allclose(out[-1, 0], median + 3.0 * 1.4826 * mad, rtol=1e-14)
    assert out[-1, 0] < 12.0
    low = np.median(x[:, 1]) - 3.0 * 1.4826 * np.median(np.abs(x[:, 1] - np.median(x[:, 1])))
    assert_allclose(out[-1, 1], low, rtol=1e-14)
    assert_array_equal(out[:-1], x[:-1])


def test_constant_windows_are_left_untouched():
    x = np.full((12, 3), 5.0)
    x[8, 1] = 500.0  # a spike after a flat window: MAD is 0, so it stays
    x[:, 2] = 1e6 + np.arange(12) * 1e-9  # spread far below 1e-12 * |median|
    x[3, 0] = NAN
    out = robust.ts_mad_despike(read_only(x), 6, 3.0)
    assert_array_equal(out, x)


def test_default_k_is_three(rng):
    x = spiky_panel(rng)
    assert_array_equal(robust.ts_mad_despike(x, 7), robust.ts_mad_despike(x, 7, 3.0))


@pytest.mark.parametrize("d", [1, 3, 7, 12])
@pytest.mark.parametrize("t0", [11, 30, 67])
def test_ts_mad_despike_on_a_slice_is_bit_identical(rng, d, t0):
    x = spiky_panel(rng)
    full = robust.ts_mad_despike(x, d, 2.0)
    part = robust.ts_mad_despike(read_only(x[t0 - (d - 1) :].copy()), d, 2.0)
    assert_array_equal(part[d - 1 :], full[t0:])


def test_ts_mad_despike_has_no_lookahead_and_keeps_inputs(rng):
    x = spiky_panel(rng)
    before = x.copy()
    full = robust.ts_mad_despike(x, 9, 3.0)
    assert_array_equal(x, before)
    assert not np.isinf(full).any() and (np.isnan(full) == np.isnan(x)).all()
    changed = x.copy()
    changed[40:] = rng.standard_normal(changed[40:].shape) * 1e6
    assert_array_equal(robust.ts_mad_despike(read_only(changed), 9, 3.0)[:40], full[:40])


# --- cs_mad_winsorize --------------------------------------------------------------------


@pytest.mark.parametrize("k", [0.0, 1.0, 3.0])
def test_cs_mad_winsorize_matches_the_loop_reference(rng, k):
    x = spiky_panel(rng)
    assert_allclose(robust.cs_mad_winsorize(x, k), winsorize_reference(x, k), rtol=1e-14)


def test_cs_mad_winsorize_edge_dates():
    x = np.array(
        [
            [1.0, 2.0, 3.0, 4.0, 100.0, NAN],  # spike clipped
            [NAN, NAN, NAN, NAN, NAN, NAN],  # nothing valid
            [5.0, 5.0, 5.0, 5.0, 80.0, NAN],  # MAD 0: untouched
            [NAN, 9.0, NAN, NAN, NAN, NAN],  # one name: untouched
        ]
    )
    out = robust.cs_mad_winsorize(read_only(x), 3.0)
    assert_allclose(out[0], [1.0, 2.0, 3.0, 4.0, 3.0 + 3.0 * 1.4826, NAN])
    assert_array_equal(out[1:], x[1:])
    assert_array_equal(robust.cs_mad_winsorize(read_only(x)), out)


def test_huge_values_never_give_inf(rng):
    x = read_only(rng.choice(np.array([1.7e308, -1.7e308, 1e300, 0.0, 1.0, NAN]), size=(30, 8)))
    assert not np.isinf(robust.ts_mad_despike(x, 5, 3.0)).any()
    assert not np.isinf(robust.cs_mad_winsorize(x, 3.0)).any()


# --- the flatness rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spread", "median", "flat"),
    [
        (0.0, 0.0, True),  # nothing to clip around a zero median
        (5e-324, 0.0, False),  # ... but any spread about it is one
        (1e-13, 0.0, False),
        (1e-12 * 5.0, 5.0, True),  # at the tolerance
        (np.nextafter(1e-12 * 5.0, 1.0), 5.0, False),  # just above it
        (1e-12 * 5.0, -5.0, True),  # the sign of the median does not matter
        (8e-13, 0.5, False),  # a small median gives no floor of 1 (8e-13 > 1e-12 * 0.5)
        (1e-9, 1e6, True),  # rounding residue about a large level
        (NAN, 1.0, True),  # values reaching inf
    ],
)
def test_is_flat_at_the_boundary(spread, median, flat):
    assert robust.is_flat(spread, median) is flat


def test_a_tiny_mad_about_a_zero_median_still_clips():
    x = np.array([[-2e-13, -1e-13, 0.0, 1e-13, 1.0]])  # median 0, MAD 1e-13
    out = robust.cs_mad_winsorize(read_only(x), 3.0)
    assert_allclose(out, [[-2e-13, -1e-13, 0.0, 1e-13, 3.0 * 1.4826 * 1e-13]], rtol=1e-14)


@pytest.mark.parametrize("scale", [2.0**-60, 2.0**-20, 2.0**30])
def test_despike_does_not_depend_on_units(rng, scale):
    """Powers of two scale the median, the MAD and the band exactly, so the clipped values scale too."""
    x = spiky_panel(rng)
    assert_array_equal(robust.ts_mad_despike(x * scale, 7, 2.0), robust.ts_mad_despike(x, 7, 2.0) * scale)
    assert_array_equal(robust.cs_mad_winsorize(x * scale, 2.0), robust.cs_mad_winsorize(x, 2.0) * scale)

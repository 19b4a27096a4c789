"""Spectral ("drip-stone") operators and the intraday derived fields.

References are independent of the kernels: a literal, one-series-at-a-time numpy
transcription of the issue's six steps, scipy (`stats.kurtosis`, `signal.coherence`),
pandas (`pct_change` per day) and hand-worked bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.signal
import scipy.stats

from operators import REGISTRY, Kind
from operators.intraday import buy_sell_volume, minute_returns
from operators.spectral import (
    Blocking,
    fft_band,
    fft_band_am,
    fft_band_iqr,
    fft_band_pm,
    fft_band_shift,
    fft_coherence,
    fft_kurtosis,
    fft_peak_count,
    fft_peak_ratio,
    ts_fft_band,
)
from tests.conftest import random_panel

US_SLOTS = 391  # 09:30 .. 16:00
INSTRUMENTS = ["AAPL", "AMD", "CMG", "EQIX", "MHK", "UHS"]
DAYS = 10
BANDS = [(2.0, 5.0), (1.0, 2.0), (5.0, 10.0), (10.0, 20.0), (1.5, 3.7)]
INTRADAY_REDUCERS = [
    fft_band,
    fft_band_iqr,
    fft_kurtosis,
    fft_peak_ratio,
    fft_peak_count,
    fft_band_am,
    fft_band_pm,
    fft_band_shift,
]


# ----------------------------------------------------------------------------- references


def literal_spectrum(x: np.ndarray, clip: str = "mad") -> tuple[np.ndarray, np.ndarray] | None:
    """The issue's steps 1-5 for one series, plainly: (P, f), or None when the day is NaN."""
    valid = ~np.isnan(x)
    values = x[valid]
    if values.size < 10:
        return None
    median = np.median(values)
    if clip == "mad":
        mad = np.median(np.abs(values - median))
        spread, lower, upper = mad, median - 3 * 1.4826 * mad, median + 3 * 1.4826 * mad
    else:
        q1, q3 = np.percentile(values, [25, 75])
        spread, lower, upper = q3 - q1, q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    clipped = np.clip(x, lower, upper) if spread > 1e-12 * abs(median) else x.copy()
    demeaned = clipped - np.mean(clipped[valid])
    demeaned[~valid] = 0.0
    windowed = demeaned * np.hanning(x.size)
    n = 256 if x.size < 256 else x.size
    power = np.abs(np.fft.rfft(windowed, n=n)) ** 2
    freqs = np.fft.rfftfreq(n, d=1.0)
    if power[freqs != 0].sum() <= 1e-20 * n * np.sum(clipped[valid] ** 2):
        return None
    return power, freqs


def in_band(freqs: np.ndarray, low: float, high: float) -> np.ndarray:
    return (freqs >= 1 / high) & (freqs <= 1 / low) & (freqs != 0)


def literal_band(x: np.ndarray, low: float = 2, high: float = 5, clip: str = "mad") -> float:
    spectrum = literal_spectrum(x, clip)
    if spectrum is None:
        return np.nan
    power, freqs = spectrum
    return power[in_band(freqs, low, high)].sum() / power[freqs != 0].sum()


def literal_kurtosis(x: np.ndarray) -> float:
    spectrum = literal_spectrum(x)
    if spectrum is None:
        return np.nan
    power, freqs = spectrum
    return float(scipy.stats.kurtosis(power[freqs != 0], fisher=True, bias=True))


def literal_peak_ratio(x: np.ndarray, low: float, high: float) -> float:
    spectrum = literal_spectrum(x)
    if spectrum is None:
        return np.nan
    power, freqs = spectrum
    peaks = []
    for k in range(1, len(power)):
        left = power[k - 1] if k - 1 >= 1 else -np.inf
        right = power[k + 1] if k + 1 < len(power) else -np.inf
        if in_band(freqs, low, high)[k] and power[k] > left and power[k] > right:
            peaks.append(power[k])
    if len(peaks) < 2:
        return np.nan
    peaks.sort(reverse=True)
    return peaks[0] / peaks[1]


def literal_peak_count(x: np.ndarray, low: float, high: float) -> float:
    spectrum = literal_spectrum(x)
    if spectrum is None:
        return np.nan
    power, freqs = spectrum
    nonzero = power[freqs != 0]
    threshold = nonzero.mean() + 2 * nonzero.std()
    return float(np.sum(power[in_band(freqs, low, high)] > threshold))


def per_series(func, cube: np.ndarray, *args) -> np.ndarray:
    """Apply a one-series reference to every (day, name) series of cube."""
    days, names, _ = cube.shape
    return np.array([[func(cube[t, i], *args) for i in range(names)] for t in range(days)])


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0, equal_nan=True)


# ----------------------------------------------------------------------------- real minute bars


@pytest.fixture(scope="module")
def minute_frame(shared_data: Path) -> pd.DataFrame:
    """A few instruments' first days of real 1-minute bars, long, with grid coordinates."""
    frame = pd.read_parquet(
        shared_data / "us_minute_2018q1.parquet",
        filters=[("instrument", "in", INSTRUMENTS)],
        columns=["datetime", "instrument", "open", "high", "low", "close", "volume"],
    )
    frame["day"] = frame["datetime"].dt.normalize()
    days = np.sort(frame["day"].unique())[:DAYS]
    frame = frame[frame["day"].isin(days)].sort_values(["instrument", "datetime"])
    return frame.assign(
        day_index=np.searchsorted(days, frame["day"].to_numpy()),
        name_index=np.searchsorted(INSTRUMENTS, frame["instrument"].to_numpy()),
        slot=(frame["datetime"].dt.hour * 60 + frame["datetime"].dt.minute - 570).to_numpy(),
    )


@pytest.fixture(scope="module")
def minute_bars(minute_frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The same bars as read-only (day, instrument, 391-slot) cubes, with extra volume holes."""
    where = (minute_frame["day_index"], minute_frame["name_index"], minute_frame["slot"])
    cubes = {}
    for field in ("open", "high", "low", "close", "volume"):
        cube = np.full((DAYS, len(INSTRUMENTS), US_SLOTS), np.nan)
        cube[where] = minute_frame[field].to_numpy(dtype=float)
        cubes[field] = cube
    volume = cubes["volume"]
    volume[3, 1] = np.nan  # a day without bars (suspended)
    volume[4, 2, np.flatnonzero(~np.isnan(volume[4, 2]))[9:]] = np.nan  # 9 valid minutes
    volume[5, 3, 100:160] = np.nan  # an hour-long gap
    for cube in cubes.values():
        cube.setflags(write=False)
    return cubes


def test_real_grid_has_gaps_and_full_days(minute_bars) -> None:
    counts = np.sum(~np.isnan(minute_bars["volume"]), axis=2)
    assert counts.max() == US_SLOTS and 9 in counts and 0 in counts
    assert 10 < counts[counts > 9].min() < 300


@pytest.mark.parametrize("low, high", BANDS)
def test_fft_band_matches_literal_reference_on_real_volume(minute_bars, low, high) -> None:
    volume = minute_bars["volume"]
    assert_same(fft_band(volume, low, high), per_series(literal_band, volume, low, high, "mad"))


def test_fft_band_iqr_matches_literal_reference_on_real_volume(minute_bars) -> None:
    volume = minute_bars["volume"]
    assert_same(fft_band_iqr(volume, 2, 5), per_series(literal_band, volume, 2, 5, "iqr"))


def test_fft_band_matches_literal_reference_on_real_minute_returns(minute_bars) -> None:
    returns = minute_returns(minute_bars["close"])
    assert_same(fft_band(returns, 2, 5), per_series(literal_band, returns, 2, 5, "mad"))


def test_spectral_shape_reducers_match_literal_reference(minute_bars) -> None:
    volume = minute_bars["volume"]
    assert_same(fft_kurtosis(volume), per_series(literal_kurtosis, volume))
    for low, high in [(2, 5), (5, 10)]:
        expected_ratio = per_series(literal_peak_ratio, volume, low, high)
        expected_count = per_series(literal_peak_count, volume, low, high)
        assert_same(fft_peak_ratio(volume, low, high), expected_ratio)
        assert_same(fft_peak_count(volume, low, high), expected_count)


def test_session_halves_match_literal_reference(minute_bars) -> None:
    volume = minute_bars["volume"]
    half = US_SLOTS // 2
    morning = per_series(literal_band, np.ascontiguousarray(volume[..., :half]), 2, 5)
    afternoon = per_series(literal_band, np.ascontiguousarray(volume[..., half:]), 2, 5)
    assert_same(fft_band_am(volume, 2, 5), morning)
    assert_same(fft_band_pm(volume, 2, 5), afternoon)
    assert_same(fft_band_shift(volume, 2, 5), afternoon - morning)


@pytest.mark.parametrize("reducer", [fft_band, fft_coherence], ids=lambda f: f.__name__)
def test_day_blocks_and_threads_do_not_change_values(minute_bars, reducer) -> None:
    volume = minute_bars["volume"]
    inputs = (volume,)
    if reducer is fft_coherence:
        inputs = (volume, minute_returns(minute_bars["close"]))
    whole = reducer(*inputs, 2, 5, blocking=Blocking(day_block=len(volume)))
    for day_block, workers in [(1, 1), (3, 1), (1, 2), (3, 2)]:
        blocking = Blocking(day_block=day_block, workers=workers)
        np.testing.assert_array_equal(reducer(*inputs, 2, 5, blocking=blocking), whole)


def test_minute_returns_match_pandas_pct_change_within_each_day(minute_frame, minute_bars) -> None:
    frame = minute_frame
    expected = frame.groupby(["instrument", "day"])["close"].pct_change().to_numpy()
    got = minute_returns(minute_bars["close"])
    located = got[frame["day_index"], frame["name_index"], frame["slot"]]
    np.testing.assert_allclose(located, expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(got).sum() == np.isnan(minute_bars["close"]).sum() + np.isnan(expected).sum()


def test_buy_plus_sell_is_volume_on_real_bars(minute_bars) -> None:
    bars = [minute_bars[f] for f in ("open", "high", "low", "close", "volume")]
    buy, sell = buy_sell_volume(*bars)
    volume = minute_bars["volume"]
    np.testing.assert_array_equal(np.isnan(buy), np.isnan(volume))
    np.testing.assert_allclose(buy + sell, volume, rtol=1e-12)
    assert np.nanmin(buy) >= 0 and np.nanmin(sell) >= 0


def literal_coherence(v: np.ndarray, r: np.ndarray, low: float, high: float) -> float:
    both = ~np.isnan(v) & ~np.isnan(r)
    if both.sum() < 128:
        return np.nan
    y_v = np.where(both, v - v[both].mean(), 0.0)
    y_r = np.where(both, r - r[both].mean(), 0.0)
    freqs, coherence = scipy.signal.coherence(y_v, y_r, fs=1.0, nperseg=64)
    return coherence[in_band(freqs, low, high)].mean()


def test_fft_coherence_matches_scipy_on_each_series_pair(minute_bars) -> None:
    volume = minute_bars["volume"]
    returns = minute_returns(minute_bars["close"])
    days, names = volume.shape[:2]
    for low, high in [(2, 5), (5, 20)]:
        got = fft_coherence(volume, returns, low, high)
        expected = [
            [literal_coherence(volume[t, i], returns[t, i], low, high) for i in range(names)]
            for t in range(days)
        ]
        assert_same(got, np.array(expected))
        assert np.nanmin(got) >= 0 and np.nanmax(got) <= 1
    np.testing.assert_allclose(
        fft_coherence(returns, volume), fft_coherence(volume, returns), rtol=1e-12, equal_nan=True
    )


# ----------------------------------------------------------------------------- constructed series


def test_pulse_train_with_period_three_is_almost_all_in_band() -> None:
    rng = np.random.default_rng(3)
    minutes = np.arange(240)
    pulses = 100.0 + 400.0 * (minutes % 3 == 0)
    noisy = pulses + rng.standard_normal((8, 1, 240))
    assert np.all(fft_band(noisy, 2, 5) > 0.9)
    assert fft_band(pulses[None, None], 2, 5)[0, 0] > 0.99


def test_slow_wave_has_almost_no_power_in_the_fast_band() -> None:
    wave = 100.0 + 10.0 * np.sin(2 * np.pi * np.arange(240) / 20.0)
    assert fft_band(wave[None, None], 2, 5)[0, 0] < 0.01


def test_white_noise_ratio_is_near_the_band_share_of_frequencies() -> None:
    rng = np.random.default_rng(4)
    freqs = np.fft.rfftfreq(256, d=1.0)
    share = in_band(freqs, 2, 5).sum() / np.sum(freqs != 0)
    noise = rng.standard_normal((50, 10, 240)) + 1000.0
    ratios = fft_band(noise, 2, 5)
    assert abs(ratios.mean() - share) < 0.015


def test_flat_short_and_empty_days_are_nan() -> None:
    cube = np.full((1, 5, 240), 0.1)  # constant day (its mean is off by rounding)
    cube[0, 1] = np.nan  # no bars
    cube[0, 2, 9:] = np.nan  # 9 valid minutes
    cube[0, 2, :9] = np.arange(9.0)
    cube[0, 3, 10:] = np.nan  # exactly 10 valid minutes
    cube[0, 3, :10] = np.arange(10.0) ** 2
    cube[0, 4] = 0.0  # all-zero day
    for reducer in (fft_band, fft_band_iqr, fft_kurtosis, fft_peak_count):
        got = reducer(cube)[0]
        assert np.isnan(got[[0, 1, 2, 4]]).all(), reducer.__name__
        assert np.isfinite(got[3]), reducer.__name__


def test_too_few_slots_give_an_all_nan_panel() -> None:
    cube = np.random.default_rng(5).random((3, 4, 9))
    assert np.isnan(fft_band(cube)).all()
    assert np.isnan(fft_coherence(cube, cube)).all()


def test_tie_heavy_integer_volumes_match_literal_reference() -> None:
    rng = np.random.default_rng(6)
    cube = rng.choice([100.0, 200.0, 300.0, 5000.0], p=[0.5, 0.3, 0.15, 0.05], size=(4, 6, 240))
    cube[rng.random(cube.shape) < 0.1] = np.nan
    cube[0, 0, :] = 100.0  # MAD 0 and IQR 0: no clipping, constant -> NaN
    cube[0, 1, :] = np.where(np.arange(240) % 2 == 0, 100.0, 400.0)  # MAD > 0, even count
    cube[1, 0, :] = np.where(np.arange(240) % 5 == 0, 900.0, 100.0)  # MAD 0: spikes survive
    for clip, kernel in (("mad", fft_band), ("iqr", fft_band_iqr)):
        assert_same(kernel(cube, 2, 5), per_series(literal_band, cube, 2, 5, clip))
    assert_same(fft_kurtosis(cube), per_series(literal_kurtosis, cube))


def test_flatness_rule_on_complete_days_matches_literal_reference() -> None:
    """Complete days on either side of the despike's flatness rule (spread <= 1e-12 * |median|)."""
    rng = np.random.default_rng(11)
    slots = 240
    zero_median = np.concatenate([-rng.uniform(1, 3, 100), np.zeros(40), rng.uniform(1, 3, 100)]) * 1e-13
    rng.shuffle(zero_median)  # median exactly 0, MAD ~1.7e-13: not flat, so the spikes are clipped
    rounding = 1e6 + rng.standard_normal(slots) * 1e-7  # spread far below 1e-12 * 1e6: flat
    spread_out = rng.gamma(2.0, 100.0, slots)
    cube = np.stack([zero_median, rounding, spread_out])[None].copy()
    cube[0, :, [7, 90, 200]] = [5.0, 2e6, 5000.0]
    assert np.median(cube[0, 0]) == 0.0
    for clip, kernel in (("mad", fft_band), ("iqr", fft_band_iqr)):
        got, expected = kernel(cube, 2, 5), per_series(literal_band, cube, 2, 5, clip)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_coherence_of_a_series_with_itself_is_one_and_short_days_are_nan() -> None:
    rng = np.random.default_rng(7)
    cube = rng.standard_normal((2, 3, 240))
    cube[1, 2, 100:] = np.nan  # 100 joint minutes < 2 * 64
    got = fft_coherence(cube, cube)
    np.testing.assert_allclose(got[~np.isnan(got)], 1.0, rtol=1e-12)
    assert np.isnan(got[1, 2]) and np.isfinite(got).sum() == 5


@pytest.mark.parametrize("low, high", [(5, 2), (3, 3), (0.5, 4)])
def test_bad_bands_are_rejected_with_a_clear_message(low, high) -> None:
    cube = np.ones((1, 1, 240))
    with pytest.raises(ValueError, match="low"):
        fft_band(cube, low, high)
    with pytest.raises(ValueError, match="low"):
        fft_coherence(cube, cube, low, high)


# ----------------------------------------------------------------------------- no lookahead


def random_cube(seed: int, days: int = 6, names: int = 4, slots: int = 240) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cube = rng.gamma(2.0, 100.0, size=(days, names, slots))
    cube[rng.random(cube.shape) < 0.1] = np.nan
    cube[:2, 0] = np.nan  # late listing
    cube.setflags(write=False)
    return cube


def intraday_call(reducer, cube: np.ndarray) -> np.ndarray:
    if reducer is fft_coherence:
        return reducer(cube, minute_returns(cube), 2, 5, blocking=Blocking(day_block=2))
    return reducer(cube, blocking=Blocking(day_block=2))


@pytest.mark.parametrize("reducer", [*INTRADAY_REDUCERS, fft_coherence], ids=lambda f: f.__name__)
def test_each_day_uses_only_its_own_minutes(reducer) -> None:
    cube = random_cube(8)
    whole = intraday_call(reducer, cube)
    assert not np.isinf(whole).any() and np.isfinite(whole).any()
    for t in range(len(cube)):
        np.testing.assert_array_equal(intraday_call(reducer, cube[t : t + 1])[0], whole[t])
    changed = np.array(cube)
    changed[4:] = random_cube(9)[4:]
    np.testing.assert_array_equal(intraday_call(reducer, changed)[:4], whole[:4])


def literal_ts_band(x: np.ndarray, d: int, low: float, high: float) -> np.ndarray:
    days, names = x.shape
    out = np.full((days, names), np.nan)
    for t in range(days):
        for i in range(names):
            window = np.full(d, np.nan)
            start = max(0, t - d + 1)
            window[d - (t - start + 1) :] = x[start : t + 1, i]
            out[t, i] = literal_band(window, low, high)
    return out


@pytest.mark.parametrize("d, low, high", [(20, 2, 5), (60, 5, 20), (9, 2, 5)])
def test_ts_fft_band_matches_literal_reference_on_trailing_windows(rng, d, low, high) -> None:
    x = random_panel(rng, t=80, n=8)
    x[10:75, 3] = 2.2  # constant windows: flat -> NaN
    x.setflags(write=False)
    got = ts_fft_band(x, d, low, high)
    assert_same(got, literal_ts_band(x, d, low, high))
    assert np.isnan(got[74, 3]) and np.isnan(got[:, 2]).all()


def test_ts_fft_band_is_bit_exact_on_a_slice_and_never_looks_ahead(rng) -> None:
    x = random_panel(rng, t=90, n=6)
    d = 30
    whole = ts_fft_band(x, d, 2, 5)
    for start in (40, 60):
        tail = ts_fft_band(x[start - (d - 1) :], d, 2, 5)
        np.testing.assert_array_equal(tail[d - 1 :], whole[start:])
    changed = x.copy()
    changed[51:] = rng.standard_normal(changed[51:].shape)
    np.testing.assert_array_equal(ts_fft_band(changed, d, 2, 5)[:51], whole[:51])


# ----------------------------------------------------------------------------- intraday fields


def test_buy_sell_split_of_hand_worked_bars() -> None:
    #               open   high   low    close  volume
    bars = np.array(
        [
            [10.0, 12.0, 9.0, 11.0, 300.0],  # close 2/3 up the range: 200 buy, 100 sell
            [10.0, 12.0, 9.0, 9.0, 300.0],  # close at the low: all sell
            [10.0, 12.0, 9.0, 12.0, 300.0],  # close at the high: all buy
            [10.0, 10.0, 10.0, 10.0, 50.0],  # no range, flat: half / half
            [9.0, 10.0, 10.0, 10.0, 40.0],  # no range, close above open: all buy
            [11.0, 10.0, 10.0, 10.0, 40.0],  # no range, close below open: all sell
            [10.0, 12.0, 9.0, 13.0, 90.0],  # close above the high (bad data): clipped to all buy
            [10.0, 12.0, 9.0, np.nan, 90.0],  # missing close: NaN
        ]
    )
    cube = [np.ascontiguousarray(bars[:, k].reshape(1, 1, -1)) for k in range(5)]
    buy, sell = buy_sell_volume(*cube)
    np.testing.assert_allclose(buy[0, 0], [200, 0, 300, 25, 40, 0, 90, np.nan], equal_nan=True)
    np.testing.assert_allclose(sell[0, 0], [100, 300, 0, 25, 0, 40, 0, np.nan], equal_nan=True)


def test_minute_returns_of_hand_worked_days() -> None:
    close = np.array(
        [
            [
                [10.0, 11.0, np.nan, 12.1, 0.0, 5.0],  # a gap, then a zero price
                [np.nan, 4.0, 2.0, np.nan, np.nan, 3.0],  # starts late, a two-minute gap
            ]
        ]
    )
    expected = [
        [np.nan, 0.1, np.nan, 0.1, -1.0, np.nan],
        [np.nan, np.nan, -0.5, np.nan, np.nan, 0.5],
    ]
    np.testing.assert_allclose(minute_returns(close)[0], expected, rtol=1e-12, equal_nan=True)
    two_days = np.concatenate([close, close + 1.0])
    np.testing.assert_allclose(minute_returns(two_days)[0], expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(minute_returns(two_days)[1, 0, 0])  # no return across the night


# ----------------------------------------------------------------------------- registry


def test_spectral_operators_are_registered_with_their_argument_kinds() -> None:
    intraday_names = [f.__name__ for f in INTRADAY_REDUCERS]
    for name in intraday_names:
        spec = REGISTRY[name]
        assert spec.family == "spectral" and spec.args[0].kind is Kind.INTRADAY
        assert spec.lookback({k.name: k.default for k in spec.args if k.default}) == 0
    coherence = [a.kind for a in REGISTRY["fft_coherence"].args]
    assert coherence == [Kind.INTRADAY, Kind.INTRADAY, Kind.CONST, Kind.CONST]
    ts_band = REGISTRY["ts_fft_band"]
    assert [a.kind for a in ts_band.args] == [Kind.SERIES, Kind.WINDOW, Kind.CONST, Kind.CONST]
    assert ts_band.lookback({"d": 20, "low": 2, "high": 5}) == 19
    assert REGISTRY["fft_band"].min_arity == 1 and REGISTRY["fft_band"].args[1].lower == 1

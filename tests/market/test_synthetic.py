"""The synthetic market: determinism, planted signals (checked with scipy / numpy FFT), realism."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from miner.errors import DataError
from miner.market import MarketData
from miner.market.synthetic import (
    PLANTED_DAILY_FORMULA,
    PLANTED_DAILY_SIGN,
    planted_intraday_mask,
    synthetic_frames,
    synthetic_market,
)

SMALL = dict(n_instruments=40, n_days=60, seed=7, minute_days=20)


@pytest.fixture(scope="module")
def small() -> MarketData:
    return synthetic_market(**SMALL)


def test_same_seed_same_market_and_another_seed_another():
    first, again = synthetic_market(**SMALL), synthetic_market(**SMALL)
    assert first.fingerprint == again.fingerprint
    for name in first.fields:
        np.testing.assert_array_equal(first.fields[name], again.fields[name])
    for name in first.intraday:
        np.testing.assert_array_equal(first.intraday[name], again.intraday[name])
    np.testing.assert_array_equal(planted_intraday_mask(first), planted_intraday_mask(again))
    assert synthetic_market(**{**SMALL, "seed": 8}).fingerprint != first.fingerprint


def _mean_rank_ic(close: np.ndarray) -> float:
    """rank(delta(close, 5)) against label[t] = close[t+2] / close[t+1] - 1, spearman per date."""
    prices = pd.DataFrame(close)
    factor = (prices - prices.shift(5)).to_numpy()
    label = (prices.shift(-2) / prices.shift(-1) - 1).to_numpy()
    daily = []
    for row in range(len(prices)):
        valid = ~np.isnan(factor[row]) & ~np.isnan(label[row])
        if valid.sum() >= 10:
            daily.append(spearmanr(factor[row, valid], label[row, valid])[0])
    return float(np.mean(daily))


@pytest.mark.parametrize("strength", [0.05, 0.15])
def test_planted_daily_formula_rank_ic_is_in_the_documented_band(strength):
    assert PLANTED_DAILY_FORMULA == "rank(delta(close, 5))" and PLANTED_DAILY_SIGN == -1
    market = synthetic_market(seed=11, signal_strength=strength)
    sampling = 3.0 / np.sqrt(market.N * market.T)
    ic = _mean_rank_ic(market.fields["close"])
    assert -1.2 * strength - sampling <= ic <= -0.8 * strength + sampling, ic


def test_without_a_planted_signal_the_rank_ic_is_noise():
    market = synthetic_market(seed=11, signal_strength=0.0)
    assert abs(_mean_rank_ic(market.fields["close"])) < 3.0 / np.sqrt(market.N * market.T)


def test_pulse_names_have_more_volume_power_in_the_2_to_5_minute_band(small):
    volume = small.intraday["volume"][-20:]
    pulse = planted_intraday_mask(small)[-20:] > 0
    complete = ~np.isnan(volume).any(axis=2)
    power = np.abs(np.fft.rfft(volume - volume.mean(axis=2, keepdims=True), axis=2)) ** 2
    frequency = np.fft.rfftfreq(small.M, d=1.0)  # cycles per minute
    band = (frequency >= 1 / 5) & (frequency <= 1 / 2)
    ratio = power[..., band].sum(axis=2) / power[..., 1:].sum(axis=2)
    assert (complete & pulse).sum() >= 20 and (complete & ~pulse).sum() >= 100
    assert ratio[complete & pulse].mean() > ratio[complete & ~pulse].mean() + 0.15


def test_pulse_state_is_persistent_and_covers_about_a_fifth_of_names():
    market = synthetic_market(seed=3)
    mask = planted_intraday_mask(market)
    listed = ~np.isnan(market.fields["close"])
    assert set(np.unique(mask)) == {0.0, 1.0} and not (mask[~listed] > 0).any()
    assert 0.15 < mask[listed].mean() < 0.25
    both = listed[1:] & listed[:-1]
    stay = (mask[1:] > 0) & (mask[:-1] > 0) & both
    assert stay.sum() / ((mask[:-1] > 0) & both).sum() > 0.7


def test_planted_pulses_raise_the_return_two_rows_later():
    market = synthetic_market(seed=5, signal_strength=0.0, intraday_strength=0.01)
    close = market.fields["close"]
    label = close[2:] / close[1:-1] - 1  # label of rows 0..T-3
    mask = planted_intraday_mask(market)[:-2] > 0
    demeaned = label - np.nanmean(label, axis=1, keepdims=True)
    lift = np.nanmean(demeaned[mask]) - np.nanmean(demeaned[~mask])
    assert 0.006 < lift < 0.014


def test_late_listings_holes_and_sane_prices(small):
    close = small.fields["close"]
    missing = np.isnan(close)
    first_valid = np.argmax(~missing, axis=0)
    assert (first_valid > 0).any()  # some names list late, NaN before
    after_listing = np.arange(small.T)[:, None] > first_valid[None, :]
    assert (missing & after_listing).any()  # suspensions after listing
    fields = small.fields
    for array in list(fields.values()) + list(small.intraday.values()):
        assert not np.isinf(array).any()
    for name in ("open", "high", "low", "close", "vwap"):
        assert (fields[name][~missing] > 0).all(), name
    assert (fields["high"][~missing] >= fields["low"][~missing]).all()
    for name in ("open", "close", "vwap"):
        assert (fields[name][~missing] <= fields["high"][~missing]).all()
        assert (fields[name][~missing] >= fields["low"][~missing]).all()
    assert (fields["volume"][~missing] > 0).all()
    np.testing.assert_allclose(fields["amount"], fields["vwap"] * fields["volume"], equal_nan=True)
    expected_returns = pd.DataFrame(close).pct_change(fill_method=None).to_numpy()
    np.testing.assert_allclose(fields["returns"], expected_returns, equal_nan=True)
    assert small.dates[0] == np.datetime64("2020-01-01") and np.is_busday(small.dates).all()
    assert small.is_group("sector") and len(small.groups["sector"]) == 8


def test_minute_bars_aggregate_to_the_daily_bars(small):
    days = slice(small.T - 20, small.T)
    assert small.M == 390 and np.isnan(small.intraday["close"][: small.T - 20]).all()
    minute = {name: cube[days] for name, cube in small.intraday.items()}
    daily = {name: small.fields[name][days] for name in ("open", "high", "low", "close", "volume")}
    listed = ~np.isnan(daily["close"])
    np.testing.assert_array_equal(minute["close"][..., -1], daily["close"])
    np.testing.assert_array_equal(minute["open"][..., 0], daily["open"])
    np.testing.assert_allclose(minute["volume"].sum(axis=2)[listed], daily["volume"][listed], rtol=1e-12)
    assert not np.isnan(minute["close"][listed]).any()  # a listed day has every minute
    assert (minute["high"][listed].max(axis=1) <= daily["high"][listed]).all()
    assert (minute["low"][listed].min(axis=1) >= daily["low"][listed]).all()
    assert (minute["high"] >= minute["low"])[listed].all()
    assert (minute["close"][listed] > 0).all() and (minute["volume"][listed] > 0).all()


def test_frames_rebuild_the_same_market():
    params = {**SMALL, "minute_slots": 391}
    daily, minute = synthetic_frames(**params)
    assert list(daily.columns[:2]) == ["date", "instrument"] and "sector" in daily.columns
    assert minute["datetime"].dt.strftime("%H:%M").min() == "09:30"
    assert minute["datetime"].dt.strftime("%H:%M").max() == "16:00"
    assert MarketData.from_frame(daily, minute).fingerprint == synthetic_market(**params).fingerprint
    without_minutes, none = synthetic_frames(n_instruments=10, n_days=30, seed=1)
    assert none is None and without_minutes["date"].nunique() == 30


def test_planted_mask_needs_a_synthetic_market_and_arguments_are_checked(small):
    plain = MarketData(small.dates, small.instruments, {"close": small.fields["close"]})
    with pytest.raises(DataError, match="synthetic_market"):
        planted_intraday_mask(plain)
    with pytest.raises(DataError, match="n_sectors"):
        synthetic_market(n_instruments=10, n_days=30, n_sectors=20)
    with pytest.raises(DataError, match="minute_slots"):
        synthetic_market(n_instruments=10, n_days=30, minute_days=5, minute_slots=500)


# ----------------------------------------------------------------------------- the A-share mode

CN = dict(n_instruments=70, n_days=120, seed=4, session="cn", minute_days=5, limit_streak_share=0.02)


@pytest.fixture(scope="module")
def cn() -> MarketData:
    return synthetic_market(**CN)


def a_share_limit(previous: float, percent: float, sign: int) -> float:
    """Half-up rounding to the cent, in decimal arithmetic."""
    exact = Decimal(repr(previous)) * (100 + sign * Decimal(repr(percent))) / 100
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_cn_mode_has_a_share_codes_and_prices_inside_the_limits(cn):
    boards = {code[:3] for code in cn.instruments}
    assert {"600", "000", "300", "688", "830"} <= boards
    assert all(code[-3:] in (".SH", ".SZ", ".BJ") and code[:6].isdigit() for code in cn.instruments)
    close = cn.fields["close"]
    for name in ("open", "high", "low", "close", "vwap"):
        values = cn.fields[name][np.isfinite(cn.fields[name])]
        np.testing.assert_array_equal(values, np.round(values, 2), err_msg=name)  # 0.01 CNY ticks
    percent = {"688": 20.0, "830": 30.0, "300": None}
    previous = pd.DataFrame(close).ffill().shift(1).to_numpy()
    for column, code in enumerate(cn.instruments):
        for row in np.flatnonzero(np.isfinite(close[:, column]) & np.isfinite(previous[:, column])):
            day = cn.dates[row]
            limit = percent.get(code[:3], 10.0) or (20.0 if day >= np.datetime64("2020-08-24") else 10.0)
            up = a_share_limit(float(previous[row, column]), limit, +1)
            down = a_share_limit(float(previous[row, column]), limit, -1)
            assert down <= cn.fields["low"][row, column] <= cn.fields["high"][row, column] <= up, (code, day)


def test_cn_mode_plants_locked_limit_up_streaks_that_the_rules_flag(cn):
    close, limit_up = cn.fields["close"], cn.fields["limit_up"]
    one_price = (cn.fields["high"] == cn.fields["low"]) & (cn.fields["open"] == close)
    locked = one_price & (close == limit_up)
    assert 20 < locked.sum() < 0.05 * np.isfinite(close).sum()
    assert (cn.fields["tradable"][locked] == 0).all()
    assert np.isnan(cn.fields["tradable"][np.isnan(close)]).all()
    after = locked[:-1] & np.isfinite(close[1:])
    assert locked[1:][after].mean() > 0.4  # streaks go on: the trap a close-to-close label falls in
    typical = np.nanmedian(np.where(locked, np.nan, cn.fields["volume"]), axis=0)  # per name
    assert np.median((cn.fields["volume"] / typical)[locked]) < 0.5  # thin: few sellers at the limit


def test_cn_minute_bars_are_on_the_240_slot_clock_and_match_the_daily_bars(cn):
    daily, minute = synthetic_frames(**CN)
    clock = minute["datetime"].dt.strftime("%H:%M")
    assert cn.M == 240 and clock.nunique() == 240
    assert clock.min() == "09:31" and clock.max() == "15:00" and not clock.between("11:31", "13:00").any()
    days = slice(cn.T - 5, cn.T)
    listed = np.isfinite(cn.fields["close"][days])
    np.testing.assert_array_equal(cn.intraday["close"][days][..., -1], cn.fields["close"][days])
    np.testing.assert_allclose(
        cn.intraday["volume"][days].sum(axis=2)[listed], cn.fields["volume"][days][listed], rtol=1e-12
    )
    imported = MarketData.from_frame(daily, minute, session="cn", rules="cn")
    assert imported.fingerprint == cn.fingerprint

"""The drip-stone family end to end: intraday derived fields in MarketData, formulas over them,
the planted pulse signal of the synthetic market, and no lookahead through the Evaluator.

References are independent of the code under test: hand-worked bars, numpy transcriptions of
the documented buy/sell rule, pandas rolling statistics, scipy's Spearman correlation and the
spectral kernels applied to arrays built outside MarketData.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from miner import Evaluator, MarketData, evaluate
from miner.errors import DataError
from miner.market import CN_SESSION
from miner.market.store import import_file, load_market
from miner.market.synthetic import synthetic_frames, synthetic_market
from operators.intraday import buy_sell_volume
from operators.spectral import fft_band
from tests.market.frames import daily_from_minutes, write

BARS = ("open", "high", "low", "close", "volume")
DERIVED = ("minute_returns", "buy_volume", "sell_volume")
PLANTED = dict(n_instruments=120, n_days=60, seed=11, minute_days=60)
SIGNAL = "fft_band(volume, 2, 5)"
US_NAMES = ["AAPL", "AMZN", "BABA", "F", "GE", "INTC", "JPM", "MSFT", "T", "VALE", "XOM", "BAC"]


@pytest.fixture(scope="module")
def planted() -> MarketData:
    """120 names x 60 days, minute bars on every day, ~20% of (day, name) cells pulsing."""
    return synthetic_market(**PLANTED)


@pytest.fixture(scope="module")
def evaluator(planted: MarketData) -> Evaluator:
    return Evaluator(planted)


def two_name_daily() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2020-01-02", "2020-01-03"] * 2),
            "instrument": ["AAA", "AAA", "BBB", "BBB"],
            "open": [10.0, 9.5, 20.0, 20.0],
            "high": [11.0, 10.0, 21.0, 21.0],
            "low": [9.0, 9.0, 19.0, 19.0],
            "close": [9.45, 9.9, 20.5, 20.5],
            "volume": [230.0, 10.0, 50.0, 50.0],
        }
    )


def buy_share_reference(o, h, lo, c):
    """The documented rule, written with numpy where(): range position, else the bar's direction."""
    with np.errstate(invalid="ignore", divide="ignore"):
        in_range = np.clip((c - lo) / (h - lo), 0.0, 1.0)
    direction = np.where(c > o, 1.0, np.where(c < o, 0.0, 0.5))
    return np.where(h > lo, in_range, direction)


def minute_returns_reference(close: np.ndarray) -> np.ndarray:
    """Per (day, name) row: close over the latest earlier valid close of the same day, minus 1."""
    rows = pd.DataFrame(close.reshape(-1, close.shape[-1]))
    previous = rows.ffill(axis=1).shift(1, axis=1)
    returns = (rows / previous.where(previous > 0) - 1.0).where(rows.notna())
    return returns.to_numpy().reshape(close.shape)


def spearman_per_date(factor: np.ndarray, label: np.ndarray) -> np.ndarray:
    out = np.full(factor.shape[0], np.nan)
    for t in range(factor.shape[0]):
        both = ~np.isnan(factor[t]) & ~np.isnan(label[t])
        if both.sum() >= 10:
            out[t] = scipy.stats.spearmanr(factor[t, both], label[t, both]).statistic
    return out


# ----------------------------------------------------------------------------- derived fields


def test_hand_worked_bars_give_the_documented_split_and_returns():
    minute = pd.DataFrame(
        {
            "datetime": pd.to_datetime(
                [
                    "2020-01-02 09:30",
                    "2020-01-02 09:31",
                    "2020-01-02 09:33",
                    "2020-01-02 09:34",
                    "2020-01-03 09:30",
                ]
            ),
            "instrument": "AAA",
            "open": [10.0, 10.5, 10.5, 10.0, 9.5],
            "high": [11.0, 10.5, 10.5, 10.5, 10.0],
            "low": [9.0, 10.5, 9.45, 10.5, 9.0],
            "close": [10.5, 10.5, 9.45, 10.5, 9.9],
            "volume": [100.0, 40.0, 60.0, 30.0, 10.0],
        }
    )
    market = MarketData.from_frame(two_name_daily(), minute)
    assert set(market.intraday) == set(BARS + DERIVED)
    buy, sell = market.intraday["buy_volume"][:, 0], market.intraday["sell_volume"][:, 0]
    # 09:30 closes at 3/4 of its range; 09:31 has no range and close == open: half and half;
    # 09:33 closes at its low; 09:34 has no range and closes above its open: all buying.
    np.testing.assert_allclose(buy[0, [0, 1, 3, 4]], [75.0, 20.0, 0.0, 30.0])
    np.testing.assert_allclose(sell[0, [0, 1, 3, 4]], [25.0, 20.0, 60.0, 0.0])
    np.testing.assert_allclose([buy[1, 0], sell[1, 0]], [9.0, 1.0])
    returns = market.intraday["minute_returns"][:, 0]
    np.testing.assert_allclose(returns[0, [1, 3, 4]], [0.0, 9.45 / 10.5 - 1.0, 10.5 / 9.45 - 1.0])
    assert np.isnan(returns[0, 0]) and np.isnan(returns[1, 0])  # first bar of each day
    missing = np.ones(391, dtype=bool)
    missing[[0, 1, 3, 4]] = False
    for name in DERIVED:
        cube = market.intraday[name]
        assert np.isnan(cube[0, 0, missing]).all() and np.isnan(cube[:, 1]).all(), name
        assert not cube.flags.writeable, name


def test_minute_bars_need_every_ohlcv_column():
    minute = pd.DataFrame(
        {
            "datetime": pd.to_datetime(["2020-01-02 09:30", "2020-01-02 09:31"]),
            "instrument": "BBB",
            "close": [20.0, 21.0],
            "volume": [5.0, 7.0],
        }
    )
    with pytest.raises(DataError, match=r"^frame: missing required column\(s\) open, high, low "):
        MarketData.from_frame(two_name_daily(), minute)


def test_memory_limit_counts_the_derived_cubes():
    minute = pd.DataFrame(
        {"datetime": pd.to_datetime(["2020-01-02 09:30"]), "instrument": "AAA"}
        | {name: [1.0] for name in BARS}
    )
    cube_bytes = 8 * 2 * 2 * 391
    MarketData.from_frame(two_name_daily(), minute, max_intraday_bytes=8 * cube_bytes)
    with pytest.raises(DataError, match="GiB"):
        MarketData.from_frame(two_name_daily(), minute, max_intraday_bytes=8 * cube_bytes - 1)


def test_synthetic_derived_fields_follow_the_rule(planted):
    bars = {name: planted.intraday[name] for name in BARS}
    share = buy_share_reference(bars["open"], bars["high"], bars["low"], bars["close"])
    np.testing.assert_allclose(planted.intraday["buy_volume"], bars["volume"] * share, rtol=1e-12)
    np.testing.assert_allclose(
        planted.intraday["buy_volume"] + planted.intraday["sell_volume"], bars["volume"], rtol=1e-12
    )
    np.testing.assert_allclose(
        planted.intraday["minute_returns"], minute_returns_reference(bars["close"]), rtol=1e-12
    )


def test_the_split_is_the_same_whatever_threads_share_the_days(planted):
    bars = [np.array(planted.intraday[name]) for name in BARS]
    one = buy_sell_volume(*bars)
    for workers in (2, 3, 100):
        for mine, reference in zip(buy_sell_volume(*bars, workers=workers), one):
            np.testing.assert_array_equal(mine, reference)


def test_store_and_frame_give_the_same_derived_fields_and_fingerprint(tmp_path):
    daily, minute = synthetic_frames(n_instruments=12, n_days=8, seed=2, minute_days=4)
    daily_file, minute_file = tmp_path / "daily.parquet", tmp_path / "minute.parquet"
    daily.to_parquet(daily_file)
    minute.to_parquet(minute_file)
    store = tmp_path / "market.duckdb"
    import_file(daily_file, store=store)
    import_file(minute_file, kind="minute", store=store)
    loaded = load_market(store, minute=True)
    framed = MarketData.from_frame(daily, minute)
    assert set(loaded.intraday) == set(framed.intraday) == set(BARS + DERIVED)
    for name in DERIVED:
        np.testing.assert_array_equal(loaded.intraday[name], framed.intraday[name], err_msg=name)
    assert loaded.fingerprint == framed.fingerprint


def test_fft_band_of_buy_volume_is_the_kernel_on_the_split(planted, evaluator):
    buy, sell = buy_sell_volume(*(np.array(planted.intraday[name]) for name in BARS))
    np.testing.assert_array_equal(evaluate("fft_band(buy_volume, 2, 5)", planted), fft_band(buy, 2, 5))
    np.testing.assert_array_equal(evaluator.evaluate("fft_band(sell_volume, 5, 10)"), fft_band(sell, 5, 10))


# ----------------------------------------------------------------------------- the planted signal


def test_planted_pulses_score_higher(planted, evaluator):
    factor = evaluator.evaluate(SIGNAL)
    ic = spearman_per_date(factor, planted.pulse_mask)
    assert np.isfinite(ic).all()
    assert ic.mean() > 0.5, ic.mean()


def test_rolling_cv_of_the_band_ratio(evaluator):
    band = pd.DataFrame(evaluator.evaluate(SIGNAL))
    assert band.isna().any().any()  # late listings and suspensions leave holes
    expected = band.rolling(20, min_periods=2).std() / band.rolling(20, min_periods=1).mean()
    cv = evaluator.evaluate(f"ts_std({SIGNAL}, 20) / ts_mean({SIGNAL}, 20)")
    np.testing.assert_allclose(cv, expected.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(evaluator.evaluate(f"ts_cv({SIGNAL}, 20)"), cv, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- no lookahead


LOOKAHEAD_FORMULAS = [
    SIGNAL,
    "fft_band(buy_volume, 2, 5) - fft_band(sell_volume, 2, 5)",
    "fft_coherence(volume, minute_returns, 2, 5)",
    "ts_mean(fft_band_shift(buy_volume, 2, 5), 3)",
    "rank(fft_kurtosis(volume))",
    f"ts_cv({SIGNAL}, 4)",
]


def test_changing_a_later_days_minutes_leaves_earlier_rows_unchanged():
    daily, minute = synthetic_frames(n_instruments=24, n_days=12, seed=4, minute_days=12)
    changed_day = 8
    day = minute["datetime"].dt.normalize()
    target = day == np.sort(day.unique())[changed_day]
    rng = np.random.default_rng(0)
    later = minute.copy()
    shuffled = later.loc[target, ["open", "high", "low", "close"]].sample(frac=1.0, random_state=1)
    later.loc[target, ["open", "high", "low", "close"]] = shuffled.to_numpy()
    later.loc[target, "volume"] *= rng.lognormal(0.0, 1.0, int(target.sum()))
    later = later.drop(later.index[target.to_numpy()][::7])
    base, moved = (
        Evaluator(MarketData.from_frame(daily, minute)),
        Evaluator(MarketData.from_frame(daily, later)),
    )
    for formula in LOOKAHEAD_FORMULAS:
        before, after = base.evaluate(formula), moved.evaluate(formula)
        np.testing.assert_array_equal(before[:changed_day], after[:changed_day], err_msg=formula)
        assert not np.array_equal(before[changed_day], after[changed_day], equal_nan=True), formula


# ----------------------------------------------------------------------------- the seed's parity
#
# `calc_band_power` and `volume_net_buy_safe` below transcribe the drip-stone note's own code:
# one (day, stock) series at a time, missing minutes dropped (the series compressed), MAD
# despike, demean, Hann window over the remaining minutes, zero-pad to 256, rfft, band ratio.


def calc_band_power(minutes: np.ndarray, low: float = 2.0, high: float = 5.0) -> float:
    x = minutes[~np.isnan(minutes)]
    median = np.median(x)
    mad = np.median(np.abs(x - median))
    if not np.isclose(mad, 0.0):
        x = np.clip(x, median - 3 * 1.4826 * mad, median + 3 * 1.4826 * mad)
    x = (x - x.mean()) * np.hanning(len(x))
    n = max(len(x), 256)
    power = np.abs(np.fft.rfft(x, n=n)) ** 2
    freqs = np.fft.rfftfreq(n, d=1.0)
    nonzero = freqs > 0
    band = nonzero & (freqs >= 1.0 / high) & (freqs <= 1.0 / low)
    total = power[nonzero].sum()
    return power[band].sum() / total if total > 0 else np.nan


def volume_net_buy_safe(buy: np.ndarray, sell: np.ndarray) -> float:
    return calc_band_power(buy) - calc_band_power(sell)


def seed_panel(cube: np.ndarray, reduce=calc_band_power) -> np.ndarray:
    """The seed's value of every (day, stock) series with at least 10 minutes; NaN elsewhere."""
    out = np.full(cube.shape[:2], np.nan)
    for day, stock in zip(*np.nonzero((~np.isnan(cube)).sum(axis=2) >= 10)):
        out[day, stock] = reduce(cube[day, stock])
    return out


def seed_buy_sell(market: MarketData) -> tuple[np.ndarray, np.ndarray]:
    """Buy / sell volume from the documented split rule (numpy, not the kernel)."""
    o, h, lo, c, v = (np.array(market.intraday[name]) for name in BARS)
    buy = v * buy_share_reference(o, h, lo, c)
    return buy, v - buy


def assert_parity(market: MarketData, complete: np.ndarray) -> None:
    """fft_band of volume, and the buy-minus-sell pair, equal the seed on the complete days."""
    ours = evaluate("fft_band(volume, 2, 5)", market)
    np.testing.assert_allclose(
        ours[complete], seed_panel(market.intraday["volume"])[complete], rtol=0, atol=1e-12
    )
    buy, sell = seed_buy_sell(market)
    net = evaluate("fft_band(buy_volume, 2, 5) - fft_band(sell_volume, 2, 5)", market)
    both = np.concatenate([buy, sell], axis=2)
    seed_net = seed_panel(
        both, lambda pair: volume_net_buy_safe(pair[: pair.size // 2], pair[pair.size // 2 :])
    )
    checked = complete & np.isfinite(net)
    assert checked.sum() > 0.9 * complete.sum()
    np.testing.assert_allclose(net[checked], seed_net[checked], rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def a_share() -> MarketData:
    """The synthetic market in its A-share mode: 240 one-minute bars a day on the cn clock."""
    return synthetic_market(n_instruments=40, n_days=30, seed=8, session="cn", minute_days=30)


def test_fft_band_equals_the_seed_on_the_synthetic_a_share_market(a_share):
    assert a_share.M == 240
    complete = (~np.isnan(a_share.intraday["volume"])).all(axis=2)
    assert complete.sum() > 900
    assert_parity(a_share, complete)


def test_fft_band_equals_the_seed_on_us_bars_relabelled_to_the_a_share_clock(shared_data, tmp_path):
    """The first 240 bars of every US day with at least 240, put on 09:31-11:30 + 13:01-15:00,
    through the store as a user imports them (`--session cn`)."""
    us = pd.read_parquet(shared_data / "us_minute_2018q1.parquet", filters=[("instrument", "in", US_NAMES)])
    day = us["datetime"].dt.normalize()
    us = us.assign(
        n=us.groupby([day, "instrument"]).cumcount(),
        size=us.groupby([day, "instrument"])["close"].transform("size"),
    )
    first = us[(us["size"] >= 240) & (us["n"] < 240)]
    clock = CN_SESSION.slot_times().astype("timedelta64[m]")
    minute = first.assign(datetime=first["datetime"].dt.normalize() + pd.to_timedelta(clock[first["n"]]))
    daily = daily_from_minutes(minute)
    store = tmp_path / "cn.duckdb"
    import_file(write(daily, tmp_path / "d.parquet"), store=store)
    import_file(
        write(minute.drop(columns=["n", "size"]), tmp_path / "m.parquet"),
        kind="minute",
        store=store,
        session="cn",
    )
    market = load_market(store, minute=True)
    complete = (~np.isnan(market.intraday["volume"])).all(axis=2)
    assert market.M == 240 and complete.sum() > 500
    assert_parity(market, complete)
    # the same bars on one 09:31-15:00 interval carry 90 empty lunch slots: not the seed's value
    lunch = MarketData.from_frame(
        daily, minute.drop(columns=["n", "size"]), session="09:31-15:00@Asia/Shanghai"
    )
    gap = np.abs(evaluate("fft_band(volume, 2, 5)", lunch) - seed_panel(market.intraday["volume"]))[complete]
    assert np.median(gap) > 1e-3


def test_the_seeds_gap_convention_is_fft_band_dropna(a_share):
    rng = np.random.default_rng(2)
    volume = np.array(a_share.intraday["volume"])
    holes = rng.random(volume.shape) < 0.1
    holes[:, :, 100:160] |= rng.random(volume.shape[:2])[:, :, None] < 0.2  # some days lose an hour
    volume[holes] = np.nan
    gappy = MarketData(a_share.dates, a_share.instruments, a_share.fields, {"volume": volume})
    seed = seed_panel(volume)
    dropna = evaluate("fft_band_dropna(volume, 2, 5)", gappy)
    np.testing.assert_allclose(dropna, seed, rtol=0, atol=1e-12)
    zero_filled = evaluate("fft_band(volume, 2, 5)", gappy)
    assert np.nanmedian(np.abs(zero_filled - seed)) > 1e-3  # the documented difference
    full = evaluate("fft_band_dropna(volume, 2, 5)", a_share)
    np.testing.assert_allclose(full, evaluate("fft_band(volume, 2, 5)", a_share), rtol=0, atol=1e-14)

"""A-share trading rules and the `tradable` field, checked against hand-worked limit prices
(decimal arithmetic, half-up rounding), against a full load for windowed loads, and against the
label trap they exist to close: locked limit-up days."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest

from evaluation import forward_returns, rank_ic
from miner import evaluate
from miner.errors import DataError
from miner.market import MarketData
from miner.market.rules import trading_rules
from miner.market.store import import_file, load_market
from miner.market.synthetic import synthetic_frames, synthetic_market
from tests.market.frames import write


def limit(previous: float, percent: int, sign: int) -> float:
    """The exchange's limit price: previous close x (1 +- percent), half up to 0.01 (decimal)."""
    exact = Decimal(str(previous)) * (Decimal(100 + sign * percent) / Decimal(100))
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def bars(rows: list[tuple[str, str, float, float, float, float, float]], **extra) -> pd.DataFrame:
    """(date, instrument, open, high, low, close, volume) rows as a daily frame."""
    frame = pd.DataFrame(rows, columns=["date", "instrument", "open", "high", "low", "close", "volume"])
    return frame.assign(**extra)


def field(market: MarketData, name: str, day: str, instrument: str) -> float:
    row = int(np.searchsorted(market.dates, np.datetime64(day)))
    column = int(np.searchsorted(market.instruments, instrument))
    return float(market.fields[name][row, column])


def test_limit_prices_by_board_and_date_round_half_up_in_cents():
    # previous closes chosen so that x 1.1 etc. end in a half cent: 10.05 x 1.1 = 11.055 -> 11.06
    cases = [
        ("600000.SH", "2020-08-21", 10.05, 10),
        ("000001.SZ", "2020-08-21", 9.15, 10),
        ("300750.SZ", "2020-08-21", 10.05, 10),  # ChiNext before its reform
        ("300750.SZ", "2020-08-24", 10.05, 20),  # ... and from 2020-08-24
        ("301001.SZ", "2021-03-01", 3.33, 20),
        ("688981.SH", "2020-08-21", 10.05, 20),  # STAR
        ("830799.BJ", "2022-01-04", 10.05, 30),  # Beijing
        ("920001.BJ", "2025-01-02", 7.77, 30),
    ]
    for code, day, previous, percent in cases:
        frame = bars(
            [("2000-01-03", code, 1.0, 1.0, 1.0, 1.0, 1.0)]  # an earlier first bar: listed long ago
            + [("2020-01-02", code, previous, previous, previous, previous, 10.0)]
            + [(day, code, previous, previous, previous, previous, 10.0)]
        )
        market = MarketData.from_frame(frame, rules="cn")
        assert field(market, "limit_up", day, code) == limit(previous, percent, +1), (code, day)
        assert field(market, "limit_down", day, code) == limit(previous, percent, -1), (code, day)
    assert limit(10.05, 10, +1) == 11.06 and limit(10.05, 10, -1) == 9.05


def test_st_names_of_the_main_board_have_five_percent_until_july_2025():
    days = ["2000-01-03", "2025-07-04", "2025-07-07"]
    frame = bars([(day, "600001.SH", 10.0, 10.0, 10.0, 10.0, 5.0) for day in days], st=[True, True, True])
    market = MarketData.from_frame(frame, rules="cn")
    assert field(market, "limit_up", "2025-07-04", "600001.SH") == 10.5
    assert field(market, "limit_up", "2025-07-07", "600001.SH") == 11.0
    numeric = MarketData.from_frame(frame.assign(st=[1.0, 1.0, 0.0]), rules="cn")  # a 0/1 column works too
    assert field(numeric, "limit_down", "2025-07-04", "600001.SH") == 9.5
    assert field(numeric, "limit_down", "2025-07-07", "600001.SH") == 9.0


def test_tradable_flags_suspended_locked_and_closing_at_a_limit():
    code = "600519.SH"
    rows = [
        ("2021-01-04", code, 10.0, 10.2, 9.9, 10.0, 100.0),  # first bar of the data
        ("2021-01-05", code, 11.0, 11.0, 11.0, 11.0, 5.0),  # one-price at the limit up (10 x 1.1)
        ("2021-01-06", code, 11.5, 12.1, 11.4, 12.1, 50.0),  # closes at the limit up (11 x 1.1)
        ("2021-01-07", code, 12.0, 12.0, 12.0, 12.0, 0.0),  # zero volume: suspended
        ("2021-01-11", code, 10.8, 10.8, 10.8, 10.8, 9.0),  # locked down: 12.0 (the last close) x 0.9
        ("2021-01-12", code, 10.8, 11.0, 10.5, 10.6, 80.0),  # an ordinary day
    ]
    other = [(day, "000002.SZ", 5.0, 5.0, 5.0, 5.0, 1.0) for day in ("2021-01-04", "2021-01-08")]
    frame = bars(rows + other)
    strict = MarketData.from_frame(frame, rules="cn")
    locked_only = MarketData.from_frame(frame, rules="cn_locked")
    us = MarketData.from_frame(frame, rules="us")
    days = ["2021-01-04", "2021-01-05", "2021-01-06", "2021-01-07", "2021-01-08", "2021-01-11", "2021-01-12"]
    column = int(np.searchsorted(strict.instruments, code))
    np.testing.assert_array_equal(strict.dates, np.array(days, dtype="datetime64[D]"))
    nan = np.nan
    np.testing.assert_array_equal(strict.fields["tradable"][:, column], [1, 0, 0, 0, nan, 0, 1])
    np.testing.assert_array_equal(locked_only.fields["tradable"][:, column], [1, 0, 1, 0, nan, 0, 1])
    np.testing.assert_array_equal(us.fields["tradable"][:, column], [1, 1, 1, 0, nan, 1, 1])
    assert "limit_up" not in us.fields and "tradable" not in MarketData.from_frame(frame).fields
    # the limit after a day without a bar is from the last close there was
    assert field(strict, "limit_down", "2021-01-11", code) == 10.8
    assert evaluate("tradable * 2", strict)[1, column] == 0.0  # formulas read it


def test_limit_columns_and_pre_close_in_the_data_take_precedence():
    code = "600000.SH"
    rows = [("2000-01-03", code, 9.0, 9.0, 9.0, 9.0, 1.0), ("2021-01-04", code, 10.0, 10.0, 10.0, 10.0, 9.0)]
    rows += [("2021-01-05", code, 10.5, 10.5, 10.5, 10.5, 2.0)]
    frame = bars(rows)
    ruled = MarketData.from_frame(frame, rules="cn")
    assert field(ruled, "limit_up", "2021-01-05", code) == 11.0
    assert field(ruled, "tradable", "2021-01-05", code) == 1.0
    given = MarketData.from_frame(frame.assign(limit_up=[np.nan, np.nan, 10.5]), rules="cn")
    assert field(given, "limit_up", "2021-01-05", code) == 10.5
    assert field(given, "limit_up", "2021-01-04", code) == 9.9  # computed where the column is NaN
    assert field(given, "tradable", "2021-01-05", code) == 0.0
    ex_rights = MarketData.from_frame(frame.assign(pre_close=[np.nan, np.nan, 9.55]), rules="cn")
    assert field(ex_rights, "limit_up", "2021-01-05", code) == 10.51  # 9.55 x 1.1 = 10.505 -> 10.51


def test_new_listings_trade_without_limits_for_their_first_days():
    start = [("2019-01-02", "600000.SH", 5.0, 5.0, 5.0, 5.0, 1.0)]  # the data's first date
    days = pd.bdate_range("2023-04-10", periods=7).strftime("%Y-%m-%d")
    prices = [10.0, 14.4, 17.28, 20.0, 22.0, 24.2, 26.62]  # rises of 44%, 20%, 16%, then 10% a day
    frame = bars(
        start
        + [
            (day, code, p, p, p, p, 9.0)
            for code in ("688001.SH", "603000.SH", "001001.SZ")
            for day, p in zip(days, prices)
        ]
        + [(day, "600002.SH", p, p, p, p, 9.0) for day, p in zip(days[:3], prices)]  # pre-registration
    )
    frame.loc[frame["instrument"] == "600002.SH", "date"] = ["2023-04-03", "2023-04-04", "2023-04-06"]
    market = MarketData.from_frame(frame, rules="cn")
    for code in ("688001.SH", "603000.SH", "001001.SZ"):
        limits = [field(market, "limit_up", day, code) for day in days]
        assert np.isnan(limits[:5]).all() and limits[5:] == [
            limit(22.0, 20 if code[:3] == "688" else 10, 1),
            limit(24.2, 20 if code[:3] == "688" else 10, 1),
        ]
    up = [field(market, "limit_up", day, "600002.SH") for day in ("2023-04-03", "2023-04-04", "2023-04-06")]
    assert np.isnan(up[0]) and up[1:] == [11.0, limit(14.4, 10, 1)]


def test_rules_need_a_share_codes_and_known_names():
    frame = bars([("2021-01-04", "AAPL", 1.0, 1.0, 1.0, 1.0, 1.0)])
    with pytest.raises(DataError, match="instrument 'AAPL' has no six-digit A-share code"):
        MarketData.from_frame(frame, rules="cn")
    with pytest.raises(DataError, match="unknown trading rules 'hk'"):
        trading_rules("hk")
    assert "tradable" in MarketData.from_frame(frame, rules="us").fields


def test_a_store_with_rules_loads_any_window_as_the_full_history_does(tmp_path):
    daily, _ = synthetic_frames(n_instruments=30, n_days=120, seed=3, session="cn", limit_streak_share=0.03)
    store = tmp_path / "cn.duckdb"
    report = import_file(write(daily, tmp_path / "d.parquet"), store=store, rules="cn")
    assert "trading rules cn" in str(report)
    full = load_market(store)
    assert (
        full.fingerprint
        == synthetic_market(
            n_instruments=30, n_days=120, seed=3, session="cn", limit_streak_share=0.03
        ).fingerprint
    )
    for start in (1, 17, 60):
        window = load_market(store, start=full.dates[start])
        for name in ("limit_up", "limit_down", "tradable"):
            np.testing.assert_array_equal(window.fields[name], full.fields[name][start:], err_msg=name)
    names = list(full.instruments[::7])
    part = load_market(store, start=full.dates[40], instruments=names)
    np.testing.assert_array_equal(
        part.fields["tradable"], full.select(full.dates[40], None, names).fields["tradable"]
    )
    with pytest.raises(DataError, match="trading rules 'us', but the market store .* records 'cn'"):
        import_file(tmp_path / "d.parquet", store=store, rules="us")
    later = daily.assign(instrument=daily["instrument"].where(daily.index > 0, "NOTACODE"))
    with pytest.raises(DataError, match="instrument 'NOTACODE' has no six-digit A-share code"):
        import_file(write(later, tmp_path / "e.parquet"), store=store)  # the store's rules apply
    plain = tmp_path / "plain.duckdb"
    import_file(tmp_path / "e.parquet", store=plain)
    with pytest.raises(DataError, match="instrument 'NOTACODE' has no six-digit"):
        import_file(tmp_path / "d.parquet", store=plain, rules="cn")  # the stored names count too
    assert "tradable" not in load_market(plain).fields  # nothing recorded


# ------------------------------------------------------------------------------------------------
# the label trap: locked limit-up days
# ------------------------------------------------------------------------------------------------


def locked_streak_panel(seed: int = 5, n: int = 200, t: int = 160) -> tuple[pd.DataFrame, np.ndarray]:
    """Main-board names with ordinary days and limit-up streaks locked at one price; a streak goes
    on after each locked day with probability 0.6, and nothing else predicts returns."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2021-01-04", periods=t).strftime("%Y-%m-%d")
    codes = [f"{600000 + i:06d}.SH" for i in range(n)]
    rows, locked = [], np.zeros((t, n), dtype=bool)
    for i, code in enumerate(codes):
        close, streak = round(float(rng.uniform(5, 50)), 2), False
        for row, day in enumerate(days):
            if row > 0:
                streak = (streak and rng.random() < 0.6) or (not streak and rng.random() < 0.03)
            if streak and row > 0:
                close = limit(close, 10, +1)
                rows.append((day, code, close, close, close, close, 1000.0))
                locked[row, i] = True
                continue
            if row > 0:
                close = min(
                    max(round(close * float(np.exp(rng.normal(0, 0.02))), 2), limit(close, 10, -1)),
                    limit(close, 10, 1) - 0.01,
                )
            rows.append((day, code, close, close * 1.01, close * 0.99, close, 50_000.0))
    return bars(rows), locked


def test_a_factor_that_flags_locked_days_has_a_large_rank_ic_only_without_the_mask():
    frame, locked = locked_streak_panel()
    market = MarketData.from_frame(frame, rules="cn")
    np.testing.assert_array_equal(market.fields["tradable"] == 0, locked)
    flags = evaluate("high <= low", market)  # 1 on one-price bars: the locked days
    np.testing.assert_array_equal(flags == 1, locked)
    close = market.fields["close"]
    plain = np.nanmean(rank_ic(flags, forward_returns(close)))
    masked = np.nanmean(rank_ic(flags, forward_returns(close, tradable=market.fields["tradable"])))
    assert plain > 0.1, plain
    assert abs(masked) < 0.02, masked

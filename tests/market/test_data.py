"""MarketData, long-frame validation and the DuckDB market store, checked against pandas."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from miner.errors import DataError
from miner.market import MarketData, SessionGrid, session_grid
from miner.market.store import MarketStore, import_file, load_market
from tests.market.frames import daily_from_minutes

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def small_daily() -> pd.DataFrame:
    """3 dates x 2 names, with a sector label, a suspect flag and a NaN open."""
    return pd.DataFrame(
        {
            "date": [
                "2020-01-02",
                "2020-01-02",
                "2020-01-03",
                "2020-01-03",
                "2020-01-06",
                "2020-01-06",
            ],
            "instrument": ["AAA", "BBB"] * 3,
            "open": [10.0, 20.0, np.nan, 21.0, 11.5, 20.5],
            "high": [10.5, 20.5, 11.2, 21.5, 12.0, 21.0],
            "low": [9.5, 19.5, 10.1, 20.0, 11.0, 20.0],
            "close": [10.0, 20.0, 11.0, 21.0, 11.5, 20.2],
            "volume": [1000, 2000, 1500, 0, 1200, 2500],
            "sector": ["Tech", "Energy"] * 3,
            "suspect": [False, False, True, False, False, False],
        }
    )


def with_bars(minute: pd.DataFrame) -> pd.DataFrame:
    """Minute rows given a close (and maybe a volume) as whole one-price OHLCV bars."""
    return minute.assign(open=minute["close"], high=minute["close"], low=minute["close"]).assign(
        volume=minute["volume"] if "volume" in minute else 1.0
    )


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def store_snapshot(path: Path) -> tuple:
    """Everything in the store: every table's rows (ordered) and the daily_bars columns."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = tuple(
            tuple(con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall())
            for name in ("daily_bars", "minute_bars", "data_changes", "store_meta")
        )
        columns = tuple(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'daily_bars' ORDER BY ordinal_position"
            ).fetchall()
        )
    finally:
        con.close()
    return (*tables, columns)


def sp500(shared_data: Path) -> pd.DataFrame:
    frame = pd.read_parquet(shared_data / "us_sp500_5yr_daily.parquet")
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


# ------------------------------------------------------------------------------------------------
# real data roundtrips
# ------------------------------------------------------------------------------------------------


def test_sp500_roundtrip_through_store_equals_pandas_pivot(shared_data, tmp_path):
    store = tmp_path / "market.duckdb"
    report = import_file(shared_data / "us_sp500_5yr_daily.parquet", store=store)
    market = load_market(store)
    frame = sp500(shared_data)

    assert report.rows == len(frame) == 619_040 and report.replaced == 0 and report.instruments == 505
    assert market.T == 1259 and market.N == 505 and market.M == 0
    close = frame.pivot(index="date", columns="instrument", values="close")
    np.testing.assert_array_equal(market.dates, close.index.to_numpy().astype("datetime64[D]"))
    assert list(market.instruments) == list(close.columns)
    wide = frame.pivot(
        index="date",
        columns="instrument",
        values=["open", "high", "low", "close", "volume", "sector"],
    )
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(market.field(name), wide[name].to_numpy(dtype=float), err_msg=name)
    sectors = wide["sector"].to_numpy(dtype=object)
    codes = market.field("sector")
    assert market.is_group("sector") and not market.is_group("close")
    assert (np.isnan(codes) == pd.isna(sectors)).all()
    labels = np.asarray(market.groups["sector"], dtype=object)
    assert (labels[codes[~np.isnan(codes)].astype(int)] == sectors[~pd.isna(sectors)]).all()
    assert "suspect" not in market.fields  # boolean columns are not fields
    # the same frame through from_frame gives the same panel, bit for bit
    assert MarketData.from_frame(frame).fingerprint == market.fingerprint


def test_minute_file_roundtrip_through_store_equals_pandas_reindex(shared_data, tmp_path):
    names = ["AAPL", "BABA", "CPN", "JUNO", "VALE", "XOM"]  # JUNO and CPN have 11 and 14 of 44 days
    minute = pd.read_parquet(shared_data / "us_minute_2018q1.parquet", filters=[("instrument", "in", names)])
    minute_file = tmp_path / "minute.parquet"
    minute.to_parquet(minute_file)
    day = minute["datetime"].dt.normalize()
    daily = daily_from_minutes(minute)
    store = tmp_path / "market.duckdb"
    import_file(write_csv(daily, tmp_path / "daily.csv"), store=store)
    report = import_file(minute_file, kind="minute", store=store)
    market = load_market(store, minute=True)

    assert report.rows == len(minute) and report.ignored_columns == ("sector",)
    assert (market.M, market.N, market.T) == (391, len(names), daily["date"].nunique())
    slot = ((minute["datetime"] - day) / pd.Timedelta(minutes=1)).astype(int) - (9 * 60 + 30)
    keys = pd.MultiIndex.from_product([pd.to_datetime(market.dates), market.instruments])
    for name in ("open", "high", "low", "close", "volume"):
        wide = (
            minute.assign(date=day, slot=slot)
            .set_index(["date", "instrument", "slot"])[name]
            .unstack("slot")
            .reindex(index=keys, columns=range(391))
        )
        expected = wide.to_numpy(dtype=float).reshape(market.T, market.N, 391)
        np.testing.assert_array_equal(market.intraday[name], expected, err_msg=name)
    assert MarketData.from_frame(daily, minute).fingerprint == market.fingerprint


# ------------------------------------------------------------------------------------------------
# the minute grid
# ------------------------------------------------------------------------------------------------


def test_minute_bars_land_on_their_slots_and_off_grid_bars_are_dropped(caplog):
    daily = small_daily()
    minute = pd.DataFrame(
        {
            "datetime": pd.to_datetime(
                [
                    "2020-01-02 09:30",
                    "2020-01-02 16:00",
                    "2020-01-03 12:00",  # on the grid
                    "2020-01-02 09:29",
                    "2020-01-02 16:01",
                    "2020-01-02 10:00:30",  # off the grid
                    "2020-01-04 10:00",  # a day without daily bars
                ],
                format="ISO8601",
            ),
            "instrument": ["AAA", "BBB", "AAA", "AAA", "AAA", "AAA", "AAA"],
            "close": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "volume": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
        }
    )
    with caplog.at_level(logging.WARNING, logger="miner.market.assemble"):
        market = MarketData.from_frame(daily, with_bars(minute))
    close = market.intraday["close"]
    assert close.shape == (3, 2, 391)
    assert close[0, 0, 0] == 1.0 and close[0, 1, 390] == 2.0 and close[1, 0, 150] == 3.0
    assert np.isnan(close).sum() == close.size - 3
    assert np.isnan(market.intraday["close"][2]).all()  # a daily date without minutes
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "dropped 1 minute bar(s) on days without daily bars" in messages
    assert "dropped 3 minute bar(s) off the us session 09:30-16:00 (America/New_York)" in messages


def test_custom_session_grid():
    grid = session_grid("09:30-09:34/2")
    assert grid == SessionGrid((("09:30", "09:34"),), step_minutes=2) and grid.spec == "09:30-09:34/2"
    minute = pd.DataFrame(
        {
            "datetime": pd.to_datetime(
                ["2020-01-02 09:30", "2020-01-02 09:32", "2020-01-02 09:33", "2020-01-02 09:34"]
            ),
            "instrument": "AAA",
            "close": [1.0, 2.0, 3.0, 4.0],
        }
    )
    market = MarketData.from_frame(small_daily(), with_bars(minute), session=grid)
    assert grid.slots == 3 and market.M == 3
    np.testing.assert_array_equal(market.intraday["close"][0, 0], [1.0, 2.0, 4.0])
    with pytest.raises(DataError, match="whole number of slots"):
        session_grid("09:30-09:35/2")


def test_intraday_memory_guard():
    minute = pd.DataFrame(
        {"datetime": pd.to_datetime(["2020-01-02 09:30"]), "instrument": "AAA", "close": [1.0]}
    )
    with pytest.raises(DataError, match="GiB"):
        MarketData.from_frame(small_daily(), with_bars(minute), max_intraday_bytes=1000)


# ------------------------------------------------------------------------------------------------
# upsert, change log, options
# ------------------------------------------------------------------------------------------------


def test_reimport_of_overlapping_dates_replaces_rows_without_duplicates(tmp_path):
    store = tmp_path / "market.duckdb"
    first = small_daily().assign(vwap=10.0)
    second = pd.DataFrame(
        {
            "date": ["2020-01-06", "2020-01-06", "2020-01-07"],
            "instrument": ["AAA", "BBB", "AAA"],
            "open": [1.0, 2.0, 3.0],
            "high": [1.5, 2.5, 3.5],
            "low": [0.5, 1.5, 2.5],
            "close": [1.2, 2.2, 3.2],
            "volume": [7.0, 8.0, 9.0],
            "sector": ["Tech", "Energy", "Tech"],
        }
    )
    import_file(write_csv(first, tmp_path / "a.csv"), store=store)
    report = import_file(write_csv(second, tmp_path / "b.csv"), store=store)
    assert report.replaced == 2 and report.rows == 3

    con = duckdb.connect(str(store), read_only=True)
    try:
        [(count, keys)] = con.execute(
            "SELECT count(*), count(DISTINCT (date, instrument)) FROM daily_bars"
        ).fetchall()
        changes = con.execute(
            "SELECT kind, first_date, rows FROM data_changes ORDER BY imported_at"
        ).fetchall()
    finally:
        con.close()
    assert count == keys == 7
    assert [(kind, str(day), rows) for kind, day, rows in changes] == [
        ("daily", "2020-01-02", 6),
        ("daily", "2020-01-06", 3),
    ]
    market = load_market(store)
    close = pd.DataFrame(market.fields["close"], index=market.dates, columns=market.instruments)
    assert close.loc[np.datetime64("2020-01-06"), "AAA"] == 1.2  # new values win
    assert close.loc[np.datetime64("2020-01-06"), "BBB"] == 2.2
    assert close.loc[np.datetime64("2020-01-03"), "AAA"] == 11.0  # untouched rows stay
    vwap = pd.DataFrame(market.fields["vwap"], index=market.dates, columns=market.instruments)
    # a replaced row is replaced whole: the second file has no vwap, so those rows store NULL
    assert np.isnan(vwap.loc[np.datetime64("2020-01-06"), "AAA"])
    assert vwap.loc[np.datetime64("2020-01-03"), "AAA"] == 10.0


def test_suspect_rows_are_kept_by_default_and_dropped_on_request(tmp_path):
    frame = small_daily()
    frame.loc[2, ["high", "low"]] = [9.0, 12.0]  # high < low, but the row is flagged suspect
    path = write_csv(frame, tmp_path / "daily.csv")
    kept = import_file(path, store=tmp_path / "kept.duckdb")
    dropped = import_file(path, store=tmp_path / "dropped.duckdb", drop_suspect=True)
    assert (kept.rows, kept.dropped_suspect) == (6, 0)
    assert (dropped.rows, dropped.dropped_suspect) == (5, 1)
    assert np.isnan(load_market(tmp_path / "dropped.duckdb").fields["close"][1, 0])
    assert load_market(tmp_path / "kept.duckdb").fields["close"][1, 0] == 11.0
    frame.loc[5, "volume"] = -1  # errors name the file's row even after suspect rows are dropped
    with pytest.raises(DataError, match=r"'volume' has a negative value at row 5 \(date 2020-01-06"):
        import_file(write_csv(frame, path), store=tmp_path / "kept.duckdb", drop_suspect=True)


def test_column_map_and_text_instrument_codes(tmp_path):
    frame = pd.DataFrame(
        {
            "Day": ["2020-01-02", "2020-01-02"],
            "Ticker": ["000001", "600000"],
            "Close": [10.0, 20.0],
            "Industry": [101, 102],
        }
    )
    report = import_file(
        write_csv(frame, tmp_path / "cn.csv"),
        store=tmp_path / "m.duckdb",
        column_map={"Day": "date", "Ticker": "instrument"},
    )
    market = load_market(tmp_path / "m.duckdb")
    assert report.rows == 2
    assert list(market.instruments) == ["000001", "600000"]
    assert market.groups["industry"] == ("101", "102")
    with pytest.raises(DataError, match="column map names column"):
        import_file(tmp_path / "cn.csv", store=tmp_path / "m.duckdb", column_map={"Nope": "date"})


def test_load_filters_by_dates_and_instruments(tmp_path):
    store = tmp_path / "m.duckdb"
    import_file(write_csv(small_daily(), tmp_path / "d.csv"), store=store)
    market = load_market(store, start="2020-01-03", end="2020-01-06", instruments=["BBB"])
    assert list(market.instruments) == ["BBB"]
    np.testing.assert_array_equal(market.dates, np.array(["2020-01-03", "2020-01-06"], dtype="datetime64[D]"))
    np.testing.assert_array_equal(market.fields["close"][:, 0], [21.0, 20.2])
    with pytest.raises(DataError, match="no daily bars for instrument"):
        load_market(store, instruments=["BBB", "ZZZ"])
    with pytest.raises(DataError, match="no daily bars for dates"):
        load_market(store, start="2021-01-01")
    with pytest.raises(DataError, match=r"no minute bars for dates 2020-01-02\.\.2020-01-06"):
        load_market(store, minute=True)
    with pytest.raises(DataError, match="does not exist"):
        load_market(tmp_path / "absent.duckdb")


# ------------------------------------------------------------------------------------------------
# bad input: one case each; the error names the file, column and row, and the store is unchanged
# ------------------------------------------------------------------------------------------------


def _set(row: int, column: str, value: object):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object if isinstance(value, str) else type(value)})
        frame.loc[row, column] = value
        return frame

    return change


BAD_INPUTS = {
    "missing close column": (
        lambda f: f.drop(columns="close"),
        ["missing required column(s) close"],
    ),
    "unparseable date": (
        _set(3, "date", "2020-13-45"),
        ["'date'", "'2020-13-45'", "row 3", "instrument BBB"],
    ),
    "duplicated key": (
        lambda f: pd.concat([f, f.iloc[[3]]]),
        ["1 duplicated (date, instrument) key(s), first at row 6 (date 2020-01-03, instrument BBB)"],
    ),
    "non-numeric field": (
        _set(3, "close", "abc"),
        ["'close'", "non-numeric value 'abc'", "row 3", "date 2020-01-03", "instrument BBB"],
    ),
    "inf value": (
        _set(4, "volume", np.inf),
        ["'volume'", "infinite", "row 4", "date 2020-01-06", "instrument AAA"],
    ),
    "negative price": (
        _set(1, "low", -1.0),
        ["'low'", "negative", "row 1", "date 2020-01-02", "instrument BBB"],
    ),
    "negative volume": (_set(5, "volume", -5), ["'volume'", "negative", "row 5", "instrument BBB"]),
    "high below low": (
        _set(3, "high", 19.0),
        ["'high'", "below 'low'", "row 3", "date 2020-01-03", "instrument BBB"],
    ),
    "empty frame": (lambda f: f.iloc[:0], ["no rows"]),
    "all-NaN field": (lambda f: f.assign(amount=np.nan), ["'amount'", "all NaN"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_rejected_naming_file_column_row_and_store_is_unchanged(case, tmp_path):
    change, fragments = BAD_INPUTS[case]
    store = tmp_path / "market.duckdb"
    import_file(write_csv(small_daily(), tmp_path / "good.csv"), store=store)
    before = store_snapshot(store)
    bad = write_csv(change(small_daily()), tmp_path / "bad.csv")

    with pytest.raises(DataError) as error:
        import_file(bad, store=store)
    message = str(error.value)
    assert message.startswith(str(bad)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert store_snapshot(store) == before
    with pytest.raises(DataError, match=r"^my-frame: "):  # the same validation on frames
        MarketData.from_frame(pd.read_csv(bad, dtype={"instrument": str}), source="my-frame")


def test_failure_inside_the_transaction_rolls_back_new_columns(tmp_path):
    store = tmp_path / "market.duckdb"
    import_file(write_csv(small_daily().assign(pe=1.0), tmp_path / "a.csv"), store=store)
    before = store_snapshot(store)
    clash = small_daily().assign(beta=1.0, pe="high")  # pe is numeric in the store, text here
    with pytest.raises(DataError, match="column 'pe' is label here but numeric in the store"):
        import_file(write_csv(clash, tmp_path / "b.csv"), store=store)
    assert store_snapshot(store) == before


def test_locked_store_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINER_LOCK_TIMEOUT", "0.5")  # the store waits this long for the lock
    store = tmp_path / "market.duckdb"
    path = write_csv(small_daily(), tmp_path / "d.csv")
    import_file(path, store=store)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time\ncon = duckdb.connect({str(store)!r})\n"
            "print('ready', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(
            DataError, match=rf"^market store {store} is locked by another process \(PID \d+\)$"
        ):
            import_file(path, store=store)
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------------
# derived fields, groups, fingerprint, slicing
# ------------------------------------------------------------------------------------------------


def _wide(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame.assign(date=pd.to_datetime(frame["date"])).pivot(
        index="date", columns="instrument", values=name
    )


def test_returns_and_vwap_match_pandas():
    frame = small_daily()
    frame.loc[4, "close"] = np.nan  # a hole: returns NaN on it and the next day
    frame = pd.concat(
        [
            frame,
            pd.DataFrame(
                {
                    "date": ["2020-01-07"],
                    "instrument": ["CCC"],
                    "close": [0.0],
                    "high": [0.0],
                    "low": [0.0],
                    "volume": [0],
                }
            ),
        ],
        ignore_index=True,
    )
    market = MarketData.from_frame(frame)
    close = _wide(frame, "close")
    expected_returns = (close / close.shift(1) - 1).replace([np.inf, -np.inf], np.nan)
    np.testing.assert_allclose(market.fields["returns"], expected_returns.to_numpy(float), equal_nan=True)
    expected_vwap = (_wide(frame, "high") + _wide(frame, "low") + close) / 3
    np.testing.assert_allclose(market.fields["vwap"], expected_vwap.to_numpy(float), equal_nan=True)

    with_amount = small_daily().assign(amount=[1e4, 4e4, 1.6e4, 5.0, 1.3e4, 5e4])
    vwap = MarketData.from_frame(with_amount).fields["vwap"]
    expected = (_wide(with_amount, "amount") / _wide(with_amount, "volume")).replace(
        [np.inf, -np.inf], np.nan
    )
    np.testing.assert_allclose(vwap, expected.to_numpy(float), equal_nan=True)
    assert np.isnan(vwap[1, 1])  # volume 0

    close_only = MarketData.from_frame(small_daily()[["date", "instrument", "close"]])
    np.testing.assert_array_equal(close_only.fields["vwap"], close_only.fields["close"])
    for market in (MarketData.from_frame(frame), close_only):
        assert not any(np.isinf(values).any() for values in market.fields.values())


def test_string_columns_become_groups_and_booleans_are_ignored():
    frame = small_daily().assign(industry=["b", "a", "b", None, "b", "a"], country=["US", "BR"] * 3)
    market = MarketData.from_frame(frame)
    assert market.groups == {
        "sector": ("Energy", "Tech"),
        "industry": ("a", "b"),
        "country": ("BR", "US"),
    }
    np.testing.assert_array_equal(market.fields["industry"], [[1, 0], [1, np.nan], [1, 0]])
    assert "suspect" not in market.fields
    assert market.fields["close"].dtype == np.float64 and market.fields["close"].flags.c_contiguous


def test_fingerprint_is_stable_and_sensitive():
    frame = small_daily()
    market = MarketData.from_frame(frame)
    shuffled = MarketData.from_frame(frame.sample(frac=1.0, random_state=3))
    assert market.fingerprint == shuffled.fingerprint and len(market.fingerprint) == 64
    changed = frame.copy()
    changed.loc[5, "close"] = 20.25
    assert MarketData.from_frame(changed).fingerprint != market.fingerprint
    relabelled = frame.assign(sector=frame["sector"].replace({"Tech": "Technology"}))
    assert MarketData.from_frame(relabelled).fingerprint != market.fingerprint
    # a NaN with another bit pattern is the same missing value
    fields = dict(market.fields)
    odd_nan = np.array(fields["open"])
    odd_nan[np.isnan(odd_nan)] = -np.nan
    same = MarketData(market.dates, market.instruments, {**fields, "open": odd_nan}, {}, market.groups)
    assert same.fingerprint == market.fingerprint
    restored = pickle.loads(pickle.dumps(market))
    assert restored.fingerprint == market.fingerprint
    assert not restored.fields["close"].flags.writeable


def test_arrays_are_read_only_and_field_errors_name_the_choices():
    market = MarketData.from_frame(small_daily())
    with pytest.raises(ValueError):
        market.fields["close"][0, 0] = 1.0
    with pytest.raises(DataError, match=r"unknown field 'clsoe'; available: close, high, low, open"):
        market.field("clsoe")


def test_slice_rows_are_views_and_select_picks_dates_and_names():
    market = MarketData.from_frame(small_daily())
    rows = market.slice_rows(1, 3)
    assert rows.T == 2 and np.shares_memory(rows.fields["close"], market.fields["close"])
    np.testing.assert_array_equal(rows.fields["close"], market.fields["close"][1:3])
    assert market.slice_rows(-1, None).dates[0] == np.datetime64("2020-01-06")
    with pytest.raises(DataError, match="empty"):
        market.slice_rows(2, 2)

    picked = market.select(start="2020-01-03", end=pd.Timestamp("2020-01-06"), instruments=["BBB"])
    assert picked.T == 2 and list(picked.instruments) == ["BBB"]
    np.testing.assert_array_equal(picked.fields["close"][:, 0], [21.0, 20.2])
    assert market.select(end="2020-01-02").T == 1 and market.select(start="2020-01-04").T == 1
    assert list(market.select(instruments=["BBB", "AAA"]).instruments) == ["AAA", "BBB"]
    with pytest.raises(DataError, match="unknown instrument"):
        market.select(instruments=["AAA", "ZZZ"])
    with pytest.raises(DataError, match="no dates between"):
        market.select(start="2021-01-01")


def test_constructor_rejects_unsorted_axes_and_bad_shapes():
    dates = np.array(["2020-01-02", "2020-01-03"], dtype="datetime64[D]")
    names = np.array(["A", "B"], dtype=object)
    with pytest.raises(DataError, match="ascending"):
        MarketData(dates[::-1], names, {})
    with pytest.raises(DataError, match="sorted and unique"):
        MarketData(dates, names[::-1], {})
    with pytest.raises(DataError, match="shape"):
        MarketData(dates, names, {"close": np.zeros((2, 3))})


def test_market_store_reports_foreign_schema_versions(tmp_path):
    store = tmp_path / "m.duckdb"
    import_file(write_csv(small_daily(), tmp_path / "d.csv"), store=store)
    con = duckdb.connect(str(store))
    con.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(DataError, match="schema version 99"):
        MarketStore(store)

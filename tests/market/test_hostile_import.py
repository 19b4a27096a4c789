"""What an import refuses, or used to get silently wrong (issue 17, section 3): dates outside the
representable range, time zones, a minute file without an OHLCV column, a store path that is not
a DuckDB file, an empty instrument id, minutes off the session grid.

Only names that predate session grids are used (the default ``us`` session), so that each test
also runs, and fails, against the code before the fix.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miner.errors import DataError
from miner.market import MarketData
from miner.market.store import import_file, load_market
from tests.cli_runner import assert_one_line_error, miner
from tests.market.frames import daily, minutes, stored_minutes, write

BARS = ("open", "high", "low", "close", "volume")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A market store holding the daily bars of `daily()`."""
    path = tmp_path / "market.duckdb"
    import_file(write(daily(), tmp_path / "daily.csv"), store=path)
    return path


@pytest.mark.parametrize("stamp", ["2262-05-01", "1600-01-01"])
def test_dates_outside_the_representable_range_are_refused_with_the_row(tmp_path, stamp):
    frame = daily()
    frame.loc[3, "date"] = stamp
    path = write(frame, tmp_path / "d.csv")
    with pytest.raises(DataError, match=rf"'date' has '{stamp}', outside the supported range .* row 3 "):
        import_file(path, store=tmp_path / "s.duckdb")
    minute = minutes(["2020-01-02 09:31", f"{stamp} 09:32"])
    with pytest.raises(DataError, match=rf"'datetime' has '{stamp} 09:32', outside .* row 1 "):
        MarketData.from_frame(daily(), minute)


def test_tz_aware_minute_bars_land_on_the_exchange_clock(tmp_path, store):
    # 14:31 UTC is 09:31 in New York in January; 21:00 UTC is 16:00
    utc = minutes(["2020-01-02T14:31:00Z", "2020-01-02T21:00:00+00:00"])
    import_file(write(utc, tmp_path / "m.csv"), kind="minute", store=store)
    assert stored_minutes(store) == ["2020-01-02 09:31:00", "2020-01-02 16:00:00"]
    # Parquet keeps the zone in the column type: the same instants, whatever the zone
    aware = utc.assign(datetime=pd.to_datetime(utc["datetime"], utc=True).dt.tz_convert("Asia/Tokyo"))
    market = MarketData.from_frame(daily(), aware)
    np.testing.assert_array_equal(market.intraday["close"][0, 0, [1, 390]], [1.0, 2.0])


def test_us_offsets_across_a_daylight_saving_change_are_instants():
    days = ("2018-03-09", "2018-03-12")  # EST (UTC-5), then EDT (UTC-4)
    stamps = [
        "2018-03-09T09:30:00-05:00",
        "2018-03-09T14:31:00Z",  # 09:31 EST
        "2018-03-12T09:31:00-04:00",
        "2018-03-12T13:32:00Z",  # 09:32 EDT
    ]
    market = MarketData.from_frame(daily(days, ("AAA",)), minutes(stamps))
    close = market.intraday["close"][:, 0]
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(close[0])), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(close[1])), [1, 2])
    np.testing.assert_array_equal(close[1, [1, 2]], [3.0, 4.0])


@pytest.mark.parametrize(
    "stamps", [["2020-01-02 09:31-05:00", "2020-01-02 09:32"], ["2020-01-02 09:31", "2020-01-02 09:32-05:00"]]
)
def test_naive_mixed_with_aware_minutes_is_a_one_line_error(tmp_path, store, stamps):
    path = write(minutes(stamps), tmp_path / "m.csv")
    fragment = "mixes naive and tz-aware times"
    assert_one_line_error(
        miner("data", "import", str(path), "--kind", "minute", "--store", str(store)), fragment
    )
    with pytest.raises(DataError, match=rf"^{path}: column 'datetime' {fragment} .* at row 1 "):
        import_file(path, kind="minute", store=store)


def test_daily_dates_with_mixed_offsets_are_an_error_and_one_offset_keeps_its_date():
    frame = daily()
    frame["date"] = ["2020-01-02T00:00+08:00"] * 2 + ["2020-01-03T00:00+08:00"] * 2
    market = MarketData.from_frame(frame)
    np.testing.assert_array_equal(market.dates, np.array(["2020-01-02", "2020-01-03"], "datetime64[D]"))
    frame.loc[3, "date"] = "2020-01-02T16:00-08:00"
    with pytest.raises(DataError, match=r"^frame: column 'date' mixes UTC offsets .* at row 3 "):
        MarketData.from_frame(frame)


@pytest.mark.parametrize("missing", BARS)
def test_a_minute_file_without_an_ohlcv_column_is_refused_and_keeps_the_store(tmp_path, store, missing):
    import_file(write(minutes(["2020-01-02 09:31"]), tmp_path / "m.csv"), kind="minute", store=store)
    bad = write(minutes(["2020-01-02 09:31"]).drop(columns=missing), tmp_path / "bad.csv")
    with pytest.raises(DataError, match=rf"missing required column\(s\) {missing} "):
        import_file(bad, kind="minute", store=store)
    assert load_market(store, minute=True).intraday["volume"][0, 0, 1] == 100.0  # volume kept


@pytest.mark.parametrize("existing", [True, False])
def test_a_store_path_that_is_not_a_duckdb_file_is_refused(tmp_path, existing):
    target = tmp_path / "x.parquet"
    if existing:
        daily().to_parquet(target)
    source = write(daily(), tmp_path / "d.csv")
    assert_one_line_error(miner("data", "import", str(source), "--store", str(target)), str(target))
    with pytest.raises(DataError, match="not a DuckDB"):
        import_file(source, store=target)
    assert target.exists() == existing
    with pytest.raises(DataError, match="not a DuckDB"):
        load_market(source)


@pytest.mark.parametrize("code", ["", "   "])
def test_an_empty_instrument_id_is_refused(tmp_path, code):
    frame = daily()
    frame.loc[2, "instrument"] = code
    path = write(frame, tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"column 'instrument' is empty at row 2$"):
        import_file(path, store=tmp_path / "s.duckdb")


def test_off_grid_minutes_are_dropped_with_a_count_and_not_stored(tmp_path, store, caplog):
    stamps = ["2020-01-02 09:29", "2020-01-02 09:31:30", "2020-01-02 16:01", "2020-01-02 16:00"]
    with caplog.at_level(logging.WARNING, logger="miner.market.ingest"):
        report = import_file(write(minutes(stamps), tmp_path / "m.csv"), kind="minute", store=store)
    assert report.rows == 1
    assert "dropped 3 minute bar(s) off the us session" in caplog.text
    assert "dropped 3 bar(s) off the session" in str(report)
    assert stored_minutes(store) == ["2020-01-02 16:00:00"]

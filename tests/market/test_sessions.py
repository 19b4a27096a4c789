"""Session grids with several segments, the session a market store records, and what an import
refuses (time zones, out-of-range dates, missing columns, bad store paths), each checked against
hand-placed bars."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from miner import evaluate
from miner.app.experiment import market_for
from miner.config import config_from_dict
from miner.errors import ConfigError, DataError
from miner.market import CN_SESSION, US_REGULAR_SESSION, MarketData, SessionGrid, session_grid
from miner.market.store import MarketStore, import_file, load_market
from tests.cli_runner import assert_one_line_error, miner
from tests.market.frames import daily, minutes, write

A_SHARES = ("600000.SH", "000001.SZ")
SPLITS = {
    "train": {"start": "2020-01-01", "end": "2020-01-02"},
    "valid": {"start": "2020-01-03", "end": "2020-01-04"},
    "test": {"start": "2020-01-05", "end": "2020-01-06"},
}


# ------------------------------------------------------------------------------------------------
# grids
# ------------------------------------------------------------------------------------------------


def test_presets_and_segments_place_each_minute_on_its_slot():
    assert (US_REGULAR_SESSION.slots, CN_SESSION.slots, session_grid("cn_open").slots) == (391, 240, 241)
    assert session_grid("cn") is CN_SESSION and CN_SESSION.timezone == "Asia/Shanghai"
    custom = session_grid("09:30-11:30,13:00-15:00@Asia/Shanghai")
    assert custom.slots == 121 + 121 and custom.timezone == "Asia/Shanghai"
    assert session_grid(custom.spec) == custom
    # the same slots as the preset compare equal whatever the name
    assert session_grid("09:31-11:30,13:01-15:00@Asia/Shanghai") == CN_SESSION

    def ns(clock: str) -> int:
        hours, minutes_ = map(int, clock.split(":"))
        return (hours * 60 + minutes_) * 60 * 10**9

    clocks = ["09:30", "09:31", "11:30", "11:31", "12:00", "13:00", "13:01", "15:00", "15:01"]
    slots = CN_SESSION.slot_of(np.array([ns(c) for c in clocks]))
    np.testing.assert_array_equal(slots, [-1, 0, 119, -1, -1, -1, 120, 239, -1])
    assert CN_SESSION.slot_of(np.array([ns("09:31") + 30 * 10**9]))[0] == -1  # not on a minute
    np.testing.assert_array_equal(session_grid("cn_open").slot_of(np.array([ns("09:30")])), [0])


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("10:00-09:00", "whole number of slots"),
        ("09:30-11:30,11:00-15:00", "overlaps"),
        ("09:30-11:30@Mars/Olympus", "not an IANA time zone"),
        ("asia", "expected a preset"),
        ("09:3x-10:00", "is not HH:MM"),
    ],
)
def test_bad_session_specs_are_one_line_errors(spec, fragment):
    with pytest.raises(DataError, match=fragment):
        session_grid(spec)


def test_a_day_on_the_cn_grid_is_one_continuous_240_slot_series():
    stamps = [f"2020-01-02 {h:02d}:{m:02d}" for h, m in [(9, 31), (11, 30), (13, 1), (15, 0)]]
    market = MarketData.from_frame(daily(), minutes(stamps), session="cn")
    close = market.intraday["close"][0, 0]
    assert market.M == 240
    np.testing.assert_array_equal(close[[0, 119, 120, 239]], [1.0, 2.0, 3.0, 4.0])
    assert np.isnan(close).sum() == 236  # no lunch slots: 11:30 and 13:01 are neighbours


# ------------------------------------------------------------------------------------------------
# the store records the session
# ------------------------------------------------------------------------------------------------


def test_store_records_the_minute_session_and_loads_on_it(tmp_path):
    store = tmp_path / "cn.duckdb"
    import_file(write(daily(), tmp_path / "d.csv"), store=store)
    stamps = ["2020-01-02 09:31", "2020-01-02 13:01", "2020-01-03 15:00", "2020-01-02 12:00"]
    report = import_file(write(minutes(stamps), tmp_path / "m.csv"), kind="minute", store=store, session="cn")
    assert report.rows == 3 and report.dropped_off_grid == 1 and "cn session" in str(report)
    market = load_market(store, minute=True)  # the recorded session: no need to repeat it
    assert market.M == 240
    np.testing.assert_array_equal(market.intraday["close"][0, 0, [0, 120]], [1.0, 2.0])
    assert market.intraday["close"][1, 0, 239] == 3.0
    # a later import without --session stays on the store's session
    later = import_file(write(minutes(["2020-01-03 09:31"]), tmp_path / "m2.csv"), kind="minute", store=store)
    assert "cn session" in str(later)
    with pytest.raises(DataError, match=r"session 'us', but the market store .* holds minute bars on the cn"):
        import_file(tmp_path / "m2.csv", kind="minute", store=store, session="us")
    with pytest.raises(DataError, match="not on the us session"):
        load_market(store, minute=True, session="us")
    assert load_market(store, minute=True, session="09:31-11:30,13:01-15:00@Asia/Shanghai").M == 240


def test_a_store_from_before_sessions_is_on_the_us_grid(tmp_path):
    store = tmp_path / "old.duckdb"
    import_file(write(daily(), tmp_path / "d.csv"), store=store)
    import_file(write(minutes(["2020-01-02 09:30"]), tmp_path / "m.csv"), kind="minute", store=store)
    con = duckdb.connect(str(store))
    con.execute("DELETE FROM store_meta WHERE key = 'minute_session'")  # as an older miner left it
    con.close()
    with MarketStore(store, read_only=True) as opened:
        assert opened.minute_session() == US_REGULAR_SESSION
    assert load_market(store, minute=True).M == 391
    with pytest.raises(DataError, match="holds minute bars on the us session"):
        import_file(tmp_path / "m.csv", kind="minute", store=store, session="cn")


def test_config_session_and_rules_must_agree_with_the_store(tmp_path):
    store = tmp_path / "cn.duckdb"
    import_file(write(daily(names=A_SHARES), tmp_path / "d.csv"), store=store, rules="cn")
    import_file(
        write(minutes(["2020-01-02 09:31"], A_SHARES[0]), tmp_path / "m.csv"),
        kind="minute",
        store=store,
        session="cn",
    )

    def config(**data) -> dict:
        return {"name": "x", "splits": SPLITS, "data": {"source": "store", "path": str(store)} | data}

    market = market_for(config_from_dict(config(minute=True, session="cn", rules="cn"), "cfg.yaml"))
    assert market.M == 240 and "tradable" in market.fields
    with pytest.raises(ConfigError, match=r"^cfg.yaml: data.session: 'us', but the market store"):
        market_for(config_from_dict(config(minute=True, session="us"), "cfg.yaml"))
    with pytest.raises(
        ConfigError, match=r"^cfg.yaml: data.rules: 'us', but the market store .* records 'cn'"
    ):
        market_for(config_from_dict(config(rules="us"), "cfg.yaml"))
    with pytest.raises(ConfigError, match=r"^cfg.yaml: data.session: session 'lunch'"):
        market_for(config_from_dict(config(session="lunch"), "cfg.yaml"))


def test_cli_import_with_session_and_rules(tmp_path):
    store = tmp_path / "s.duckdb"
    done = miner(
        "data",
        "import",
        str(write(daily(names=A_SHARES), tmp_path / "d.csv")),
        "--rules",
        "cn",
        "--store",
        str(store),
    )
    assert done.returncode == 0 and "trading rules cn" in done.stdout, done.stderr
    assert evaluate("tradable", load_market(store)).shape == (2, 2)  # formulas read the rules' field
    minute_file = write(minutes(["2020-01-02 09:31", "2020-01-02 11:31"], A_SHARES[0]), tmp_path / "m.csv")
    done = miner(
        "data", "import", str(minute_file), "--kind", "minute", "--session", "cn", "--store", str(store)
    )
    assert done.returncode == 0 and "dropped 1 bar(s) off the session" in done.stdout, done.stderr
    assert_one_line_error(
        miner(
            "data", "import", str(minute_file), "--kind", "minute", "--session", "us", "--store", str(store)
        ),
        "holds minute bars on the cn session",
    )
    assert_one_line_error(
        miner("data", "import", str(minute_file), "--kind", "minute", "--rules", "cn", "--store", str(store)),
        "trading rules apply to daily bars",
    )
    with_minutes = load_market(store, minute=True)  # the minute bars on the cn grid, beside the rules
    assert evaluate("fft_band(volume, 2, 5) + tradable", with_minutes).shape == (2, 2)
    assert_one_line_error(  # two dates leave no forward return to summarise the formula against
        miner("eval", "fft_band(volume, 2, 5) + tradable", "--data", str(store)), "too few for a label"
    )


def test_session_grid_is_hashable_and_keeps_its_name():
    assert {CN_SESSION: 1}[
        SessionGrid((("09:31", "11:30"), ("13:01", "15:00")), timezone="Asia/Shanghai")
    ] == 1
    assert (
        CN_SESSION.spec == "cn" and str(CN_SESSION) == "cn session 09:31-11:30 + 13:01-15:00 (Asia/Shanghai)"
    )

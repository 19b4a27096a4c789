"""The DuckDB factor library: registration, incremental == full, staleness, cache, locks, crashes, CLI.

The reference for every stored value is a fresh full computation: `Evaluator` on the whole market
panel loaded from the store (`load_market`), with library factors a formula reads supplied as
panels computed the same way. Monitor figures are checked against pandas.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import typer
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import miner.library.library as library_module
import miner.library.update as update_module
from miner.app.library_cli import library_app
from miner.errors import FormulaError, LibraryError
from miner.lang import Evaluator, Node, history_rows, parse, to_string
from miner.library import FactorLibrary, dependency_order, rows
from miner.library.cache import FrameCache
from miner.library.market_view import MarketView
from miner.library.schema import SCHEMA
from miner.market.store import MarketStore, import_file, load_market
from miner.market.synthetic import synthetic_frames
from miner.storage import Migration, schema_version
from tests.strategies import formulas

DAILY, _ = synthetic_frames(n_instruments=16, n_days=72, seed=5)
DATES = np.sort(DAILY["date"].unique())
FAMILIES = ("elementwise", "timeseries", "cross_section", "robust")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def rows_between(first: int, stop: int | None = None) -> pd.DataFrame:
    """The synthetic daily bars of dates first..stop-1 (by position in DATES)."""
    last = DATES[-1] if stop is None or stop >= DATES.size else DATES[stop - 1]
    return DAILY[(DAILY["date"] >= DATES[first]) & (DAILY["date"] <= last)]


def open_with_dates(path: Path, stop: int) -> FactorLibrary:
    """A new library whose market tables hold the first `stop` dates."""
    lib = FactorLibrary(path)
    lib.market_store.import_frame(rows_between(0, stop), source="head")
    return lib


def full_values(store: MarketStore | Path, formulas_by_id: dict[str, str], target: str) -> np.ndarray:
    """`target`'s values by a full computation, factors it reads evaluated first on the same panel."""
    market = load_market(store)
    panels: dict[str, np.ndarray] = {}
    for factor_id, formula in formulas_by_id.items():
        panels[factor_id] = Evaluator(market, extra=panels).evaluate(formula)
        if factor_id == target:
            break
    return np.asarray(panels[target])


def assert_same(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    assert actual.shape == expected.shape, what
    assert np.array_equal(actual, expected, equal_nan=True), what


def table_rows(path: Path, table: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------
# incremental == full
# ------------------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=formulas(max_leaves=6, families=FAMILIES),
    other=formulas(max_leaves=4, families=FAMILIES),
    window=st.sampled_from([1, 3, 5]),
    split=st.integers(4, DATES.size - 2),
    second=st.integers(0, 10),
    corrected=st.one_of(st.none(), st.integers(0, DATES.size - 3)),
)
def test_incremental_update_equals_full_recomputation(
    base: Node, other: Node, window: int, split: int, second: int, corrected: int | None
):
    """Register on the first `split` dates, import the rest in two pieces, update after each, then
    (maybe) re-import three past dates with corrected prices and volumes and update again: every
    stored value equals a full recomputation bit for bit (NaN where the computation gives NaN)."""
    dependent = f"ts_mean(f0, {window}) * ({to_string(other)})"
    factors = {"f0": to_string(base), "f1": dependent}
    middle = min(DATES.size, split + second)
    with tempfile.TemporaryDirectory() as folder:
        with open_with_dates(Path(folder) / "lib.duckdb", split) as lib:
            try:
                for factor_id, formula in factors.items():
                    lib.register_factor(factor_id, formula)
            except LibraryError:
                reject()
            for first, stop in ((split, middle), (middle, DATES.size)):
                if first < stop:
                    lib.market_store.import_frame(rows_between(first, stop), source="tail")
                    lib.update()
            if corrected is not None:
                fixed = rows_between(corrected, corrected + 3)
                fixed = fixed.assign(close=fixed["close"] * 1.01, volume=fixed["volume"] + 1)
                lib.market_store.import_frame(fixed, source="corrected")
                lib.update()
            for factor_id in factors:
                stored = lib.get_factor(factor_id)
                assert stored.shape[0] == DATES.size
                expected = full_values(lib.market_store, factors, factor_id)
                assert_same(
                    stored.to_numpy(), expected, f"{factor_id} = {factors[factor_id]} split at {split}"
                )


def test_update_of_one_new_day_writes_only_that_day_and_keeps_the_past(tmp_path):
    with open_with_dates(tmp_path / "lib.duckdb", 60) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
        lib.register_factor("vol", "ts_std(returns, 10)")
        before = {fid: lib.get_factor(fid) for fid in ("mom", "vol")}
        lib.market_store.import_frame(rows_between(60, 61), source="one day")
        results = lib.update()
        assert [r.factor_id for r in results] == ["mom", "vol"]
        for result in results:
            assert result.first_date == result.last_date == pd.Timestamp(DATES[60]).date()
            after = lib.get_factor(result.factor_id)
            assert result.values == int(np.isfinite(after.iloc[-1].to_numpy()).sum())
            assert_same(after.iloc[:-1].to_numpy(), before[result.factor_id].to_numpy())
        assert lib.update() == []


def test_corrected_history_marks_factors_and_dependents_stale_and_update_recomputes_them(tmp_path):
    factors = {"mom": "rank(delta(close, 5))", "smooth": "ts_mean(mom, 3)"}
    with open_with_dates(tmp_path / "lib.duckdb", DATES.size) as lib:
        for factor_id, formula in factors.items():
            lib.register_factor(factor_id, formula)
        fixed = rows_between(40, 45).assign(close=lambda f: f["close"] * 1.05)
        lib.market_store.import_frame(fixed, source="corrected closes")
        listing = lib.list_factors().set_index("factor_id")
        assert (listing["status"] == "stale").all()
        assert (listing["stale_from"] == pd.Timestamp(DATES[40]).date()).all()
        results = lib.update()
        assert [(r.factor_id, r.first_date) for r in results] == [
            ("mom", pd.Timestamp(DATES[40]).date()),
            ("smooth", pd.Timestamp(DATES[40]).date()),
        ]
        for factor_id in factors:
            assert_same(
                lib.get_factor(factor_id).to_numpy(), full_values(lib.market_store, factors, factor_id)
            )
        assert (lib.list_factors()["status"] == "ok").all()
        assert lib.check().ok


def test_real_sp500_panel_incremental_equals_full(shared_data, tmp_path):
    daily = pd.read_parquet(shared_data / "us_sp500_5yr_daily.parquet")
    daily = daily[daily["instrument"].isin(sorted(daily["instrument"].unique())[:60])]
    days = np.sort(daily["date"].unique())
    factors = {
        "rev": "rank(-delta(close, 5))",
        "corr": "ts_corr(vwap, volume, 10)",
        "sect": "group_neutralize(ts_mean(returns, 20), sector)",
        "blend": "rank(rev) + rank(corr)",
    }
    with FactorLibrary(tmp_path / "sp.duckdb") as lib:
        lib.market_store.import_frame(daily[daily["date"] < days[1200]], source="sp500 head")
        for factor_id, formula in factors.items():
            lib.register_factor(factor_id, formula)
        lib.market_store.import_frame(daily[daily["date"] >= days[1200]], source="sp500 tail")
        lib.update()
        for factor_id in factors:
            assert_same(
                lib.get_factor(factor_id).to_numpy(), full_values(lib.market_store, factors, factor_id)
            )


# ------------------------------------------------------------------------------------------------
# registration
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factor_id", "formula", "message"),
    [
        ("1abc", "rank(close)", "not an identifier"),
        ("has space", "rank(close)", "not an identifier"),
        ("close", "rank(volume)", "market field or operator"),
        ("rank", "rank(volume)", "market field or operator"),
        ("lambda", "rank(volume)", "not an identifier"),
        ("broken", "rank(close", "factor 'broken': invalid formula"),
        ("evil", "__import__('os')", "factor 'evil': invalid formula"),
        ("ghost", "ts_mean(nonexistent, 3)", "unknown field 'nonexistent'"),
        ("selfie", "ts_mean(selfie, 3)", "cycle selfie -> selfie"),
        ("constant", "1 + 2", "reads no field"),
    ],
)
def test_registration_rejects_bad_ids_and_formulas(tmp_path, factor_id, formula, message):
    with open_with_dates(tmp_path / "lib.duckdb", 20) as lib:
        with pytest.raises(LibraryError, match=message):
            lib.register_factor(factor_id, formula)
        assert lib.list_factors().empty


def test_registration_rejects_duplicate_ids_and_formulas_naming_the_existing_factor(tmp_path):
    with open_with_dates(tmp_path / "lib.duckdb", 20) as lib:
        lib.register_factor("pv", "close * volume")
        with pytest.raises(LibraryError, match="factor 'pv' already exists"):
            lib.register_factor("pv", "rank(close)")
        with pytest.raises(LibraryError, match="formula already registered as 'pv'"):
            lib.register_factor("vp", " volume*(close) ")
        with pytest.raises(LibraryError, match="formula already registered as 'pv'"):
            lib.register_factor("vp2", "-1 * -(volume * close)")
        assert list(lib.list_factors()["factor_id"]) == ["pv"]


def test_failed_registration_leaves_nothing_behind(tmp_path, monkeypatch):
    path = tmp_path / "lib.duckdb"
    original = rows.insert_values

    def half_then_fail(con, factor_id, values):
        original(con, factor_id, values.slice(0, values.num_rows // 2))
        raise RuntimeError("disk on fire")

    with open_with_dates(path, 30) as lib:
        monkeypatch.setattr(rows, "insert_values", half_then_fail)
        with pytest.raises(RuntimeError, match="disk on fire"):
            lib.register_factor("mom", "rank(delta(close, 5))")
        monkeypatch.setattr(rows, "insert_values", original)

        def failing_evaluate(self, formula):
            raise FormulaError("kernel exploded")

        monkeypatch.setattr(Evaluator, "evaluate", failing_evaluate)
        with pytest.raises(LibraryError, match="factor 'mom': kernel exploded"):
            lib.register_factor("mom", "rank(delta(close, 5))")
        monkeypatch.undo()
    assert table_rows(path, "factor_metadata") == 0
    assert table_rows(path, "factor_values") == 0
    with FactorLibrary(path) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
        assert lib.check().ok


def test_dependency_order_puts_dependencies_first_and_names_cycles():
    graph = {"c": ["a", "b"], "b": ["a"], "a": [], "d": ["outside"]}
    order = dependency_order(graph)
    assert sorted(order) == ["a", "b", "c", "d"]
    assert order.index("a") < order.index("b") < order.index("c")
    with pytest.raises(LibraryError, match="dependency cycle among factors: (x -> y -> x|y -> x -> y)"):
        dependency_order({"x": ["y"], "y": ["x"], "z": []})


def test_a_cycle_written_into_the_metadata_is_rejected_by_update_and_reported_by_check(tmp_path):
    path = tmp_path / "lib.duckdb"
    with open_with_dates(path, 30) as lib:
        lib.register_factor("a", "rank(close)")
        lib.register_factor("b", "ts_mean(a, 3)")
    con = duckdb.connect(str(path))
    con.execute(
        "UPDATE factor_metadata SET formula = 'rank(b)', dependencies = '[\"b\"]' WHERE factor_id = 'a'"
    )
    con.close()
    with FactorLibrary(path) as lib:
        with pytest.raises(LibraryError, match="dependency cycle"):
            lib.update()
        report = lib.check()
        assert not report.ok
        assert any("dependency cycle" in problem for problem in report.problems)


def damaged_library(path: Path, *statements: tuple[str, list]) -> FactorLibrary:
    """Three registered factors on 40 dates, then `statements` run on the file behind its back."""
    with open_with_dates(path, 40) as lib:
        for factor_id, window in (("a", 3), ("b", 5), ("c", 7)):
            lib.register_factor(factor_id, f"ts_mean(close, {window})")
        assert lib.check().ok
    con = duckdb.connect(str(path))
    for sql, params in statements:
        con.execute(sql, params)
    con.close()
    return FactorLibrary(path, read_only=True)


def test_check_reports_duplicates_orphans_and_values_past_the_data(tmp_path):
    last, later = pd.Timestamp(DATES[39]).date(), pd.Timestamp(DATES[45]).date()
    with damaged_library(
        tmp_path / "lib.duckdb",
        (
            "INSERT INTO factor_values SELECT * FROM factor_values "
            "WHERE factor_id = 'a' AND date = ? LIMIT 1",
            [last],
        ),
        ("INSERT INTO factor_values VALUES ('zz', ?, 'SYN00', 1.0)", [last]),
        ("INSERT INTO factor_values VALUES ('c', ?, 'SYN00', 1.0)", [later]),
    ) as lib:
        problems = " | ".join(lib.check().problems)
    assert f"a: 1 duplicated keys, e.g. 2 values for ({last}, " in problems
    assert "zz: values stored for a factor without metadata" in problems
    assert f"c: values through {later}, past its computed date {last}" in problems
    assert f"c: values through {later}, past the market data ({last})" in problems
    assert f"values stored on {later}, which is not a trading date" in problems


def test_check_recomputes_sampled_dates_and_finds_a_changed_value(tmp_path):
    last = pd.Timestamp(DATES[39]).date()
    with damaged_library(
        tmp_path / "lib.duckdb",
        (
            "UPDATE factor_values SET value = value + 1e-9 "
            "WHERE factor_id = 'b' AND date = ? AND instrument = 'SYN04'",
            [last],
        ),
    ) as lib:
        report = lib.check(sample_dates=2)
    assert report.problems == [f"b: stored values on {last} differ from a recomputation (1 instruments)"]
    assert report.sampled_dates == 3 * 3


# ------------------------------------------------------------------------------------------------
# reading: cache, long form, a single date, computing without storing, export
# ------------------------------------------------------------------------------------------------


def test_get_factor_cache_hits_copies_and_invalidation(tmp_path):
    with open_with_dates(tmp_path / "lib.duckdb", 50) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
        first = lib.get_factor("mom")
        hits = lib.cache.hits
        second = lib.get_factor("mom")
        assert lib.cache.hits == hits + 1
        second.iloc[:, :] = -1.0
        second["extra"] = 1.0
        third = lib.get_factor("mom")
        assert_same(third.to_numpy(), first.to_numpy())
        assert list(third.columns) == list(first.columns)
        with FactorLibrary(tmp_path / "lib.duckdb") as same_file:
            assert same_file.cache is lib.cache
            same_file.market_store.import_frame(rows_between(50), source="tail")
            same_file.update()
        refreshed = lib.get_factor("mom")
        assert refreshed.shape[0] == DATES.size
        assert_same(
            refreshed.to_numpy(), full_values(lib.market_store, {"mom": "rank(delta(close, 5))"}, "mom")
        )


def test_frame_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used():
    frame = pd.DataFrame(np.zeros((100, 10)))
    size = int(frame.memory_usage(index=True).sum())
    cache = FrameCache(max_bytes=2 * size + size // 2)
    versions = {"a": 1, "b": 1, "c": 1, "huge": 1}

    def get(key: str, signature: tuple = ("file", 1)) -> pd.DataFrame | None:
        if not cache.is_current(signature):
            cache.refresh(signature, versions)
        return cache.get((key,))

    for key in ("a", "b"):
        cache.put((key,), 1, frame)
    assert get("a") is frame
    cache.put(("c",), 1, frame)
    assert get("b") is None
    assert get("a") is frame and get("c") is frame
    assert cache.bytes == 2 * size
    cache.put(("huge",), 1, pd.DataFrame(np.zeros((1000, 100))))
    assert len(cache) == 2
    cache.forget_factor("a")
    assert get("a") is None and len(cache) == 1
    versions["c"] = 2  # another process wrote c: seen only once the file's signature changes
    assert get("c") is frame
    assert get("c", signature=("file", 2)) is None and len(cache) == 0


def test_selection_long_form_and_export_agree_with_the_wide_frame(tmp_path):
    with open_with_dates(tmp_path / "lib.duckdb", DATES.size) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
        lib.register_factor("vol", "ts_std(returns, 10)")
        wide = lib.get_factor("mom")
        names = ["SYN03", "SYN01"]
        part = lib.get_factor("mom", start=DATES[10], end=DATES[20], instruments=names)
        assert list(part.columns) == names
        assert_same(part.to_numpy(), wide.loc[DATES[10] : DATES[20], names].to_numpy())
        with pytest.raises(LibraryError, match="unknown instrument"):
            lib.get_factor("mom", instruments=["NOPE"])
        with pytest.raises(LibraryError, match="unknown factor 'nope'"):
            lib.get_factor("nope")
        long = lib.get_factor_long("mom")
        stacked = wide.stack().dropna().rename("value").reset_index()
        pd.testing.assert_frame_equal(long, stacked, check_dtype=False)
        single = pd.read_parquet(lib.export(tmp_path / "all.parquet")[0])
        assert sorted(single["factor_id"].unique()) == ["mom", "vol"]
        files = lib.export(tmp_path / "out", factor_ids=["mom"])
        assert [f.name for f in files] == ["mom.parquet", "factor_metadata.parquet"]
        exported = pd.read_parquet(files[0])
        assert np.array_equal(exported["value"].to_numpy(), long["value"].to_numpy())
        assert pd.read_parquet(files[1])["factor_id"].tolist() == ["mom"]


def test_value_on_a_date_uses_only_its_history_and_equals_the_stored_value(tmp_path, monkeypatch):
    with open_with_dates(tmp_path / "lib.duckdb", DATES.size) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
        lib.register_factor("trend", "ts_corr(mom, returns, 8) + ts_rank(close, 10)")
        windows = []
        original = MarketView.window

        def recording(self, first, stop, minute=False):
            windows.append((first, stop))
            return original(self, first, stop, minute)

        monkeypatch.setattr(MarketView, "window", recording)
        for row in (0, 3, 9, 40, DATES.size - 1):
            for factor_id in ("mom", "trend"):
                value = lib.value_on(factor_id, DATES[row])
                assert_same(
                    value.to_numpy(), lib.get_factor(factor_id).iloc[row].to_numpy(), f"{factor_id} {row}"
                )
        history = history_rows(parse("ts_corr(mom, returns, 8) + ts_rank(close, 10)"))
        assert history == 10
        assert windows[-1] == (DATES.size - 1 - history, DATES.size)
        with pytest.raises(LibraryError, match="not a trading date"):
            lib.value_on("mom", "1999-01-01")


def test_calculate_factor_computes_without_storing(tmp_path):
    with open_with_dates(tmp_path / "lib.duckdb", DATES.size) as lib:
        expected = full_values(lib.market_store, {"x": "ts_skew(returns, 7)"}, "x")
        computed = lib.calculate_factor("ts_skew(returns, 7)", start=DATES[30], end=DATES[50])
        assert computed.index[0] == pd.Timestamp(DATES[30]) and computed.shape[0] == 21
        assert_same(computed.to_numpy(), expected[30:51])
        assert lib.list_factors().empty
        with pytest.raises(LibraryError, match="invalid formula"):
            lib.calculate_factor("ts_mean(close,")


# ------------------------------------------------------------------------------------------------
# monitor
# ------------------------------------------------------------------------------------------------


def pandas_monitor(factor: pd.DataFrame, close: pd.DataFrame, window: int) -> pd.DataFrame:
    """The monitor by plain pandas: row-wise Pearson / Spearman over common names (>= 10), rank
    autocorrelation with the previous date, coverage of the names with a close, rolling means."""
    label = close.shift(-2) / close.shift(-1) - 1
    rows = []
    ranks = factor.rank(axis=1)
    for t, day in enumerate(factor.index):
        f, y = factor.loc[day], label.loc[day]
        both = f.notna() & y.notna()
        ic = f[both].corr(y[both]) if both.sum() >= 10 else np.nan
        rank_ic = f[both].rank().corr(y[both].rank()) if both.sum() >= 10 else np.nan
        turnover = np.nan
        if t > 0:
            now, before = ranks.iloc[t], ranks.iloc[t - 1]
            common = now.notna() & before.notna()
            turnover = 1 - now[common].corr(before[common]) if common.sum() >= 2 else np.nan
        listed = close.loc[day].notna()
        coverage = (f.notna() & listed).sum() / listed.sum()
        rows.append({"ic": ic, "rank_ic": rank_ic, "turnover": turnover, "coverage": coverage})
    frame = pd.DataFrame(rows, index=factor.index)
    rolling = frame.rolling(window, min_periods=window // 2)
    frame["ic_mean"] = rolling["ic"].mean()
    frame["rank_icir"] = rolling["rank_ic"].mean() / rolling["rank_ic"].std()
    frame["coverage_mean"] = rolling["coverage"].mean()
    return frame


def test_monitor_matches_pandas_and_is_stored(tmp_path):
    with open_with_dates(tmp_path / "lib.duckdb", DATES.size) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
        frame = lib.monitor("mom", window=12)
        close = load_market(lib.market_store).fields["close"]
        expected = pandas_monitor(
            lib.get_factor("mom"),
            pd.DataFrame(close, index=frame.index, columns=lib.get_factor("mom").columns),
            12,
        )
        for column in expected.columns:
            np.testing.assert_allclose(
                frame[column], expected[column], rtol=1e-10, atol=1e-12, err_msg=column
            )
        stored = lib.monitor_history("mom", window=12)
        pd.testing.assert_frame_equal(stored.drop(columns="computed_at"), frame, check_freq=False)
        with pytest.raises(LibraryError, match="window"):
            lib.monitor("mom", window=1)


# ------------------------------------------------------------------------------------------------
# files: schema versions, a separate market store, locks, crashes
# ------------------------------------------------------------------------------------------------


def test_schema_version_and_migrations_run_on_open(tmp_path, monkeypatch):
    path = tmp_path / "lib.duckdb"
    with pytest.raises(LibraryError, match="does not exist"):
        FactorLibrary(path, read_only=True)
    FactorLibrary(path).close()
    con = duckdb.connect(str(path))
    assert schema_version(con, SCHEMA) == 1
    assert con.execute("SELECT version FROM library_migrations").fetchall() == [(1,)]
    con.close()
    step = Migration(2, "add an owner column", "ALTER TABLE factor_metadata ADD COLUMN owner VARCHAR")
    monkeypatch.setattr(library_module, "SCHEMA", replace(SCHEMA, migrations=(*SCHEMA.migrations, step)))
    with pytest.raises(LibraryError, match="open it once without read_only"):
        FactorLibrary(path, read_only=True)
    FactorLibrary(path).close()
    con = duckdb.connect(str(path))
    assert schema_version(con, SCHEMA) == 2
    columns = {row[0] for row in con.execute("DESCRIBE factor_metadata").fetchall()}
    assert "owner" in columns
    con.execute("UPDATE library_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(LibraryError, match="schema version 99, newer"):
        FactorLibrary(path)


def test_market_data_from_a_separate_store(tmp_path):
    market = tmp_path / "market.duckdb"
    head = tmp_path / "head.parquet"
    rows_between(0, 40).to_parquet(head)
    import_file(head, store=market)
    with FactorLibrary(tmp_path / "lib.duckdb", market_store=market) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
        tail = tmp_path / "tail.parquet"
        rows_between(40).to_parquet(tail)
        import_file(tail, store=market)
        lib.update()
        assert_same(
            lib.get_factor("mom").to_numpy(), full_values(market, {"mom": "rank(delta(close, 5))"}, "mom")
        )
        with pytest.raises(LibraryError, match="reads its market data from"):
            lib.market_store  # noqa: B018


HOLD_SCRIPT = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read_only")
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def hold(path: Path, mode: str) -> subprocess.Popen:
    """Another process holding the file open (as DuckDB locks it), until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


def release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(timeout=30)


def test_another_writer_is_a_clear_error_and_readers_share_the_file(tmp_path):
    path = tmp_path / "lib.duckdb"
    with open_with_dates(path, 30) as lib:
        lib.register_factor("mom", "rank(delta(close, 5))")
    writer = hold(path, "write")
    try:
        for read_only in (False, True):
            with pytest.raises(
                LibraryError, match=r"factor library .* is locked by another process \(PID \d+\)"
            ):
                FactorLibrary(path, read_only=read_only, lock_timeout=0.2)
    finally:
        release(writer)
    reader = hold(path, "read_only")
    try:
        with FactorLibrary(path, read_only=True) as lib:
            assert lib.get_factor("mom").shape[0] == 30
            assert lib.check().ok
            with pytest.raises(LibraryError, match="open read-only"):
                lib.update()
        with pytest.raises(LibraryError, match="locked by another process"):
            FactorLibrary(path, lock_timeout=0.2).register_factor("rev", "-rank(delta(close, 3))")
    finally:
        release(reader)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from miner.library import rows, update
    from miner.library.library import FactorLibrary

    calls = []
    original = rows.insert_values

    def die_on_the_third_factor(con, factor_id, values):
        calls.append(factor_id)
        if len(calls) == 3:
            con.execute("DELETE FROM factor_values WHERE factor_id = ?", [factor_id])
            os._exit(9)
        original(con, factor_id, values)

    rows.insert_values = die_on_the_third_factor
    update.COMMIT_EVERY = 0.0  # a commit after every factor: two are new when it dies
    with FactorLibrary(sys.argv[1]) as lib:
        lib.update()
    """
)


def computed_through(lib: FactorLibrary) -> dict[str, object]:
    return lib.list_factors().set_index("factor_id")["computed_through"].to_dict()


@pytest.mark.parametrize("commit_every", [0.0, 60.0])
def test_a_failed_write_or_computation_stops_the_update_and_the_next_update_completes_it(
    tmp_path, monkeypatch, commit_every
):
    """Writes run on a writer thread while later factors compute: a failed write skips every later
    write and rolls back the factors written since the last commit (with a commit after every
    factor, none), a failed computation lets the writes queued before it land; either way the next
    update finishes the job and the values equal a full recomputation."""
    factors = {
        "a": "rank(delta(close, 5))",
        "b": "ts_std(returns, 10)",
        "c": "a * b",
        "d": "ts_mean(close, 3)",
    }
    original_insert, original_evaluate = rows.insert_values, Evaluator.evaluate

    def insert_failing_for_c(con, factor_id, values):
        if factor_id == "c":
            raise RuntimeError("disk on fire")
        original_insert(con, factor_id, values)

    def evaluate_failing_for_d(self, formula):
        if to_string(formula) == "ts_mean(close, 3)":
            raise FormulaError("kernel exploded")
        return original_evaluate(self, formula)

    last, new_day = pd.Timestamp(DATES[50]).date(), pd.Timestamp(DATES[51]).date()
    with open_with_dates(tmp_path / "lib.duckdb", 51) as lib:
        for factor_id, formula in factors.items():
            lib.register_factor(factor_id, formula)
        lib.market_store.import_frame(rows_between(51, 52), source="one day")
        monkeypatch.setattr(update_module, "COMMIT_EVERY", commit_every)
        monkeypatch.setattr(rows, "insert_values", insert_failing_for_c)
        with pytest.raises(RuntimeError, match="disk on fire"):
            lib.update()
        before_c = new_day if commit_every == 0.0 else last
        assert computed_through(lib) == {"a": before_c, "b": before_c, "c": last, "d": last}
        assert lib.check().ok
        monkeypatch.setattr(rows, "insert_values", original_insert)
        monkeypatch.setattr(Evaluator, "evaluate", evaluate_failing_for_d)
        with pytest.raises(LibraryError, match="factor 'd': kernel exploded"):
            lib.update()
        assert computed_through(lib) == {"a": new_day, "b": new_day, "c": new_day, "d": last}
        monkeypatch.undo()
        assert [r.factor_id for r in lib.update()] == ["d"]
        for factor_id in factors:
            assert_same(
                lib.get_factor(factor_id).to_numpy(), full_values(lib.market_store, factors, factor_id)
            )
        assert lib.check().ok


def test_a_process_killed_during_update_leaves_the_library_consistent(tmp_path):
    path = tmp_path / "lib.duckdb"
    factors = {
        "a_mom": "rank(delta(close, 5))",
        "b_vol": "ts_std(returns, 10)",
        "c_mix": "a_mom * b_vol",
        "d_rng": "ts_max(high, 5) - ts_min(low, 5)",
        "e_vwap": "ts_corr(vwap, volume, 6)",
    }
    with open_with_dates(path, 45) as lib:
        for factor_id, formula in factors.items():
            lib.register_factor(factor_id, formula)
    with MarketStore(path) as store:
        store.import_frame(rows_between(45), source="tail")
        store.import_frame(rows_between(30, 33).assign(volume=lambda f: f["volume"] * 2), source="fix")
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(path)], capture_output=True, timeout=120
    )
    assert crashed.returncode == 9, crashed.stderr.decode()[-2000:]
    with FactorLibrary(path) as lib:
        statuses = lib.list_factors().set_index("factor_id")["status"]
        assert (statuses == "computing").sum() == 3
        report = lib.check(sample_dates=8)
        assert report.ok, report.problems
        assert any("interrupted" in note for note in report.notes)
        lib.update()
        for factor_id in factors:
            assert_same(
                lib.get_factor(factor_id).to_numpy(), full_values(lib.market_store, factors, factor_id)
            )
        assert (lib.list_factors()["status"] == "ok").all()
        report = lib.check()
        assert report.ok and not report.notes


# ------------------------------------------------------------------------------------------------
# the CLI
# ------------------------------------------------------------------------------------------------


def test_cli_register_list_values_update_check_export_show(tmp_path):
    app = typer.Typer()
    app.add_typer(library_app, name="library")
    runner = CliRunner(env={"COLUMNS": "200"})
    path = tmp_path / "lib.duckdb"
    open_with_dates(path, 50).close()
    option = ["--library", str(path)]

    def run(*args: str):
        result = runner.invoke(app, ["library", *args, *option])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    assert "registered mom = rank(delta(close, 5))" in run(
        "register", "mom", "rank(delta(close, 5))", "--description", "momentum", "--category", "price"
    )
    assert "mom" in run("list") and "price" in run("list")
    assert "SYN00" in run("values", "mom", "--rows", "3")
    output = tmp_path / "mom.parquet"
    run(
        "values",
        "mom",
        "--start",
        str(DATES[10])[:10],
        "--instruments",
        "SYN01,SYN02",
        "--output",
        str(output),
    )
    written = pd.read_parquet(output)
    assert set(written["instrument"]) == {"SYN01", "SYN02"} and written["date"].min() == pd.Timestamp(
        DATES[10]
    )
    assert "every factor is up to date" in run("update")
    with MarketStore(path) as store:
        store.import_frame(rows_between(50), source="tail")
    assert "updated 1 factor" in run("update", "mom")
    assert "ok: 1 factor(s)" in run("check")
    assert "mom.parquet" in run("export", str(tmp_path / "export"))
    shown = run("show", "mom", "--window", "10")
    assert "rank ICIR" in shown and "momentum" in shown
    failed = runner.invoke(app, ["library", "register", "bad", "rank(close", *option])
    assert failed.exit_code != 0 and isinstance(failed.exception, LibraryError)
    assert "invalid formula" in str(failed.exception)


def test_intraday_factor_reads_minute_bars_and_minute_imports_make_it_stale(tmp_path):
    daily, minute = synthetic_frames(n_instruments=6, n_days=24, seed=2, minute_days=24, minute_slots=60)
    days = np.sort(daily["date"].unique())
    minute_day = minute["datetime"].dt.normalize()
    factors = {"spike": "ts_mean(fft_band(volume, 2, 5), 3)", "mom": "rank(delta(close, 3))"}
    with FactorLibrary(tmp_path / "lib.duckdb") as lib:
        lib.market_store.import_frame(daily[daily["date"] < days[15]], source="daily head")
        lib.market_store.import_frame(minute[minute_day < days[15]], kind="minute", source="minute head")
        for factor_id, formula in factors.items():
            lib.register_factor(factor_id, formula)
        lib.market_store.import_frame(daily[daily["date"] >= days[15]], source="daily tail")
        lib.market_store.import_frame(minute[minute_day >= days[15]], kind="minute", source="minute tail")
        lib.update()
        market = load_market(lib.market_store, minute=True)
        for factor_id, formula in factors.items():
            assert_same(lib.get_factor(factor_id).to_numpy(), Evaluator(market).evaluate(formula), factor_id)
        fixed = minute[(minute_day >= days[5]) & (minute_day < days[6])].assign(
            volume=lambda f: f["volume"] + 7
        )
        lib.market_store.import_frame(fixed, kind="minute", source="minute fix")
        status = lib.list_factors().set_index("factor_id")["status"]
        assert status.to_dict() == {"mom": "ok", "spike": "stale"}
        assert [r.factor_id for r in lib.update()] == ["spike"]
        market = load_market(lib.market_store, minute=True)
        assert_same(lib.get_factor("spike").to_numpy(), Evaluator(market).evaluate(factors["spike"]))

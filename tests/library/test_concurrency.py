"""Several processes on one library or market store: readers during writes, idle objects, waits.

Every test runs the other side in a real separate process (DuckDB's lock is per process), and the
values read are checked against a fresh full computation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miner.errors import DataError, LibraryError
from miner.lang import Evaluator
from miner.library import FactorLibrary
from miner.market.store import MarketStore, load_market
from miner.market.synthetic import synthetic_frames
from miner.storage import LOCK_TIMEOUT_ENV
from tests.cli_runner import miner

DAILY, _ = synthetic_frames(n_instruments=60, n_days=260, seed=11)
DATES = np.sort(DAILY["date"].unique())
TEMPLATES = ("rank(ts_mean(close, {w}))", "ts_std(returns, {w})", "ts_corr(close, volume, {w})",
             "ts_rank(volume, {w})", "decay_linear(returns, {w})", "ts_zscore(high, {w})")  # fmt: skip
FORMULAS = {
    f"f{i:02d}": template.format(w=w)
    for i, (template, w) in enumerate((t, w) for w in (5, 10, 20, 40, 60) for t in TEMPLATES)
}


def days(first: int, stop: int | None = None) -> pd.DataFrame:
    last = DATES[-1] if stop is None else DATES[stop - 1]
    return DAILY[(DAILY["date"] >= DATES[first]) & (DAILY["date"] <= last)]


def library_with(path: Path, stop: int, formulas: dict[str, str]) -> None:
    with FactorLibrary(path) as lib:
        lib.market_store.import_frame(days(0, stop), source="head")
        for factor_id, formula in formulas.items():
            lib.register_factor(factor_id, formula)


def spawn(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A Python process running `script`; it prints "ready" once set up."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    line = process.stdout.readline().strip()
    assert line == "ready", (line, process.stderr.read() if process.poll() is not None else "")
    return process


def finish(process: subprocess.Popen) -> str:
    """Close its stdin (its signal to stop) and return what it printed after "ready"."""
    if not process.stdin.closed:
        process.stdin.close()
    process.stdin = None  # communicate() would flush it
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return out


IDLE = """
    import sys
    from miner.library import FactorLibrary
    writable = FactorLibrary(sys.argv[1])
    reader = FactorLibrary(sys.argv[1], read_only=True)
    writable.list_factors()
    reader.get_factor("f00")
    print("ready", flush=True)
    sys.stdin.read()
    writable.close()
    reader.close()
"""


def test_a_library_left_open_in_another_process_blocks_neither_update_nor_list(tmp_path, monkeypatch):
    path = tmp_path / "lib.duckdb"
    library_with(path, 200, {"f00": FORMULAS["f00"]})
    with MarketStore(path) as store:
        store.import_frame(days(200), source="tail")
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2")
    idle = spawn(IDLE, str(path))
    try:
        updated = miner("library", "update", "--library", str(path))
        assert updated.returncode == 0, updated.stderr
        assert "updated 1 factor" in updated.stdout
        listed = miner("library", "list", "--library", str(path))
        assert listed.returncode == 0 and "f00" in listed.stdout, listed.stderr
    finally:
        finish(idle)
    with FactorLibrary(path, read_only=True) as lib:
        expected = Evaluator(load_market(path)).evaluate(FORMULAS["f00"])
        np.testing.assert_array_equal(lib.get_factor("f00").to_numpy(), expected)


READER_LOOP = """
    import json, sys, time
    from pathlib import Path
    from miner.library import FactorLibrary
    path, stop = sys.argv[1], Path(sys.argv[2])
    FactorLibrary(path, read_only=True).close()
    print("ready", flush=True)
    done, failed = [], []
    while not stop.exists():
        began = time.time()
        try:
            with FactorLibrary(path, read_only=True) as lib:
                listed = lib.list_factors()
                lib.get_factor(listed["factor_id"].iloc[-1])
            done.append([began, time.time()])
        except Exception as exc:
            failed.append(str(exc))
    print(json.dumps({"done": done, "failed": failed}))
"""


def test_a_reader_loop_keeps_succeeding_during_an_update_of_many_factors(tmp_path):
    """The update runs as `miner library update` in its own process while another process lists
    the factors and reads one, again and again: every read succeeds, several while the update
    runs, none waiting long, and the update's values equal a full recomputation."""
    path = tmp_path / "lib.duckdb"
    library_with(path, 180, FORMULAS)
    with MarketStore(path) as store:
        store.import_frame(days(180), source="tail")
    stop = tmp_path / "stop"
    reader = spawn(READER_LOOP, str(path), str(stop))
    try:
        began = time.time()
        updated = subprocess.run(
            [str(Path(sys.executable).parent / "miner"), "library", "update", "--library", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        ended = time.time()
    finally:
        stop.touch()
    report = json.loads(finish(reader))
    assert updated.returncode == 0, updated.stderr
    assert f"updated {len(FORMULAS)} factor(s)" in updated.stdout
    assert report["failed"] == []
    during = [(start, end) for start, end in report["done"] if began <= start and end <= ended]
    assert len(during) >= 5, (len(during), ended - began)
    longest = max(end - start for start, end in report["done"])
    assert longest < 5.0, longest
    market = load_market(path)
    with FactorLibrary(path, read_only=True) as lib:
        for factor_id in ("f00", "f13", "f29"):
            expected = Evaluator(market).evaluate(FORMULAS[factor_id])
            np.testing.assert_array_equal(lib.get_factor(factor_id).to_numpy(), expected, err_msg=factor_id)


UPDATE_IN_ANOTHER_PROCESS = """
    import sys
    from miner.library import FactorLibrary
    print("ready", flush=True)
    with FactorLibrary(sys.argv[1]) as lib:
        lib.update()
"""


def test_cached_values_follow_writes_by_another_process(tmp_path):
    path = tmp_path / "lib.duckdb"
    library_with(path, 200, {"f00": FORMULAS["f00"], "f01": FORMULAS["f01"]})
    with FactorLibrary(path, read_only=True) as lib:
        before = lib.get_factor("f00")
        assert lib.get_factor("f00").shape == before.shape == (200, 60)
        hits = lib.cache.hits
        with MarketStore(path) as store:
            store.import_frame(days(200), source="tail")
        finish(spawn(UPDATE_IN_ANOTHER_PROCESS, str(path)))
        after = lib.get_factor("f00")
        assert lib.cache.hits == hits
        expected = Evaluator(load_market(path)).evaluate(FORMULAS["f00"])
        np.testing.assert_array_equal(after.to_numpy(), expected)
        assert lib.get_factor("f00").shape == (DATES.size, 60) and lib.cache.hits == hits + 1


HOLD = """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read_only")
    print("ready", flush=True)
    sys.stdin.read()
"""


def test_a_cached_read_needs_no_connection_while_another_process_holds_the_file(tmp_path):
    path = tmp_path / "lib.duckdb"
    library_with(path, 60, {"f00": FORMULAS["f00"]})
    with FactorLibrary(path, read_only=True, lock_timeout=0.2) as lib:
        first = lib.get_factor("f00")
        holder = spawn(HOLD, str(path), "write")
        try:
            np.testing.assert_array_equal(lib.get_factor("f00").to_numpy(), first.to_numpy())
            with pytest.raises(LibraryError, match="locked by another process"):
                lib.get_factor("f01")
        finally:
            finish(holder)


def test_a_locked_file_is_waited_for_up_to_the_timeout(tmp_path, monkeypatch):
    path = tmp_path / "lib.duckdb"
    library_with(path, 40, {"f00": FORMULAS["f00"]})
    holder = spawn(HOLD, str(path), "write")
    try:
        for timeout, env in ((0.6, None), (None, "0.6")):
            if env is not None:
                monkeypatch.setenv(LOCK_TIMEOUT_ENV, env)
            began = time.monotonic()
            with pytest.raises(LibraryError, match=r"is locked by another process \(PID \d+\)$"):
                FactorLibrary(path, read_only=True, lock_timeout=timeout)
            assert 0.5 < time.monotonic() - began < 5
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, "soon")
        with pytest.raises(Exception, match="MINER_LOCK_TIMEOUT='soon': expected a number of seconds"):
            FactorLibrary(path, read_only=True)
        monkeypatch.delenv(LOCK_TIMEOUT_ENV)
        threading.Timer(1.0, holder.stdin.close).start()
        began = time.monotonic()
        with FactorLibrary(path, read_only=True, lock_timeout=20) as lib:
            assert list(lib.list_factors()["factor_id"]) == ["f00"]
        assert 0.8 < time.monotonic() - began < 15
    finally:
        finish(holder)


def test_show_reads_only_while_another_process_reads(tmp_path):
    path = tmp_path / "lib.duckdb"
    library_with(path, 120, {"f00": FORMULAS["f00"]})
    reader = spawn(HOLD, str(path), "read_only")
    try:
        shown = miner("library", "show", "f00", "--window", "20", "--library", str(path))
        assert shown.returncode == 0, shown.stderr
        assert "rank ICIR" in shown.stdout
    finally:
        finish(reader)
    with FactorLibrary(path, read_only=True) as lib:
        assert lib.monitor_history("f00", window=20).empty


IMPORT_LOOP = """
    import sys
    from pathlib import Path
    from miner.market.store import import_file
    print("ready", flush=True)
    for round in range(int(sys.argv[3])):
        import_file(sys.argv[2], store=sys.argv[1])
"""


def test_load_market_keeps_working_while_another_process_imports(tmp_path):
    store = tmp_path / "market.duckdb"
    bars = tmp_path / "bars.parquet"
    DAILY.to_parquet(bars)
    with MarketStore(store) as opened:
        opened.import_frame(DAILY, source="first")
    expected = load_market(store).fingerprint
    importer = spawn(IMPORT_LOOP, str(store), str(bars), "6")
    loads = 0
    try:
        while importer.poll() is None:
            assert load_market(store).fingerprint == expected
            loads += 1
    finally:
        finish(importer)
    assert loads >= 3
    with pytest.raises(DataError, match="does not exist"):
        load_market(tmp_path / "absent.duckdb")


IMPORT_DAYS = """
    import sys
    import pandas as pd
    from miner.market.store import MarketStore
    print("ready", flush=True)
    MarketStore(sys.argv[1]).import_frame(pd.read_parquet(sys.argv[2]), source="later days")
"""


def test_a_library_object_sees_the_imports_of_another_process(tmp_path):
    """The calendar and the market panel a library keeps between operations follow the market."""
    path, later = tmp_path / "lib.duckdb", tmp_path / "later.parquet"
    days(150).to_parquet(later)
    library_with(path, 150, {})
    with FactorLibrary(path) as lib:
        lib.register_factor("f00", FORMULAS["f00"])
        finish(spawn(IMPORT_DAYS, str(path), str(later)))
        record = lib.register_factor("f01", FORMULAS["f01"])
        assert record.computed_through == pd.Timestamp(DATES[-1]).date()
        expected = Evaluator(load_market(path)).evaluate(FORMULAS["f01"])
        np.testing.assert_array_equal(lib.get_factor("f01").to_numpy(), expected)
        assert [r.factor_id for r in lib.update()] == ["f00"]
        expected = Evaluator(load_market(path)).evaluate(FORMULAS["f00"])
        np.testing.assert_array_equal(lib.get_factor("f00").to_numpy(), expected)

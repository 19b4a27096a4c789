"""What opening a DuckDB file costs, the figures behind `miner.storage.database`'s design.

    python benchmarks/bench_connections.py

On a scratch file shaped like a 100-factor library (100 x 1256 x 505 values, a 505 x 1259 market):
opening and closing it read-only, writable, and attempting to open it while another process holds
it (what a waiting process pays per retry); then 100 one-day factor writes (505 rows and a metadata
update in one transaction) on one held connection against one connection per write. Prints a
Markdown table.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

FACTORS = 100
HOLD = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def build(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE factor_values (factor_id VARCHAR, date DATE, instrument VARCHAR, value DOUBLE);"
        "CREATE TABLE factor_metadata (factor_id VARCHAR PRIMARY KEY, computed_through DATE);"
        "CREATE TABLE daily_bars AS SELECT DATE '2013-01-01' + d::INT AS date, 'S' || i AS instrument, "
        "random() AS close FROM range(1259) t(d), range(505) u(i)"
    )
    for f in range(FACTORS):
        con.execute(
            f"INSERT INTO factor_values SELECT 'f{f:03d}', DATE '2013-01-01' + d::INT, 'S' || i, random() "
            "FROM range(1256) t(d), range(505) u(i)"
        )
        con.execute(f"INSERT INTO factor_metadata VALUES ('f{f:03d}', DATE '2016-06-09')")
    con.close()


def best(action, repeat: int = 10) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return min(times)


def one_day_write(con: duckdb.DuckDBPyConnection, factor_id: str, day: np.ndarray) -> None:
    incoming = pa.table(  # noqa: F841 (read by the SQL below)
        {
            "date": pa.array(day),
            "instrument": pa.array([f"S{i}" for i in range(505)]),
            "value": np.random.rand(505),
        }
    )
    con.begin()
    con.execute("INSERT INTO factor_values SELECT ?, date, instrument, value FROM incoming", [factor_id])
    con.execute(
        "UPDATE factor_metadata SET computed_through = ? WHERE factor_id = ?", [day[0].item(), factor_id]
    )
    con.commit()


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "library.duckdb"
        build(path)
        rows = [
            ("open + close, read-only", best(lambda: duckdb.connect(str(path), read_only=True).close())),
            ("open + close, writable, nothing written", best(lambda: duckdb.connect(str(path)).close())),
            ("open + close of an in-memory database", best(lambda: duckdb.connect(":memory:").close())),
        ]
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"

        def attempt() -> None:
            try:
                duckdb.connect(str(path), read_only=True)
            except duckdb.IOException:
                return

        rows.append(("a failed attempt on a file another process holds", best(attempt)))
        holder.communicate("")
        days = [np.array([np.datetime64("2016-06-10") + k] * 505, dtype="datetime64[D]") for k in range(2)]
        held = duckdb.connect(str(path))
        began = time.perf_counter()
        for f in range(FACTORS):
            one_day_write(held, f"f{f:03d}", days[0])
        held.close()
        rows.append((f"{FACTORS} one-day factor writes on one held connection", time.perf_counter() - began))
        began = time.perf_counter()
        for f in range(FACTORS):
            con = duckdb.connect(str(path))
            one_day_write(con, f"f{f:03d}", days[1])
            con.close()
        rows.append((f"{FACTORS} one-day factor writes, one connection each", time.perf_counter() - began))
        size = path.stat().st_size >> 20
    print(f"scratch library: {size} MiB")
    print("| step | time |")
    print("|---|---|")
    for step, seconds in rows:
        print(f"| {step} | {seconds * 1e3:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

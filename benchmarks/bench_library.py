"""Factor-library timings on the real S&P 500 panel (505 x 1259) with 100 registered factors.

    python benchmarks/bench_library.py [--data ../shared/data/us_sp500_5yr_daily.parquet] [--contended]

Steps: import every date but the last three into a new library file; register 100 distinct
formulas (full history computed and stored, one transaction each); then three times: import the
next date and `update` all 100 (incremental: one new date each, one transaction per factor; the
median is compared with the full path); read one factor's full history cold (not in the LRU cache;
DuckDB's own buffers warm) and cached. Bulk write throughput is the values written by the
registrations over the time spent in the Arrow inserts alone. Prints a Markdown table; targets
(incremental >= 50x faster than full, cached read >= 100x faster than cold) are reported, not
asserted. With ``--contended``, three more dates are held out and updated while another process
reads the library in a loop (a new read-only `FactorLibrary`, `list_factors` and one `get_factor`
each time): the update's time, and how many reads finished during it and the longest one.

Recorded on the 2-core development machine while other jobs ran (load average 3.8-6.7; five runs
gave full / incremental = 37x, 41x, 50x, 52x, 42x, the last one below):

| step | size | time |
|---|---|---|
| full: register 100 factors (compute + store 1256 dates) | 61,664,498 values | 28.37 s |
| bulk write throughput (Arrow inserts only) | 61,664,498 values in 11.84 s | 5.21 M values/s |
| incremental: update all 100 factors by one new date (2018-02-05) | 50,500 values | 0.679 s |
| incremental: update all 100 factors by one new date (2018-02-06) | 50,500 values | 0.630 s |
| incremental: update all 100 factors by one new date (2018-02-07) | 50,500 values | 0.684 s |
| speed-up full / median incremental (target >= 50x) |  | 42x |
| get_factor f000 cold (best of 5) | 619,091 values | 68.7 ms |
| get_factor cached (best of 200) | 619,091 values | 9.6 us |
| speed-up cold / cached (target >= 100x) |  | 7182x |
| value_on one factor, last date (best of 3) | 505 values | 33.1 ms |
| check: keys, ranges, metadata, recompute 3 + 1 dates per factor | 400 dates, ok=True | 26.32 s |
| monitor one factor (rolling 60 dates) | 1259 dates | 375 ms |
| library file (market + 100 factors) |  | 527 MiB |

Where the incremental time goes (100 factors, one date): per factor one INSERT (~1.2 ms), one
metadata UPDATE (~1 ms) and one durable COMMIT (2-3.5 ms: an fsync on this disk is 2.8 ms), plus
~1.5 ms evaluating on the 60-row window; ~0.1 s is fixed (calendar, window load). Putting all 100
factors in one transaction instead saved only 0.1-0.3 s, so the target misses by the DuckDB
statement + commit floor of this contended machine, not by recomputation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import timed

from miner.lang import Evaluator, canonical
from miner.library import FactorLibrary, rows
from miner.market.store import MarketStore

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_sp500_5yr_daily.parquet"
FIELDS = ("close", "open", "high", "low", "vwap", "volume", "returns")
WINDOWS = (5, 10, 20, 40, 60)
TEMPLATES = (
    "rank(ts_mean({x}, {w}))",
    "ts_std({x}, {w})",
    "rank(delta({x}, {w}))",
    "ts_rank({x}, {w})",
    "decay_linear({x}, {w})",
    "ts_zscore({x}, {w})",
    "ts_corr({x}, volume, {w})",
    "zscore(ts_sum({x}, {w}))",
    "ts_max({x}, {w}) - ts_min({x}, {w})",
    "group_neutralize(ts_mean({x}, {w}), sector)",
)
N_FACTORS = 100
N_DERIVED = 10  # the last factors read earlier ones (dependencies in the library)
NEW_DAYS = 3  # held out, then imported and updated one at a time


def factor_formulas(count: int = N_FACTORS, derived: int = N_DERIVED) -> dict[str, str]:
    """`count` distinct formulas (by canonical form) drawn in a fixed shuffled order from the
    templates x windows x fields; the last `derived` of them read earlier factors."""
    formulas: dict[str, str] = {}
    seen: set[str] = set()
    combinations = list(itertools.product(TEMPLATES, WINDOWS, FIELDS))
    for position in np.random.default_rng(0).permutation(len(combinations)):
        template, w, x = combinations[position]
        if len(formulas) == count - derived:
            break
        formula = template.format(x=x, w=w)
        if "ts_corr(volume, volume" in formula or canonical(formula) in seen:
            continue
        seen.add(canonical(formula))
        formulas[f"f{len(formulas):03d}"] = formula
    base = list(formulas)
    for k in range(derived):
        a, b = base[7 * k], base[7 * k + 3]
        formulas[f"f{len(formulas):03d}"] = f"rank({a}) - rank(ts_mean({b}, 5))"
    return formulas


class InsertTimer:
    """Wraps `rows.insert_values` to add up the time and the values of the bulk inserts."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.values = 0
        self._original = rows.insert_values

    def __call__(self, con: Any, factor_id: str, values: Any) -> None:
        start = time.perf_counter()
        self._original(con, factor_id, values)
        self.seconds += time.perf_counter() - start
        self.values += values.num_rows


def warm_up(daily: pd.DataFrame, formulas: dict[str, str]) -> None:
    """Compile (or load from numba's cache) every kernel the formulas use, on a small panel."""
    with tempfile.TemporaryDirectory() as folder:
        store = MarketStore(Path(folder) / "warm.duckdb")
        days = np.sort(daily["date"].unique())
        store.import_frame(daily[daily["date"] <= days[80]], source="warm-up")
        market = store.load()
        panels: dict[str, np.ndarray] = {}
        for factor_id, formula in formulas.items():
            panels[factor_id] = Evaluator(market, extra=panels).evaluate(formula)
        store.close()


READER_LOOP = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from miner.library import FactorLibrary
    path, stop = sys.argv[1], Path(sys.argv[2])
    FactorLibrary(path, read_only=True).close()
    print("ready", flush=True)
    reads = []
    while not stop.exists():
        began = time.time()
        with FactorLibrary(path, read_only=True) as lib:
            lib.get_factor(lib.list_factors()["factor_id"].iloc[-1])
        reads.append([began, time.time()])
    print(json.dumps(reads))
    """
)


def contended_updates(
    lib: FactorLibrary, daily: pd.DataFrame, new_days: np.ndarray
) -> list[tuple[str, str, str]]:
    """Update by each of `new_days` while another process reads the library in a loop."""
    if not new_days.size:
        return []
    stop = lib.path.parent / "stop-reading"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER_LOOP, str(lib.path), str(stop)], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    spans = []
    for day in new_days:
        lib.market_store.import_frame(daily[daily["date"] == day], source=f"sp500 {day}")
        began = time.time()
        lib.update()
        spans.append((day, began, time.time()))
    stop.touch()
    reads = json.loads(reader.communicate()[0])
    found = []
    for day, began, ended in spans:
        during = [end - start for start, end in reads if start < ended and end > began]
        found.append(
            (
                f"incremental while another process reads in a loop ({day})",
                f"{len(during)} reads overlapping it, longest {max(during, default=0) * 1e3:.0f} ms",
                f"{ended - began:.3f} s",
            )
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--contended", action="store_true", help="also update while another process reads")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"data not found: {args.data}")
        return 1
    daily = pd.read_parquet(args.data)
    days = np.sort(daily["date"].unique())
    contended_days = days[-NEW_DAYS:] if args.contended else days[:0]
    days = days[: days.size - contended_days.size]
    formulas = factor_formulas()
    warm_up(daily, formulas)
    table: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "factors.duckdb"
        with FactorLibrary(path) as lib:
            lib.market_store.import_frame(daily[daily["date"] < days[-NEW_DAYS]], source="sp500 head")
            inserts = InsertTimer()
            rows.insert_values = inserts
            full, _ = timed(lambda: [lib.register_factor(fid, formula) for fid, formula in formulas.items()])
            rows.insert_values = inserts._original
            table.append(
                (
                    f"full: register {len(formulas)} factors (compute + store {len(days) - NEW_DAYS} dates)",
                    f"{inserts.values:,} values",
                    f"{full:.2f} s",
                )
            )
            table.append(
                (
                    "bulk write throughput (Arrow inserts only)",
                    f"{inserts.values:,} values in {inserts.seconds:.2f} s",
                    f"{inserts.values / inserts.seconds / 1e6:.2f} M values/s",
                )
            )
            updates = []
            for day in days[-NEW_DAYS:]:
                lib.market_store.import_frame(daily[daily["date"] == day], source=f"sp500 {day}")
                seconds, results = timed(lib.update)
                updates.append(seconds)
                table.append(
                    (
                        f"incremental: update all {len(results)} factors by one new date ({day})",
                        f"{sum(r.values for r in results):,} values",
                        f"{seconds:.3f} s",
                    )
                )
            incremental = float(np.median(updates))
            table.append(
                ("speed-up full / median incremental (target >= 50x)", "", f"{full / incremental:.0f}x")
            )
            table.extend(contended_updates(lib, daily, contended_days))
            factor_id = "f000"

            def cold_read() -> pd.DataFrame:
                lib.cache.clear()
                return lib.get_factor(factor_id)

            cold, frame = timed(cold_read, repeat=5)
            values = int(np.isfinite(frame.to_numpy()).sum())
            cached, _ = timed(lambda: lib.get_factor(factor_id), repeat=200)
            table.append(
                (f"get_factor {factor_id} cold (best of 5)", f"{values:,} values", f"{cold * 1e3:.1f} ms")
            )
            table.append(("get_factor cached (best of 200)", f"{values:,} values", f"{cached * 1e6:.1f} us"))
            table.append(("speed-up cold / cached (target >= 100x)", "", f"{cold / cached:.0f}x"))
            seconds, _ = timed(lambda: lib.value_on("f050", days[-1]), repeat=3)
            table.append(
                (
                    "value_on one factor, last date (best of 3)",
                    f"{frame.shape[1]} values",
                    f"{seconds * 1e3:.1f} ms",
                )
            )
            seconds, report = timed(lambda: lib.check(sample_dates=3))
            table.append(
                (
                    "check: keys, ranges, metadata, recompute 3 + 1 dates per factor",
                    f"{report.sampled_dates} dates, ok={report.ok}",
                    f"{seconds:.2f} s",
                )
            )
            seconds, _ = timed(lambda: lib.monitor(factor_id))
            table.append(
                ("monitor one factor (rolling 60 dates)", f"{len(days)} dates", f"{seconds * 1e3:.0f} ms")
            )
        size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob("factors.duckdb.wal"))
        table.append(("library file (market + 100 factors)", "", f"{size / 2**20:.0f} MiB"))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    print("| step | size | time |")
    print("|---|---|---|")
    for step, amount, seconds_text in table:
        print(f"| {step} | {amount} | {seconds_text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

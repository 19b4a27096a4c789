"""Market-store timings on the shared real data: import, upsert, load (target < 1 s), minute bars.

Run from the repository root: ``python benchmarks/bench_data.py``. Prints a markdown table.
Needs ../shared/data beside the repository (see its README).

Recorded on the 2-core development machine while other jobs ran (load average 3-5, so +-50%;
under heavier load the S&P load took up to 0.42 s):

| step | rows | seconds |
|---|---|---|
| import S&P daily parquet into a new store | 619,040 | 1.24 |
| re-import the same file (upsert, every key replaced) | 619,040 | 1.07 |
| load_market, S&P 505 x 1259 (best of 3; target < 1 s) | 619,040 | 0.13 |
| MarketData.from_frame, S&P | 619,040 | 0.29 |
| fingerprint, S&P panel | 619,040 | 0.03 |
| import minute parquet | 4,802,283 | 9.49 |
| load_market(minute=True), 284 x 44 x 391 | 4,802,283 | 1.27 |
| synthetic_market 200 x 500, no minutes | 100,000 | 0.11 |
| synthetic_market 200 x 500, 20 minute days x 390 | 1,560,000 | 2.40 |
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd
from common import daily_from_minutes, timed

from miner.market import MarketData
from miner.market.store import MarketStore, import_file, load_market
from miner.market.synthetic import synthetic_market

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LOAD_TARGET_SECONDS = 1.0


def main() -> int:
    daily_file = SHARED_DATA / "us_sp500_5yr_daily.parquet"
    minute_file = SHARED_DATA / "us_minute_2018q1.parquet"
    if not daily_file.exists():
        print(f"shared data not found at {SHARED_DATA}", file=sys.stderr)
        return 1
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "market.duckdb"
        seconds, report = timed(lambda: import_file(daily_file, store=store))
        rows.append(("import S&P daily parquet into a new store", f"{report.rows:,}", seconds))
        seconds, report = timed(lambda: import_file(daily_file, store=store))
        rows.append(
            (
                "re-import the same file (upsert, every key replaced)",
                f"{report.replaced:,}",
                seconds,
            )
        )
        seconds, market = timed(lambda: load_market(store), repeat=3)
        rows.append(
            (
                f"load_market, S&P {market.N} x {market.T} (best of 3; target < {LOAD_TARGET_SECONDS:g} s)",
                f"{report.rows:,}",
                seconds,
            )
        )
        load_seconds = seconds
        frame = pd.read_parquet(daily_file)
        seconds, built = timed(lambda: MarketData.from_frame(frame))
        rows.append(("MarketData.from_frame, S&P", f"{len(frame):,}", seconds))
        seconds, _ = timed(lambda: built.fingerprint)
        rows.append(("fingerprint, S&P panel", f"{len(frame):,}", seconds))

        minute_store = Path(folder) / "minute.duckdb"
        minute = pd.read_parquet(minute_file)
        with MarketStore(minute_store) as opened:
            opened.import_frame(daily_from_minutes(minute), source="daily aggregated from minutes")
        seconds, report = timed(lambda: import_file(minute_file, kind="minute", store=minute_store))
        rows.append(("import minute parquet", f"{report.rows:,}", seconds))
        seconds, loaded = timed(lambda: load_market(minute_store, minute=True))
        rows.append(
            (
                f"load_market(minute=True), {loaded.N} x {loaded.T} x {loaded.M}",
                f"{report.rows:,}",
                seconds,
            )
        )

    seconds, synthetic = timed(lambda: synthetic_market())
    rows.append(
        (
            f"synthetic_market {synthetic.N} x {synthetic.T}, no minutes",
            f"{synthetic.N * synthetic.T:,}",
            seconds,
        )
    )
    seconds, synthetic = timed(lambda: synthetic_market(minute_days=20))
    rows.append(
        (
            f"synthetic_market {synthetic.N} x {synthetic.T}, 20 minute days x {synthetic.M}",
            f"{synthetic.N * 20 * synthetic.M:,}",
            seconds,
        )
    )

    print("| step | rows | seconds |")
    print("|---|---|---|")
    for step, count, seconds in rows:
        print(f"| {step} | {count} | {seconds:.2f} |")
    verdict = "meets" if load_seconds < LOAD_TARGET_SECONDS else "MISSES"
    print(f"\nS&P load {load_seconds:.2f} s {verdict} the {LOAD_TARGET_SECONDS:g} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The integrity check: keys, ranges, metadata, and stored values equal to a recomputation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from miner.errors import FormulaError, LibraryError
from miner.lang import Evaluator, history_rows, lookback, names, reads_intraday, to_string
from miner.library.graph import dependency_order
from miner.library.market_view import MarketView, date_of, day_of
from miner.library.records import STATUSES, CheckReport, FactorRecord
from miner.library.staleness import effective_stale
from miner.market import MarketData

if TYPE_CHECKING:
    from miner.library.library import FactorLibrary


def check(lib: FactorLibrary, sample_dates: int = 5, seed: int = 0) -> CheckReport:
    """Verify integrity: unique keys, no values past the market data or the factor's computed
    range, metadata consistent with the formulas, stored values equal to a recomputation on
    `sample_dates` random dates per factor (plus its last computed date) before any stale date.
    One read-only operation: the file stays open (to readers only) until the check ends.
    """
    report = CheckReport()
    with lib._operation() as con:
        records = lib._records()
        report.factors = len(records)
        stored_rows = con.execute("SELECT count(*) FROM factor_values").fetchall()[0][0]
        if not records and not stored_rows:
            return report
        _check_market(lib, records, sample_dates, seed, report)
    return report


def _check_market(
    lib: FactorLibrary, records: Mapping[str, FactorRecord], sample_dates: int, seed: int, report: CheckReport
) -> None:
    with lib._market() as market:
        _check_tables(lib, records, market, report)
        _check_metadata(lib, records, report)
        if report.problems:
            return
        stale = effective_stale(records, market.changes())
        for fid, record in records.items():
            if record.status == "computing":
                report.notes.append(f"{fid}: an update was interrupted; the next update completes it")
            if fid in stale:
                report.notes.append(f"{fid}: stale from {stale[fid]}; run update")
            elif record.computed_through is not None and day_of(record.computed_through) < market.dates[-1]:
                report.notes.append(f"{fid}: computed through {record.computed_through}, market goes further")
        rng = np.random.default_rng(seed)
        full = market.window(0, market.dates.size)
        stored: dict[str, np.ndarray] = {}
        for fid in dependency_order({fid: r.dependencies for fid, r in records.items()}):
            _check_samples(lib, records[fid], stale.get(fid), market, full, rng, sample_dates, stored, report)


def _check_tables(
    lib: FactorLibrary, records: Mapping[str, FactorRecord], market: MarketView, report: CheckReport
) -> None:
    # Duplicates are counted per (factor, date) group: rows minus distinct instruments. Exact, and
    # cheaper than grouping by the whole key (benchmarks/README.md, "Design choices").
    summary = lib._con.execute(
        "SELECT factor_id, max(date), sum(nonfinite), sum(rows - names) FROM ("
        "  SELECT factor_id, date, count(*) AS rows, count(DISTINCT instrument) AS names,"
        "  count(*) FILTER (WHERE NOT isfinite(value)) AS nonfinite"
        "  FROM factor_values GROUP BY factor_id, date"
        ") GROUP BY factor_id ORDER BY factor_id"
    ).fetchall()
    last_market = date_of(market.dates[-1])
    for fid, last, nonfinite, duplicated in summary:
        if duplicated:
            report.problems.append(f"{fid}: {duplicated} duplicated keys, e.g. {_duplicates(lib, fid)}")
        if fid not in records:
            report.problems.append(f"{fid}: values stored for a factor without metadata")
            continue
        through = records[fid].computed_through
        if through is None or last > through:
            report.problems.append(f"{fid}: values through {last}, past its computed date {through}")
        if last > last_market:
            report.problems.append(f"{fid}: values through {last}, past the market data ({last_market})")
        if nonfinite:
            report.problems.append(f"{fid}: {nonfinite} stored values are NaN or inf")
    stored_days = lib._con.execute("SELECT DISTINCT date FROM factor_values").fetchall()
    days = np.array([day for (day,) in stored_days], dtype="datetime64[D]")
    for day in np.sort(days[~np.isin(days, market.dates)])[:5]:
        report.problems.append(f"values stored on {day}, which is not a trading date of the market store")


def _duplicates(lib: FactorLibrary, factor_id: str) -> str:
    rows = lib._con.execute(
        "SELECT date, instrument, count(*) FROM factor_values WHERE factor_id = ? "
        "GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 3",
        [factor_id],
    ).fetchall()
    return ", ".join(f"{count} values for ({day}, {instrument})" for day, instrument, count in rows)


def _check_metadata(lib: FactorLibrary, records: Mapping[str, FactorRecord], report: CheckReport) -> None:
    for fid, record in records.items():
        try:
            tree = record.tree
        except FormulaError as exc:
            report.problems.append(f"{fid}: formula does not parse: {exc}")
            continue
        if to_string(tree) != record.canonical:
            report.problems.append(f"{fid}: canonical form {record.canonical!r} != {to_string(tree)!r}")
        if lookback(tree) != record.lookback:
            report.problems.append(f"{fid}: lookback {record.lookback} != {lookback(tree)}")
        if set(record.dependencies) != names(tree) & set(records):
            report.problems.append(
                f"{fid}: dependencies {list(record.dependencies)} do not match the formula"
            )
        if record.status not in STATUSES:
            report.problems.append(f"{fid}: unknown status {record.status!r}")
        if record.stale_from is not None and (
            record.computed_through is None or record.stale_from > record.computed_through
        ):
            report.problems.append(f"{fid}: stale from {record.stale_from}, after its computed date")
    try:
        dependency_order({fid: r.dependencies for fid, r in records.items()})
    except LibraryError as exc:
        report.problems.append(str(exc))


def _check_samples(
    lib: FactorLibrary,
    record: FactorRecord,
    stale_from: dt.date | None,
    market: MarketView,
    full: MarketData,
    rng: np.random.Generator,
    count: int,
    stored: dict[str, np.ndarray],
    report: CheckReport,
) -> None:
    if record.computed_through is None:
        return
    stop = int(np.searchsorted(market.dates, day_of(record.computed_through), "right"))
    if stale_from is not None:
        stop = min(stop, int(np.searchsorted(market.dates, day_of(stale_from), "left")))
    if stop == 0:
        return
    rows = sorted({stop - 1, *rng.choice(stop, size=min(count, stop), replace=False).tolist()})
    tree = record.tree
    history = history_rows(tree)
    for dep in record.dependencies:
        if dep not in stored:
            stored[dep] = lib._stored_panel(dep, market.dates, market.universe)
    intraday = reads_intraday(tree)
    for row in rows:
        origin = max(0, row - history)
        window = market.window(origin, row + 1, minute=True) if intraday else full.slice_rows(origin, row + 1)
        extra = {dep: stored[dep][origin : row + 1] for dep in record.dependencies}
        computed = lib._evaluate(record.factor_id, tree, Evaluator(window, extra=extra))[-1]
        kept = lib._stored_panel(record.factor_id, market.dates[row : row + 1], market.universe)[0]
        report.sampled_dates += 1
        if not np.array_equal(computed, kept, equal_nan=True):
            differing = int((~((computed == kept) | (np.isnan(computed) & np.isnan(kept)))).sum())
            report.problems.append(
                f"{record.factor_id}: stored values on {market.dates[row]} differ from a recomputation "
                f"({differing} instruments)"
            )

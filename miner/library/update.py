"""Incremental update: the plan (what to recompute from which date) and its factor-by-factor writes."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from miner.lang import Evaluator, Node, reads_intraday
from miner.library import rows
from miner.library.cache import forget_factor
from miner.library.graph import chained_history, dependency_order
from miner.library.market_view import MarketView, as_list, date_of, day_of
from miner.library.records import FactorRecord, UpdateResult
from miner.library.schema import write_transaction
from miner.library.staleness import effective_stale
from miner.market import MarketData

if TYPE_CHECKING:
    from miner.library.library import FactorLibrary


def update(lib: FactorLibrary, factor_ids: Iterable[str] | None = None) -> list[UpdateResult]:
    """Bring factors (default all; their dependencies are included) up to the market data.

    Per factor, in dependency order and one transaction each: delete its values from its first
    new (or stale) date on and write the values computed on a window that starts its chained
    history (`chained_history`) earlier; the factors it reads are evaluated on the same window
    and passed to it as panels. The result equals a full recomputation exactly.

    The transactions run in order on one writer thread while this thread computes the next
    factors (`_write_in_order`); a failed write stops the later ones.
    """
    lib._require_writable("update")
    with lib._market() as market:
        records = lib._records()
        targets = _with_dependencies(lib, records if factor_ids is None else as_list(factor_ids), records)
        order = dependency_order({fid: records[fid].dependencies for fid in targets})
        snapshot = lib._now()
        stale = effective_stale(records, market.changes())
        _persist_stale(lib, records, stale)
        starts = _first_rows(lib, order, records, stale, market)
        plan = [fid for fid in order if fid in starts]
        if not plan:
            return []
        _mark_computing(lib, plan)
        inputs = _with_dependencies(lib, plan, records)
        sequence = [fid for fid in order if fid in inputs]
        trees = {fid: records[fid].tree for fid in sequence}
        reach = chained_history(sequence, trees, {fid: records[fid].dependencies for fid in sequence})
        origin = max(0, min(starts[fid] - reach[fid] for fid in plan))
        window = market.window(origin, market.dates.size, minute=any(map(reads_intraday, trees.values())))
        panels = _evaluate_in_order(lib, sequence, trees, window)
        return _write_in_order(
            lib,
            ((records[fid], panel, starts[fid] - origin) for fid, panel in panels if fid in starts),
            window,
            snapshot,
        )


def _evaluate_in_order(
    lib: FactorLibrary, sequence: Sequence[str], trees: Mapping[str, Node], window: MarketData
) -> Iterator[tuple[str, np.ndarray]]:
    """Each factor's panel in turn; a factor reads the panels of those before it."""
    computed: dict[str, np.ndarray] = {}
    evaluator = Evaluator(window, extra=computed)
    for fid in sequence:
        panel = lib._evaluate(fid, trees[fid], evaluator)
        computed[fid] = panel
        yield fid, panel


def _write_in_order(
    lib: FactorLibrary,
    work: Iterable[tuple[FactorRecord, np.ndarray, int]],
    window: MarketData,
    snapshot: dt.datetime,
) -> list[UpdateResult]:
    """`_write_update` for each (record, panel, first row), in order, on one writer thread
    while this thread produces the next (kernels and DuckDB release the GIL). A failed write
    skips the later ones; a failure producing work lets the queued writes finish first."""
    failed = threading.Event()

    def write(record: FactorRecord, panel: np.ndarray, first_row: int) -> UpdateResult | None:
        if failed.is_set():
            return None
        try:
            return _write_update(lib, record, panel, window, first_row, snapshot)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="library-writer") as writer:
        writes = [writer.submit(write, *item) for item in work]
    return [result for result in (w.result() for w in writes) if result is not None]


def _write_update(
    lib: FactorLibrary,
    record: FactorRecord,
    panel: np.ndarray,
    window: MarketData,
    first_row: int,
    snapshot: dt.datetime,
) -> UpdateResult:
    """One factor's transaction: its values from window row `first_row` on."""
    factor_id = record.factor_id
    dates = window.dates[first_row:]
    values = rows.long_values(panel[first_row:], dates, window.instruments)
    first = date_of(dates[0])
    with write_transaction(lib._con, f"updating factor {factor_id!r}"):
        # The write path stores nothing after computed_through: appending needs no delete.
        if record.computed_through is not None and first <= record.computed_through:
            lib._con.execute(
                "DELETE FROM factor_values WHERE factor_id = ? AND date >= ?", [factor_id, first]
            )
        rows.insert_values(lib._con, factor_id, values)
        lib._set_computed(factor_id, date_of(dates[-1]), snapshot)
    forget_factor(lib._cache, factor_id)
    return UpdateResult(factor_id, first, date_of(dates[-1]), values.num_rows)


def _with_dependencies(
    lib: FactorLibrary, requested: Iterable[str], records: Mapping[str, FactorRecord]
) -> set[str]:
    chosen: set[str] = set()
    pending = list(requested)
    while pending:
        fid = pending.pop()
        if fid in chosen:
            continue
        if fid not in records:
            raise lib._unknown(fid, records)
        chosen.add(fid)
        pending.extend(records[fid].dependencies)
    return chosen


def _first_rows(
    lib: FactorLibrary,
    order: Sequence[str],
    records: Mapping[str, FactorRecord],
    stale: Mapping[str, dt.date],
    market: MarketView,
) -> dict[str, int]:
    """Per factor with work to do, the calendar row of its first date to (re)compute."""
    starts: dict[str, int] = {}
    for fid in order:
        record = records[fid]
        if fid in stale:
            start = int(np.searchsorted(market.dates, day_of(stale[fid]), "left"))
        elif record.computed_through is None:
            start = 0
        else:
            start = int(np.searchsorted(market.dates, day_of(record.computed_through), "right"))
        start = min([start, *(starts[dep] for dep in record.dependencies if dep in starts)])
        if start < market.dates.size:
            starts[fid] = start
    return starts


def _persist_stale(
    lib: FactorLibrary, records: Mapping[str, FactorRecord], stale: Mapping[str, dt.date]
) -> None:
    changed = [(day, fid) for fid, day in stale.items() if records[fid].stale_from != day]
    if not changed:
        return
    with write_transaction(lib._con, "marking stale factors"):
        for day, fid in changed:
            lib._con.execute(
                "UPDATE factor_metadata SET stale_from = ?, status = "
                "CASE WHEN status = 'computing' THEN status ELSE 'stale' END WHERE factor_id = ?",
                [day, fid],
            )


def _mark_computing(lib: FactorLibrary, plan: Sequence[str]) -> None:
    with write_transaction(lib._con, "starting the update"):
        lib._con.execute(
            "UPDATE factor_metadata SET status = 'computing' WHERE list_contains(?, factor_id)",
            [list(plan)],
        )

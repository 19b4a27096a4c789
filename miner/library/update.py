"""Incremental update: the plan (what to recompute from which date) and its factor-by-factor writes."""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from miner.errors import LibraryError
from miner.lang import Evaluator, Node, reads_intraday
from miner.library import rows
from miner.library.graph import chained_history, dependency_order
from miner.library.market_view import MarketView, as_list, date_of, day_of
from miner.library.records import FactorRecord, UpdateResult
from miner.library.schema import write_transaction
from miner.library.staleness import effective_stale
from miner.market import MarketData
from miner.storage import HeldConnection

if TYPE_CHECKING:
    from miner.library.library import FactorLibrary

IDLE_CHECK = 0.05  # seconds: how often an idle writer looks whether another process waits for the file
COMMIT_EVERY = 1.0  # seconds: the most written work a failed or killed update loses


def update(lib: FactorLibrary, factor_ids: Iterable[str] | None = None) -> list[UpdateResult]:
    """Bring factors (default all; their dependencies are included) up to the market data.

    Per factor, in dependency order: delete its values from its first new (or stale) date on and
    write the values computed on a window that starts its chained history (`chained_history`)
    earlier, with its metadata, in the same transaction; the factors it reads are evaluated on the
    same window and passed to it as panels. The result equals a full recomputation exactly.

    The writes run in order on one writer thread while this thread computes the next factors
    (`_write_in_order`). The writer keeps the file between factors and commits factor by factor in
    groups (`_Commits`): whenever another process waits for the file (then it closes the file, so
    that process waits for at most one factor's write), `COMMIT_EVERY` seconds after the group's
    first write, and at the end. A failed write stops the later ones and rolls back its group;
    every factor is then fully old (still marked computing) or fully new, and the next update
    completes the job.
    """
    lib._require_writable("update")
    with HeldConnection(lib.path, False, "factor library", LibraryError, lib.lock_timeout) as held:
        con = held.connection()
        with lib._file.using(con, writable=True), lib._market() as market:
            records = lib._records()
            targets = _with_dependencies(lib, records if factor_ids is None else as_list(factor_ids), records)
            order = dependency_order({fid: records[fid].dependencies for fid in targets})
            snapshot = lib._now()
            stale = effective_stale(records, market.changes())
            _persist_stale(con, records, stale)
            starts = _first_rows(order, records, stale, market)
            plan = [fid for fid in order if fid in starts]
            if not plan:
                return []
            _mark_computing(con, plan)
            inputs = _with_dependencies(lib, plan, records)
            sequence = [fid for fid in order if fid in inputs]
            trees = {fid: records[fid].tree for fid in sequence}
            reach = chained_history(sequence, trees, {fid: records[fid].dependencies for fid in sequence})
            origin = max(0, min(starts[fid] - reach[fid] for fid in plan))
            window = market.window(origin, market.dates.size, minute=any(map(reads_intraday, trees.values())))
        panels = _evaluate_in_order(lib, sequence, trees, window)
        return _write_in_order(
            lib,
            held,
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


_DONE = object()


def _write_in_order(
    lib: FactorLibrary,
    held: HeldConnection,
    work: Iterable[tuple[FactorRecord, np.ndarray, int]],
    window: MarketData,
    snapshot: dt.datetime,
) -> list[UpdateResult]:
    """Each (record, panel, first row) written (`_Commits`), in order, on one writer thread
    while this thread produces the next (kernels and DuckDB release the GIL). A failed write
    skips the later ones; a failure producing work lets the queued writes finish first."""
    pending: queue.Queue = queue.Queue()
    results: list[UpdateResult] = []
    failures: list[BaseException] = []
    commits = _Commits(lib, held, window, snapshot)

    def writer() -> None:
        while True:
            try:
                item = pending.get(timeout=IDLE_CHECK)
            except queue.Empty:
                item = None
            if item is _DONE:
                if not failures:
                    commits.settle(final=True)
                return
            if failures:
                continue
            try:
                if item is not None:
                    record, panel, first_row = item
                    results.append(commits.write(record, panel, first_row))
                commits.settle()
            except BaseException as exc:
                failures.append(exc)

    thread = threading.Thread(target=writer, name="library-writer", daemon=True)
    thread.start()
    try:
        for item in work:
            pending.put(item)
    finally:
        pending.put(_DONE)
        thread.join()
    if failures:
        raise failures[0]
    return results


class _Commits:
    """The writer's open transaction on the held connection: factors are written into it and it is
    committed when another process waits for the file (which is then closed), `COMMIT_EVERY`
    seconds after it began, or at the end. One commit (an fsync) per factor would dominate a
    one-day update (benchmarks/README.md, "Readers during writes")."""

    def __init__(
        self, lib: FactorLibrary, held: HeldConnection, window: MarketData, snapshot: dt.datetime
    ) -> None:
        self.lib = lib
        self.held = held
        self.window = window
        self.snapshot = snapshot  # the time of the market snapshot the values were computed from
        self.began: float | None = None
        self.factors: list[str] = []

    def write(self, record: FactorRecord, panel: np.ndarray, first_row: int) -> UpdateResult:
        """A factor's values from window row `first_row` on, and its metadata, in the open group."""
        con = self.held.connection()
        if self.began is None:
            con.begin()
            self.began = time.monotonic()
        try:
            result = self._write(con, record, panel, first_row)
        except BaseException as exc:
            self._roll_back()
            if isinstance(exc, duckdb.Error):
                raise LibraryError(f"updating factor {record.factor_id!r} failed: {exc}") from exc
            raise
        self.factors.append(record.factor_id)
        return result

    def settle(self, final: bool = False) -> None:
        """Commit when due; give the file up when another process waits for it."""
        wanted = self.held.wanted()
        if self.began is not None and (final or wanted or time.monotonic() - self.began >= COMMIT_EVERY):
            try:
                self.held.connection().commit()
            except duckdb.Error as exc:
                self._roll_back()
                raise LibraryError(f"committing the update failed: {exc}") from exc
            for factor_id in self.factors:
                self.lib._cache.forget_factor(factor_id)
            self.began, self.factors = None, []
        if wanted:
            self.held.close()

    def _write(
        self, con: duckdb.DuckDBPyConnection, record: FactorRecord, panel: np.ndarray, first_row: int
    ) -> UpdateResult:
        factor_id = record.factor_id
        dates = self.window.dates[first_row:]
        values = rows.long_values(panel[first_row:], dates, self.window.instruments)
        first, through = date_of(dates[0]), date_of(dates[-1])
        # The write path stores nothing after computed_through: appending needs no delete.
        if record.computed_through is not None and first <= record.computed_through:
            con.execute("DELETE FROM factor_values WHERE factor_id = ? AND date >= ?", [factor_id, first])
        rows.insert_values(con, factor_id, values)
        con.execute(
            "UPDATE factor_metadata SET computed_through = ?, last_updated = ?, status = 'ok', "
            "stale_from = NULL WHERE factor_id = ?",
            [through, self.snapshot, factor_id],
        )
        return UpdateResult(factor_id, first, through, values.num_rows)

    def _roll_back(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.held.connection().rollback()
        self.began, self.factors = None, []


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
    con: duckdb.DuckDBPyConnection, records: Mapping[str, FactorRecord], stale: Mapping[str, dt.date]
) -> None:
    changed = [(day, fid) for fid, day in stale.items() if records[fid].stale_from != day]
    if not changed:
        return
    with write_transaction(con, "marking stale factors"):
        for day, fid in changed:
            con.execute(
                "UPDATE factor_metadata SET stale_from = ?, status = "
                "CASE WHEN status = 'computing' THEN status ELSE 'stale' END WHERE factor_id = ?",
                [day, fid],
            )


def _mark_computing(con: duckdb.DuckDBPyConnection, plan: Sequence[str]) -> None:
    with write_transaction(con, "starting the update"):
        con.execute(
            "UPDATE factor_metadata SET status = 'computing' WHERE list_contains(?, factor_id)",
            [list(plan)],
        )

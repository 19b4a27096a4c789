"""The DuckDB factor library: registered formulas, their stored values, kept current incrementally.

One DuckDB file (default ``factors.duckdb``) holds the factor tables and, unless ``market_store``
names another file, the market tables of `miner.market.store.MarketStore` (``miner data import --store
factors.duckdb`` fills them).

Tables (schema version `SCHEMA_VERSION`, created and upgraded by `MIGRATIONS` on open):

* ``factor_metadata(factor_id PRIMARY KEY, description, formula, category, dependencies JSON,
  created_at, last_updated, canonical UNIQUE, lookback, source, metrics JSON, status, stale_from,
  computed_through)``. ``status`` is ``ok``, ``stale`` (market history at or before
  ``computed_through`` changed, or a dependency's did: values from ``stale_from`` on are due for
  recomputation) or ``computing`` (an update started and has not finished; the stored values are
  still consistent, the next `update` completes it). ``last_updated`` is the time of the market
  snapshot the values were computed from; an import logged later in ``data_changes`` whose
  ``first_date`` is at or before ``computed_through`` makes the factor stale from that date.
* ``factor_values(factor_id, date, instrument, value)``: unique on (factor_id, date, instrument).
  NaN values are not stored: an absent row reads back as NaN.
* ``factor_monitor``: rolling IC, rank IC, ICIR, turnover and coverage written by `monitor`.
* ``library_meta(key, value)`` with ``schema_version``; ``library_migrations`` logs each applied
  migration.

Concurrency: DuckDB lets one process hold the file writable and then no other process open it
at all, so a `FactorLibrary` holds no connection between operations. Each operation opens the file
(read-only unless it writes), and writes are short transactions: `register_factor` computes the
history with the file closed and opens it only to insert; `update` writes factor by factor and gives
the file up between factors whenever another process waits for it. A process that finds the file
locked waits its turn for up to ``lock_timeout`` seconds (`miner.storage.database`), then gives up
with a `LibraryError` naming the process that holds it. Read operations that must see one
consistent state (`check`, `export`) hold the file, read-only, while they run. In one process,
several `FactorLibrary` objects on one file share the `get_factor` cache (`miner.library.cache`),
which stays exact while other processes write the file.

Exactness: every kernel computes a value at row t only from its own trailing window, so a factor
evaluated on a window that starts ``history`` rows before the first new date (its lookback, plus
one row when it reads the derived ``returns`` field, which needs the previous close; plus, in
`update`, the histories of the factors it reads, which are evaluated on the same window) gives
bit-identical values to a full recomputation. Windows are always evaluated on the store's whole
instrument universe, so the cross-section is the one a full computation sees.

Market history that is re-imported without a ``data_changes`` row (SQL written to ``daily_bars``
by hand) is invisible to the staleness rule; `check` finds stored values that no longer match on
the dates it samples.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import keyword
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from miner.errors import DataError, FormulaError, LibraryError
from miner.lang import (
    Evaluator,
    Node,
    canonicalize,
    history_rows,
    lookback,
    names,
    parse,
    reads_intraday,
    to_string,
)
from miner.library import DEFAULT_MONITOR_WINDOW, DEFAULT_PATH, rows
from miner.library import check as checking
from miner.library import export as exporting
from miner.library import monitor as monitoring
from miner.library import update as updating
from miner.library.cache import FrameCache, Versions, acquire_cache, release_cache
from miner.library.market_view import MarketMemo, MarketView, as_list, date_of, day_of
from miner.library.records import RECORD_COLUMNS, CheckReport, FactorRecord, UpdateResult, record_from_row
from miner.library.schema import SCHEMA, write_transaction
from miner.library.staleness import effective_stale, status_of
from miner.market import MarketData
from miner.market.store import SCHEMA as MARKET_SCHEMA
from miner.market.store import MarketStore
from miner.storage import DatabaseFile, connect, file_signature, migrate, schema_version
from operators import REGISTRY

DEFAULT_CACHE_BYTES = 512 * 2**20

MARKET_FIELDS = frozenset({"open", "high", "low", "close", "volume", "vwap", "amount", "returns"})

_FACTOR_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class FactorLibrary:
    """Registered factors, their stored values and their monitor, in one DuckDB file.

    ``FactorLibrary(path)`` creates the file or brings its schema up to date; the market data come
    from the same file unless ``market_store`` names another one. The object holds no connection
    between operations (see the module doc); ``lock_timeout`` is how many seconds an operation waits
    for a file another process holds (default: $MINER_LOCK_TIMEOUT, else 30). Use it as a context
    manager or call `close`.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        read_only: bool = False,
        market_store: str | Path | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        lock_timeout: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.lock_timeout = lock_timeout
        chosen_market = self.path if market_store is None else Path(market_store)
        self.market_path = self.path if chosen_market.resolve() == self.path.resolve() else chosen_market
        self._file = DatabaseFile(self.path, "factor library", LibraryError, lock_timeout)
        self._store: MarketStore | None = None
        self._market_memo = MarketMemo()
        self._closed = False
        self._prepare()
        self._cache = acquire_cache(self.path.resolve(), cache_bytes)
        self._cache_release = weakref.finalize(self, release_cache, self.path.resolve())

    def _prepare(self) -> None:
        """Check the schema (read-only); create or upgrade it only when it is behind."""
        if self.read_only:
            with self._file.operation() as con:
                migrate(con, SCHEMA, self.path, True, LibraryError)
            return
        own_market = self.market_path == self.path
        if self.path.exists():
            with self._file.operation() as con:
                if schema_version(con, SCHEMA) == SCHEMA.latest and (
                    not own_market or schema_version(con, MARKET_SCHEMA) == MARKET_SCHEMA.latest
                ):
                    return
        with self._file.operation(write=True) as con:
            migrate(con, SCHEMA, self.path, False, LibraryError)
            if own_market:
                MarketStore.on_connection(con, self.path)

    def __enter__(self) -> FactorLibrary:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cache_release()

    @property
    def cache(self) -> FrameCache:
        return self._cache

    @property
    def market_store(self) -> MarketStore:
        """The market store on the library's own file (writable libraries only), e.g. for imports."""
        if self.read_only or self.market_path != self.path:
            raise LibraryError(
                f"factor library {self.path} is read-only or reads its market data from {self.market_path}"
            )
        if self._store is None:
            self._store = MarketStore(self.path, lock_timeout=self.lock_timeout)
        return self._store

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The connection of the operation in progress (`_operation`)."""
        return self._file.current

    def _operation(self, write: bool = False) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """Open the file for one operation (read-only unless it writes); nested calls share it."""
        if self._closed:
            raise LibraryError(f"factor library {self.path} is closed")
        return self._file.operation(write)

    # ---- registration ----------------------------------------------------------------------------

    def register_factor(
        self,
        factor_id: str,
        formula: str,
        description: str = "",
        category: str = "",
        source: str | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> FactorRecord:
        """Validate, compute the full history and store it with the metadata in one transaction.

        The history is computed from what one read-only operation loaded, with the file closed; the
        file is opened for writing only to insert it (after checking again that neither the id nor
        the formula was registered meanwhile)."""
        self._require_writable("register a factor")
        with self._operation(), self._market() as market:
            records = self._records()
            tree = self._checked_formula(factor_id, formula, records, market)
            dependencies = tuple(sorted(names(tree) & set(records)))
            self._require_current(factor_id, dependencies, records, market, market.dates[-1])
            snapshot = self._now()
            window = market.window(0, market.dates.size, minute=reads_intraday(tree))
            extra = {dep: self._stored_panel(dep, window.dates, window.instruments) for dep in dependencies}
        panel = self._evaluate(factor_id, tree, Evaluator(window, extra=extra))
        values = rows.long_values(panel, window.dates, window.instruments)
        with self._operation(write=True) as con:
            with write_transaction(con, f"registering factor {factor_id!r}"):
                self._require_new(factor_id, to_string(tree), self._records())
                con.execute(
                    f"INSERT INTO factor_metadata ({RECORD_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, 'ok', NULL, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        factor_id, formula.strip(), to_string(tree), lookback(tree), json.dumps(dependencies),
                        date_of(window.dates[-1]), snapshot, snapshot, description, category, source,
                        None if metrics is None else json.dumps(rows.json_safe(metrics)),
                    ],
                )  # fmt: skip
                rows.insert_values(con, factor_id, values)
            self._cache.forget_factor(factor_id)
            return self._record_of(factor_id)

    def _checked_formula(
        self, factor_id: str, formula: str, records: Mapping[str, FactorRecord], market: MarketView
    ) -> Node:
        if not isinstance(factor_id, str) or not _FACTOR_ID.match(factor_id) or keyword.iskeyword(factor_id):
            raise LibraryError(
                f"factor id {factor_id!r} is not an identifier (a letter or _, then letters, digits or _; "
                "at most 64 characters)"
            )
        reserved = set(REGISTRY) | MARKET_FIELDS | market.columns()
        if factor_id in reserved:
            raise LibraryError(f"factor id {factor_id!r} is a market field or operator name")
        self._require_new(factor_id, None, records)
        try:
            tree = canonicalize(parse(formula))
        except FormulaError as exc:
            raise LibraryError(f"factor {factor_id!r}: invalid formula: {exc}") from None
        canonical_text = to_string(tree)
        self._require_new(factor_id, canonical_text, records)
        read = names(tree)
        if factor_id in read:
            raise LibraryError(
                f"factor {factor_id!r} refers to itself (dependency cycle {factor_id} -> {factor_id})"
            )
        if not read:
            raise LibraryError(f"factor {factor_id!r}: formula {canonical_text!r} reads no field or factor")
        return tree

    @staticmethod
    def _require_new(factor_id: str, canonical_text: str | None, records: Mapping[str, FactorRecord]) -> None:
        """LibraryError when the id (or the canonical formula, when given) is registered already."""
        if factor_id in records:
            raise LibraryError(f"factor {factor_id!r} already exists (formula: {records[factor_id].formula})")
        for other in records.values():
            if other.canonical == canonical_text:
                raise LibraryError(f"formula already registered as {other.factor_id!r}: {canonical_text}")

    # ---- reading ---------------------------------------------------------------------------------

    def get_factor(
        self,
        factor_id: str,
        start: Any = None,
        end: Any = None,
        instruments: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Stored values as a wide DataFrame: trading dates (through the factor's last computed
        date) x instruments (the market universe, or those named), NaN where no value is stored.
        Served from an in-memory LRU cache after the first read, while the factor's values and the
        market are the ones it was read from (`miner.library.cache`: an unchanged file costs two
        `stat` calls, no connection); the frame is a cheap copy-on-write view of the cached one, so
        changing it never changes the cache.
        """
        wanted = None if instruments is None else tuple(dict.fromkeys(as_list(instruments)))
        key = (
            factor_id,
            None if start is None else day_of(start),
            None if end is None else day_of(end),
            wanted,
        )
        signature = self._signature()
        cached = self._cache.get(key) if self._cache.is_current(signature) else None
        if cached is None:
            with self._operation(), self._market() as market:
                if not self._cache.is_current(signature):
                    self._cache.refresh(signature, self._versions(market))
                    cached = self._cache.get(key)
                if cached is None:
                    record = self._record_of(factor_id)
                    cached = self._read_frame(record, key[1], key[2], wanted, market)
                    self._cache.put(key, (record.created_at, record.last_updated, market.version()), cached)
        return cached.copy(deep=False)

    def _signature(self) -> tuple:
        """Changes whenever any process commits to the library's file or its market store."""
        if self.market_path == self.path:
            return file_signature(self.path)
        return file_signature(self.path) + file_signature(self.market_path)

    def _versions(self, market: MarketView) -> Versions:
        """Every factor's version: its creation and last write times, and the market's."""
        market_version = market.version()
        stamps = self._con.execute(
            "SELECT factor_id, created_at, last_updated FROM factor_metadata"
        ).fetchall()
        return {fid: (created, written, market_version) for fid, created, written in stamps}

    def _read_frame(
        self, record: FactorRecord, start: Any, end: Any, wanted: tuple[str, ...] | None, market: MarketView
    ) -> pd.DataFrame:
        first, stop = market.rows_between(start, end)
        if record.computed_through is None:
            stop = first
        else:
            stop = min(stop, int(np.searchsorted(market.dates, day_of(record.computed_through), "right")))
        stop = max(first, stop)
        dates = market.dates[first:stop]
        columns = market.universe if wanted is None else self._known_instruments(wanted, market)
        panel = self._stored_panel(record.factor_id, dates, columns)
        return rows.wide(panel, dates, columns)

    def _known_instruments(self, wanted: tuple[str, ...], market: MarketView) -> np.ndarray:
        chosen = np.array(wanted, dtype=object)
        if chosen.size == 0:
            raise LibraryError("the instrument list is empty")
        unknown = chosen[~np.isin(chosen, market.universe)]
        if unknown.size:
            raise LibraryError(f"unknown instrument(s) {', '.join(unknown[:10])} (not in the market store)")
        return chosen

    def get_factor_long(
        self,
        factor_id: str,
        start: Any = None,
        end: Any = None,
        instruments: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Stored values as a long (date, instrument, value) frame sorted by date and instrument;
        ``.set_index(["date", "instrument"])["value"]`` is alphalens' factor Series."""
        clauses: list[str] = ["factor_id = ?"]
        params: list[object] = [factor_id]
        if start is not None:
            clauses.append("date >= ?")
            params.append(date_of(day_of(start)))
        if end is not None:
            clauses.append("date <= ?")
            params.append(date_of(day_of(end)))
        if instruments is not None:
            clauses.append("list_contains(?, instrument)")
            params.append(sorted(set(as_list(instruments))))
        with self._operation() as con:
            self._record_of(factor_id)
            table = con.sql(
                f"SELECT date, instrument, value FROM factor_values WHERE {' AND '.join(clauses)} "
                "ORDER BY date, instrument",
                params=params,
            ).to_arrow_table()
        frame = table.to_pandas()
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
        return frame

    def _stored_panel(self, factor_id: str, dates: np.ndarray, universe: np.ndarray) -> np.ndarray:
        """A factor's stored values on (dates x universe), read-only, NaN where none is stored."""
        if dates.size == 0:
            return np.full((0, universe.size), np.nan)
        table = self._con.sql(
            "SELECT date, instrument, value FROM factor_values "
            "WHERE factor_id = ? AND date >= ? AND date <= ?",
            params=[factor_id, date_of(dates[0]), date_of(dates[-1])],
        ).to_arrow_table()
        panel = rows.scatter(table, dates, universe)
        panel.setflags(write=False)  # like market fields: one numba signature per kernel
        return panel

    def list_factors(self) -> pd.DataFrame:
        """One row per factor (status as of now: pending market corrections count as stale)."""
        with self._operation(), self._market() as market:
            records = self._records()
            stale = effective_stale(records, market.changes())
        rows = [
            {
                "factor_id": r.factor_id,
                "category": r.category,
                "status": status_of(r, stale),
                "computed_through": r.computed_through,
                "stale_from": stale.get(r.factor_id),
                "lookback": r.lookback,
                "formula": r.formula,
                "description": r.description,
                "dependencies": list(r.dependencies),
                "source": r.source,
                "created_at": r.created_at,
                "last_updated": r.last_updated,
            }
            for r in records.values()
        ]
        columns = ["factor_id", "category", "status", "computed_through", "stale_from", "lookback", "formula",
                   "description", "dependencies", "source", "created_at", "last_updated"]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    def info(self, factor_id: str) -> dict[str, Any]:
        """The factor's metadata, its dependents and a summary of its stored values."""
        with self._operation() as con, self._market() as market:
            record = self._record_of(factor_id)
            records = self._records()
            stale = effective_stale(records, market.changes())
            count, first, last = con.execute(
                "SELECT count(*), min(date), max(date) FROM factor_values WHERE factor_id = ?", [factor_id]
            ).fetchall()[0]
        return {
            "factor_id": record.factor_id,
            "formula": record.formula,
            "canonical": record.canonical,
            "description": record.description,
            "category": record.category,
            "source": record.source,
            "metrics": record.metrics,
            "lookback": record.lookback,
            "dependencies": list(record.dependencies),
            "dependents": sorted(r.factor_id for r in records.values() if factor_id in r.dependencies),
            "status": status_of(record, stale),
            "stale_from": stale.get(factor_id),
            "computed_through": record.computed_through,
            "created_at": record.created_at,
            "last_updated": record.last_updated,
            "values": int(count),
            "first_value_date": first,
            "last_value_date": last,
        }

    # ---- computing without storing ---------------------------------------------------------------

    def calculate_factor(self, formula_or_id: str, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Values of a formula (or of a registered factor's formula) for dates start..end, not stored."""
        with self._operation(), self._market() as market:
            tree, label = self._formula_of(formula_or_id)
            first, stop = market.rows_between(start, end)
            if first >= stop:
                raise LibraryError(f"no trading dates between {start} and {end} in the market store")
            window, extra, origin = self._inputs_for_rows(label, tree, market, first, stop)
        panel = self._evaluate(label, tree, Evaluator(window, extra=extra))
        return rows.wide(panel[first - origin :], window.dates[first - origin :], window.instruments)

    def value_on(self, formula_or_id: str, date: Any) -> pd.Series:
        """One date's values, computed from only the rows of history the formula needs."""
        with self._operation(), self._market() as market:
            tree, label = self._formula_of(formula_or_id)
            row = market.row_of(date)
            window, extra, _ = self._inputs_for_rows(label, tree, market, row, row + 1)
        panel = self._evaluate(label, tree, Evaluator(window, extra=extra))
        return pd.Series(
            panel[-1], index=pd.Index(list(window.instruments), name="instrument", dtype=object),
            name=pd.Timestamp(window.dates[-1]),
        )  # fmt: skip

    def _formula_of(self, formula_or_id: str) -> tuple[Node, str]:
        text = formula_or_id.strip()
        if _FACTOR_ID.match(text):
            rows = self._con.execute(
                "SELECT formula FROM factor_metadata WHERE factor_id = ?", [text]
            ).fetchall()
            if rows:
                return canonicalize(parse(rows[0][0])), text
        try:
            return canonicalize(parse(text)), text
        except FormulaError as exc:
            raise LibraryError(f"invalid formula: {exc}") from None

    def _inputs_for_rows(
        self, label: str, tree: Node, market: MarketView, first: int, stop: int
    ) -> tuple[MarketData, dict[str, np.ndarray], int]:
        """What the formula needs on calendar rows origin..stop-1 (the market window and the stored
        factors it reads), where origin = max(0, first - history)."""
        records = self._records()
        dependencies = tuple(sorted(names(tree) & set(records)))
        self._require_current(label, dependencies, records, market, market.dates[stop - 1])
        origin = max(0, first - history_rows(tree))
        window = market.window(origin, stop, minute=reads_intraday(tree))
        extra = {dep: self._stored_panel(dep, window.dates, window.instruments) for dep in dependencies}
        return window, extra, origin

    def _require_current(
        self,
        label: str,
        dependencies: Iterable[str],
        records: Mapping[str, FactorRecord],
        market: MarketView,
        through: np.datetime64,
    ) -> None:
        """LibraryError when a factor a formula reads is behind `through` or stale before it."""
        stale = effective_stale(records, market.changes())
        for dep in dependencies:
            record = records[dep]
            if record.computed_through is None or day_of(record.computed_through) < through:
                raise LibraryError(
                    f"{label!r} reads factor {dep!r}, computed only through {record.computed_through}: "
                    "run `miner library update` first"
                )
            if dep in stale and day_of(stale[dep]) <= through:
                raise LibraryError(
                    f"{label!r} reads factor {dep!r}, stale from {stale[dep]}: "
                    "run `miner library update` first"
                )

    @staticmethod
    def _evaluate(label: str, tree: Node, evaluator: Evaluator) -> np.ndarray:
        try:
            return evaluator.evaluate(tree)
        except (FormulaError, DataError) as exc:
            raise LibraryError(f"factor {label!r}: {exc}") from None

    # ---- incremental update, monitor, integrity, export (one module each) ---------------------

    def update(self, factor_ids: Iterable[str] | None = None) -> list[UpdateResult]:
        """Bring factors (default all; their dependencies are included) up to the market data
        (`miner.library.update`). The result equals a full recomputation exactly."""
        return updating.update(self, factor_ids)

    def monitor(
        self, factor_id: str, window: int = DEFAULT_MONITOR_WINDOW, horizon: int = 1, delay: int = 1
    ) -> pd.DataFrame:
        """Per date and rolling over `window` dates: IC, rank IC, ICIR, turnover, coverage
        (`miner.library.monitor`)."""
        return monitoring.monitor(self, factor_id, window, horizon, delay)

    def monitor_history(self, factor_id: str, window: int = DEFAULT_MONITOR_WINDOW) -> pd.DataFrame:
        """The monitor rows stored by the last `monitor(factor_id, window)` (empty if never run)."""
        return monitoring.monitor_history(self, factor_id, window)

    def check(self, sample_dates: int = 5, seed: int = 0) -> CheckReport:
        """Verify integrity (`miner.library.check`)."""
        return checking.check(self, sample_dates, seed)

    def export(self, path: str | Path, factor_ids: Iterable[str] | None = None) -> list[Path]:
        """Write values to Parquet (`miner.library.export`); returns the files written."""
        return exporting.export(self, path, factor_ids)

    # ---- helpers ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _market(self) -> Iterator[MarketView]:
        """The market tables within an operation: on the operation's connection, or (another file)
        on a read-only connection opened for it and closed after."""
        if self._closed:
            raise LibraryError(f"factor library {self.path} is closed")
        if self.market_path == self.path:
            con = self._con
            store = MarketStore.on_connection(con, self.path, read_only=not self._file.writable)
            yield MarketView(con, store, self.path, self._market_memo)
            return
        con = connect(self.market_path, True, "market store", DataError, self.lock_timeout)
        try:
            store = MarketStore.on_connection(con, self.market_path, read_only=True)
            yield MarketView(con, store, self.market_path, self._market_memo)
        finally:
            con.close()

    def _records(self) -> dict[str, FactorRecord]:
        rows = self._con.execute(
            f"SELECT {RECORD_COLUMNS} FROM factor_metadata ORDER BY factor_id"
        ).fetchall()
        return {row[0]: record_from_row(row) for row in rows}

    def _record_of(self, factor_id: str) -> FactorRecord:
        rows = self._con.execute(
            f"SELECT {RECORD_COLUMNS} FROM factor_metadata WHERE factor_id = ?", [factor_id]
        ).fetchall()
        if not rows:
            raise self._unknown(factor_id, self._records())
        return record_from_row(rows[0])

    @staticmethod
    def _unknown(factor_id: str, records: Mapping[str, FactorRecord]) -> LibraryError:
        known = ", ".join(list(records)[:10]) + (", ..." if len(records) > 10 else "")
        return LibraryError(f"unknown factor {factor_id!r} (library has: {known or 'no factors'})")

    def _now(self) -> dt.datetime:
        """DuckDB's clock, the one data_changes.imported_at is written with."""
        return self._con.execute("SELECT now()::TIMESTAMP").fetchall()[0][0]

    def _require_writable(self, action: str) -> None:
        if self.read_only:
            raise LibraryError(f"cannot {action}: factor library {self.path} is open read-only")
        if self._closed:
            raise LibraryError(f"factor library {self.path} is closed")

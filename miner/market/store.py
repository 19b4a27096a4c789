"""The DuckDB market store: validated, transactional imports and panel loads.

`import_file` validates a CSV or Parquet file and upserts it in one transaction; `load_market`
reads a panel back. The store records, in ``store_meta``, the session grid of its minute bars
(``minute_session``, set by the first minute import; a store with minute bars and no record is on
the ``us`` grid, the only one before sessions were recorded) and the trading rules of its daily
bars (``trading_rules``, set by ``--rules``); loads use them, and an import that names another
session or other rules is an error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from miner.errors import DataError
from miner.market.assemble import EncodedRows, assemble_daily, minute_cubes
from miner.market.fields import DEFAULT_GROUPS, MINUTE_FIELDS
from miner.market.ingest import (
    DailyBars,
    MinuteBars,
    normalized_columns,
    read_bar_file,
    validate_daily,
    validate_minute,
)
from miner.market.panel import MAX_INTRADAY_BYTES, MarketData, names_of, to_day
from miner.market.rules import History, TradingRules, check_codes, trading_rules
from miner.market.session import DEFAULT_SESSION, SessionGrid, session_grid
from miner.storage import DatabaseFile, Migration, Schema, connect, migrate, schema_version, transaction

log = logging.getLogger(__name__)


# Group labels (sector, industry...) and any further numeric column are extra nullable columns of
# daily_bars (VARCHAR for labels, DOUBLE for numbers, BOOLEAN for flags such as `suspect`), added
# with ALTER TABLE the first time an import brings them. Chosen over a long daily_labels table:
# one row per (date, instrument) holds everything, so the upsert replaces a bar and its labels
# together, and load_market reads the whole panel with one query. A label may change over time
# (one value per date), like any field.
_DAILY_CORE = {
    "date": "DATE NOT NULL",
    "instrument": "VARCHAR NOT NULL",
    "open": "DOUBLE",
    "high": "DOUBLE",
    "low": "DOUBLE",
    "close": "DOUBLE",
    "volume": "DOUBLE",
    "vwap": "DOUBLE",
    "amount": "DOUBLE",
}
_TABLES_V1 = f"""
CREATE TABLE IF NOT EXISTS daily_bars (
    {", ".join(f"{name} {kind}" for name, kind in _DAILY_CORE.items())},
    PRIMARY KEY (date, instrument)
);
CREATE TABLE IF NOT EXISTS minute_bars (
    datetime TIMESTAMP NOT NULL, instrument VARCHAR NOT NULL,
    open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE,
    PRIMARY KEY (datetime, instrument)
);
CREATE TABLE IF NOT EXISTS data_changes (
    kind VARCHAR NOT NULL, first_date DATE NOT NULL, imported_at TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL, rows BIGINT NOT NULL
);
"""
_STORE_KIND = {"DOUBLE": "numeric", "VARCHAR": "label", "BOOLEAN": "flag"}
SCHEMA = Schema("store", "market store", (Migration(1, "daily_bars, minute_bars, data_changes", _TABLES_V1),))
SESSION_KEY, RULES_KEY = "minute_session", "trading_rules"  # store_meta keys
_DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of a DuckDB database file
_DATA_FILE_SUFFIXES = {".parquet", ".pq", ".csv", ".tsv", ".json", ".arrow", ".feather", ".xlsx", ".txt"}


@dataclass(frozen=True)
class ImportReport:
    """What one import did: rows written, keys replaced, date span, what was dropped or ignored."""

    source: str
    kind: str
    rows: int
    replaced: int
    instruments: int
    first_date: dt.date
    last_date: dt.date
    dropped_suspect: int = 0
    ignored_columns: tuple[str, ...] = ()
    dropped_off_grid: int = 0
    recorded: str = ""  # the session (minute) or trading rules (daily) the store records

    def __str__(self) -> str:
        text = (
            f"{self.source}: {self.rows} {self.kind} rows ({self.replaced} replaced), "
            f"{self.instruments} instruments, {self.first_date}..{self.last_date}"
        )
        if self.recorded:
            text += f", {self.recorded}"
        if self.dropped_suspect:
            text += f", {self.dropped_suspect} suspect rows dropped"
        if self.dropped_off_grid:
            text += f", dropped {self.dropped_off_grid} bar(s) off the session"
        if self.ignored_columns:
            text += f", ignored columns: {', '.join(self.ignored_columns)}"
        return text


class MarketStore:
    """The market tables of a DuckDB file.

    * ``daily_bars(date DATE, instrument VARCHAR, open, high, low, close, volume, vwap, amount
      DOUBLE, ...extra columns, PRIMARY KEY(date, instrument))``
    * ``minute_bars(datetime TIMESTAMP, instrument VARCHAR, open, high, low, close, volume DOUBLE,
      PRIMARY KEY(datetime, instrument))`` (naive exchange time)
    * ``store_meta(key, value)`` with ``schema_version``
    * ``data_changes(kind, first_date, imported_at, source, rows)``: one row per import, with the
      earliest date it touched (the factor library marks factors stale from there).

    Re-imported keys are replaced whole (``INSERT OR REPLACE``, all columns, the ones the new file
    lacks become NULL), much faster than DELETE + INSERT (benchmarks/README.md, "Design choices").

    The store holds no connection between calls: each import or load opens the file for itself
    (read-only for loads) and closes it, waiting up to `lock_timeout` seconds while another process
    holds it (`miner.storage.database`); a file is read and validated before the store is opened
    to write it.
    """

    def __init__(
        self, path: str | Path, read_only: bool = False, *, lock_timeout: float | None = None
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        _refuse_data_file(self.path)
        self._file = DatabaseFile(self.path, "market store", DataError, lock_timeout)
        with self._file.operation(write=not read_only):
            self._prepare()

    @classmethod
    def on_connection(
        cls, con: duckdb.DuckDBPyConnection, path: str | Path = "<connection>", read_only: bool = False
    ) -> MarketStore:
        """The market tables on an open connection (e.g. the factor library's), which its owner closes."""
        store = cls.__new__(cls)
        store.path = Path(path)
        store.read_only = read_only
        store._file = DatabaseFile.bound(con, store.path, "market store", DataError, writable=not read_only)
        store._prepare()
        return store

    @classmethod
    @contextlib.contextmanager
    def opened(
        cls, path: str | Path, read_only: bool = True, *, lock_timeout: float | None = None
    ) -> Iterator[MarketStore]:
        """The store on one connection for the block: its calls are one consistent operation."""
        _refuse_data_file(Path(path))
        con = connect(Path(path), read_only, "market store", DataError, lock_timeout)
        try:
            yield cls.on_connection(con, path, read_only)
        finally:
            con.close()

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        return self._file.current

    def __enter__(self) -> MarketStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to close (the store holds no connection between calls); kept for `with`."""

    def _prepare(self) -> None:
        try:
            migrate(self._con, SCHEMA, self.path, self.read_only, DataError)
        except DataError as exc:
            if not self.read_only or schema_version(self._con, SCHEMA):
                raise
            raise DataError(f"{self.path} holds no market store (import data into it first)") from exc

    # ---- imports ---------------------------------------------------------------------------------

    def daily_row_count(self) -> int:
        """How many daily bars the store holds (0 for a new store)."""
        with self._file.operation():
            return int(self._con.execute("SELECT count(*) FROM daily_bars").fetchall()[0][0])

    def import_file(
        self,
        path: str | Path,
        kind: str = "daily",
        column_map: Mapping[str, str] | None = None,
        *,
        drop_suspect: bool = False,
        session: str | SessionGrid | None = None,
        rules: str | TradingRules | None = None,
    ) -> ImportReport:
        """Validate a CSV or Parquet file and upsert it, all or nothing.

        Errors name the file, the column and the row (0-based data row, header excluded).
        """
        frame = read_bar_file(Path(path), kind, column_map)
        return self.import_frame(
            frame, kind, source=str(path), drop_suspect=drop_suspect, session=session, rules=rules
        )

    def import_frame(
        self,
        frame: pd.DataFrame,
        kind: str = "daily",
        *,
        source: str = "frame",
        drop_suspect: bool = False,
        session: str | SessionGrid | None = None,
        rules: str | TradingRules | None = None,
    ) -> ImportReport:
        """Validate a long DataFrame and upsert it in one transaction (all or nothing).

        Rows flagged by a boolean ``suspect`` column are imported as they are unless `drop_suspect`.
        Column names are lower-cased (DuckDB identifiers ignore case). Minute bars go on
        `session` (default: the store's, else ``us``), which the store records; bars off it are
        dropped with a logged count. Daily bars may name trading `rules` (``us``, ``cn``,
        ``cn_locked``), which the store records and loads then apply. Naming a session or
        rules other than the store's is an error.
        """
        if self.read_only:
            raise DataError(f"market store {self.path} is open read-only")
        if kind not in ("daily", "minute"):
            raise DataError(f"{source}: unknown import kind {kind!r} (expected 'daily' or 'minute')")
        if kind == "daily" and session is not None:
            raise DataError(f"{source}: a session applies to minute bars, not to a daily import")
        if kind == "minute" and rules is not None:
            raise DataError(f"{source}: trading rules apply to daily bars, not to a minute import")
        frame = normalized_columns(frame, source)
        dropped = 0
        if drop_suspect and "suspect" in frame.columns:
            if not pd.api.types.is_bool_dtype(frame["suspect"]):
                raise DataError(f"{source}: column 'suspect' is not boolean (true/false)")
            suspect = frame["suspect"].fillna(False).to_numpy(dtype=bool)
            dropped = int(suspect.sum())
            frame = frame.loc[~suspect]
        if kind == "daily":
            chosen = self._rules_for(rules, source)
            bars = validate_daily(frame, source, frozenset(DEFAULT_GROUPS))
            return self._write_daily(bars, source, dropped, chosen)
        grid = self._session_for(session, source)
        return self._write_minute(validate_minute(frame, source, grid), source, dropped, grid)

    # ---- what the store records --------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        rows = self._con.execute("SELECT value FROM store_meta WHERE key = ?", [key]).fetchall()
        return rows[0][0] if rows else None

    def _record(self, key: str, value: str) -> None:
        self._con.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?)", [key, value])

    def minute_session(self) -> SessionGrid | None:
        """The session grid of the stored minute bars; None when the store has none."""
        with self._file.operation():
            spec = self._meta(SESSION_KEY)
            if spec is not None:
                return session_grid(spec)
            has_minutes = self._con.execute(
                "SELECT count(*) FROM (SELECT 1 FROM minute_bars LIMIT 1)"
            ).fetchall()
        return DEFAULT_SESSION if has_minutes[0][0] else None

    def rules(self) -> TradingRules | None:
        """The trading rules the daily bars were imported with; None without."""
        with self._file.operation():
            name = self._meta(RULES_KEY)
        return None if name is None else trading_rules(name)

    def _session_for(self, asked: str | SessionGrid | None, source: str) -> SessionGrid:
        stored = self.minute_session()
        if asked is None:
            return stored or DEFAULT_SESSION
        grid = session_grid(asked)
        if stored is not None and grid != stored:
            self._refuse(source, f"session {grid.spec!r}", f"holds minute bars on the {stored}")
        return grid

    def _rules_for(self, asked: str | TradingRules | None, source: str) -> TradingRules | None:
        stored = self.rules()
        if asked is None:
            return stored
        chosen = trading_rules(asked)
        if stored is not None and chosen != stored:
            self._refuse(source, f"trading rules {chosen.name!r}", f"records {stored.name!r}")
        return chosen

    def _refuse(self, source: str, asked: str, recorded: str) -> None:
        """An import that names another session or other rules than the store recorded."""
        raise DataError(
            f"{source}: {asked}, but the market store {self.path} {recorded}; import into another store"
        )

    # ---- writes ----------------------------------------------------------------------------------

    def _write_daily(
        self, bars: DailyBars, source: str, dropped: int, rules: TradingRules | None
    ) -> ImportReport:
        incoming_kinds = {name: "numeric" for name in bars.numeric}
        incoming_kinds.update({name: "label" for name in bars.labels})
        incoming_kinds.update({name: "flag" for name in bars.flags})
        with (
            self._file.operation(write=True),
            transaction(self._con, f"{source}: import failed, store unchanged", DataError),
        ):
            columns = self._extend_daily_columns(incoming_kinds, source)
            table = _daily_arrow(bars, columns)
            replaced = self._upsert("daily_bars", "date", table)
            first, last = bars.dates.min(), bars.dates.max()
            self._log_change("daily", first, source, len(bars.dates))
            if rules is not None:
                stored = self._con.execute("SELECT DISTINCT instrument FROM daily_bars").fetchall()
                check_codes(rules, np.array([name for (name,) in stored], dtype=object), source)
                self._record(RULES_KEY, rules.name)
        return ImportReport(
            source,
            "daily",
            len(bars.dates),
            int(replaced),
            len(pd.unique(bars.instruments)),
            first.item(),
            last.item(),
            dropped,
            (),
            recorded=f"trading rules {rules.name}" if rules is not None else "",
        )

    def _upsert(self, table: str, time_column: str, incoming: pa.Table) -> int:
        """Insert or replace `incoming` rows by (time, instrument); returns how many were replaced."""
        self._con.register("incoming_bars", incoming)
        try:
            replaced = self._con.execute(
                f"SELECT count(*) FROM incoming_bars i JOIN {table} b "
                f"ON b.{time_column} = i.{time_column} AND b.instrument = i.instrument"
            ).fetchall()[0][0]
            self._con.execute(f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM incoming_bars")
        finally:
            self._con.unregister("incoming_bars")
        return int(replaced)

    def _write_minute(
        self, validated: MinuteBars, source: str, dropped: int, session: SessionGrid
    ) -> ImportReport:
        bars = validated.on_grid(session, source)
        if bars.timestamps.size == 0:
            raise DataError(f"{source}: no minute bars on the {session}; nothing imported")
        columns: dict[str, Any] = {
            "datetime": pa.array(bars.timestamps.astype("datetime64[ns]")),
            "instrument": pa.array(bars.instruments, type=pa.string()),
        }
        columns.update({name: pa.array(bars.values[name], from_pandas=True) for name in MINUTE_FIELDS})
        days = bars.timestamps.astype("datetime64[ns]").astype("datetime64[D]")
        with (
            self._file.operation(write=True),
            transaction(self._con, f"{source}: import failed, store unchanged", DataError),
        ):
            replaced = self._upsert("minute_bars", "datetime", pa.table(columns))
            self._log_change("minute", days.min(), source, len(days))
            self._record(SESSION_KEY, session.spec)
        return ImportReport(
            source,
            "minute",
            len(days),
            int(replaced),
            len(pd.unique(bars.instruments)),
            days.min().item(),
            days.max().item(),
            dropped,
            bars.ignored,
            validated.timestamps.size - bars.timestamps.size,
            f"on the {session}",
        )

    def _extend_daily_columns(self, incoming: Mapping[str, str], source: str) -> dict[str, str]:
        """Add the incoming extra columns to daily_bars; DataError when a kind clashes."""
        existing = self._daily_columns()
        for name, kind in incoming.items():
            if name not in existing:
                sql_type = {"numeric": "DOUBLE", "label": "VARCHAR", "flag": "BOOLEAN"}[kind]
                self._con.execute(f'ALTER TABLE daily_bars ADD COLUMN "{name}" {sql_type}')
                existing[name] = kind
            elif existing[name] != kind:
                raise DataError(f"{source}: column {name!r} is {kind} here but {existing[name]} in the store")
        return existing

    def _daily_columns(self) -> dict[str, str]:
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'daily_bars' AND table_schema = current_schema() "
            "ORDER BY ordinal_position"
        ).fetchall()
        return {
            name: "key" if name in ("date", "instrument") else _STORE_KIND.get(sql_type, "other")
            for name, sql_type in rows
        }

    def _log_change(self, kind: str, first: np.datetime64, source: str, rows: int) -> None:
        self._con.execute(
            "INSERT INTO data_changes VALUES (?, ?, now()::TIMESTAMP, ?, ?)",
            [kind, pd.Timestamp(first).date(), source, rows],
        )

    # ---- loading ---------------------------------------------------------------------------------

    def load(
        self,
        start: Any = None,
        end: Any = None,
        instruments: Iterable[str] | None = None,
        minute: bool = False,
        *,
        session: str | SessionGrid | None = None,
        max_intraday_bytes: int = MAX_INTRADAY_BYTES,
    ) -> MarketData:
        """The stored panel for dates start..end (inclusive) and the named instruments (None = all).

        A stored column that is entirely NULL in the selection counts as absent (so ``vwap`` is
        derived when no import supplied it). Boolean columns (``suspect``) are not loaded. Minute
        bars come on the store's session grid (`session`, when given, must be the same); the
        store's trading rules add their fields, computed as a load of the whole history would.
        """
        first = None if start is None else to_day(start)
        last = None if end is None else to_day(end)
        wanted = None if instruments is None else names_of(instruments)
        with self._file.operation():
            rows = self._fetch_daily(first, last, wanted)
            if wanted is not None:
                missing = sorted(set(wanted) - set(rows.instruments))
                if missing:
                    names = ", ".join(missing[:10])
                    raise DataError(f"market store {self.path}: no daily bars for instrument(s) {names}")
            rules = self.rules()
            market = assemble_daily(rows, rules, self._history(rows) if rules is not None else None)
            if not minute:
                return market
            grid = self.minute_session() or DEFAULT_SESSION
            if session is not None and session_grid(session) != grid:
                raise DataError(
                    f"market store {self.path} holds minute bars on the {grid}, not on the "
                    f"{session_grid(session)}"
                )
            cubes = self._fetch_minute_cubes(market, grid, max_intraday_bytes)
        return MarketData(market.dates, market.instruments, market.fields, cubes, market.groups)

    def _history(self, rows: EncodedRows) -> History:
        """What the store holds before the rows' first date, for their instruments."""
        names = pa.table({"instrument": pa.array(rows.instruments, type=pa.string())})
        self._con.register("load_instruments", names)
        try:
            table = self._con.sql(
                "SELECT i.instrument, arg_max(b.close, b.date) AS last_close, count(b.close) AS bars, "
                "min(b.date) AS first_date FROM load_instruments i LEFT JOIN daily_bars b "
                "ON b.instrument = i.instrument AND b.date < ? AND b.close IS NOT NULL "
                "GROUP BY i.instrument ORDER BY i.instrument",
                params=[pd.Timestamp(rows.dates[0]).date()],
            ).to_arrow_table()
            [(start,)] = self._con.execute(
                "SELECT min(date) FROM daily_bars WHERE close IS NOT NULL"
            ).fetchall()
        finally:
            self._con.unregister("load_instruments")
        first_date = table.column("first_date").cast(pa.int32()).to_numpy(zero_copy_only=False)
        return History(
            _arrow_floats(table.column("last_close")),
            table.column("bars").to_numpy().astype(np.int64),
            np.where(np.isnan(first_date), np.iinfo(np.int64).min, first_date).astype("datetime64[D]"),
            np.datetime64(start, "D"),
        )

    def _fetch_daily(
        self, first: np.datetime64 | None, last: np.datetime64 | None, wanted: list[str] | None
    ) -> EncodedRows:
        """One query kept in Arrow: strings are dictionary-encoded there, never Python objects."""
        kinds = self._daily_columns()
        loaded = [name for name, kind in kinds.items() if kind in ("numeric", "label")]
        flags = ["st"] if kinds.get("st") == "flag" else []  # read by the trading rules
        where, params = _filters("date", first, last, wanted)
        selected = ", ".join(f'"{name}"' for name in ["date", "instrument", *loaded, *flags])
        table = self._con.sql(f"SELECT {selected} FROM daily_bars {where}", params=params).to_arrow_table()
        if table.num_rows == 0:
            raise DataError(
                f"market store {self.path}: no daily bars for dates "
                f"{first or 'start'}..{last or 'end'}"
                + (f" and instruments {', '.join(wanted[:10])}" if wanted else "")
            )
        dates, date_index = _dense_days(table.column("date").cast(pa.int32()).to_numpy())
        instrument_index, instruments = _sorted_codes(table.column("instrument"))
        return EncodedRows(
            dates,
            date_index,
            np.asarray(instruments, dtype=object),
            instrument_index,
            {name: _arrow_floats(table.column(name)) for name in loaded if kinds[name] == "numeric"},
            {name: _sorted_codes(table.column(name)) for name in loaded if kinds[name] == "label"},
            {name: table.column(name).fill_null(False).to_numpy() for name in flags},
        )

    def _fetch_minute_cubes(
        self, market: MarketData, session: SessionGrid, max_bytes: int
    ) -> dict[str, np.ndarray]:
        names = pa.table(
            {
                "instrument": pa.array(market.instruments, type=pa.string()),
                "position": pa.array(np.arange(market.N, dtype=np.int64)),
            }
        )
        window = [
            pd.Timestamp(market.dates[0]).to_pydatetime(),
            pd.Timestamp(market.dates[-1] + np.timedelta64(1, "D")).to_pydatetime(),
        ]
        self._con.register("load_instruments", names)
        try:
            table = self._con.sql(
                "SELECT epoch_ns(m.datetime) AS ns, i.position, "
                "m.open, m.high, m.low, m.close, m.volume FROM minute_bars m "
                "JOIN load_instruments i ON m.instrument = i.instrument "
                "WHERE m.datetime >= ? AND m.datetime < ?",
                params=window,
            ).to_arrow_table()
        finally:
            self._con.unregister("load_instruments")
        if table.num_rows == 0:
            raise DataError(
                f"market store {self.path}: no minute bars for dates "
                f"{market.dates[0]}..{market.dates[-1]} of the selected instruments"
            )
        return minute_cubes(
            table.column("ns").to_numpy().astype(np.int64),
            table.column("position").to_numpy().astype(np.int64),
            {name: _arrow_floats(table.column(name)) for name in MINUTE_FIELDS},
            market.dates,
            market.N,
            session,
            f"market store {self.path}",
            max_bytes,
        )


def _filters(
    time_column: str,
    first: np.datetime64 | None,
    last: np.datetime64 | None,
    wanted: list[str] | None,
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if first is not None:
        clauses.append(f"{time_column} >= ?")
        params.append(pd.Timestamp(first).date())
    if last is not None:
        clauses.append(f"{time_column} <= ?")
        params.append(pd.Timestamp(last).date())
    if wanted is not None:
        clauses.append("list_contains(?, instrument)")
        params.append(wanted)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _dense_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct days (datetime64[D]) and each row's index among them, counted, not sorted."""
    offset = days.astype(np.int64) - days.min()
    present = np.zeros(int(offset.max()) + 1, dtype=bool)
    present[offset] = True
    position = np.cumsum(present) - 1
    return (np.flatnonzero(present) + days.min()).astype("datetime64[D]"), position[offset]


def _arrow_floats(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)


def _sorted_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes into the sorted distinct values of a string column; -1 where NULL."""
    encoded = column.combine_chunks().dictionary_encode()
    values = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    order = np.argsort(values, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    indices = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
    codes = np.full(indices.size, -1, dtype=np.int64)
    valid = indices >= 0
    codes[valid] = rank[indices[valid]]
    return codes, tuple(values[order])


def _daily_arrow(bars: DailyBars, columns: Mapping[str, str]) -> pa.Table:
    """Every store column, NULL where this import has none (so a replaced row is replaced whole)."""
    size = len(bars.dates)
    arrays: dict[str, pa.Array] = {
        "date": pa.array(bars.dates),
        "instrument": pa.array(bars.instruments, type=pa.string()),
    }
    for name, kind in columns.items():
        if name in arrays:
            continue
        if name in bars.numeric:
            arrays[name] = pa.array(bars.numeric[name], from_pandas=True)
        elif name in bars.labels:
            arrays[name] = pa.array(bars.labels[name], type=pa.string())
        elif name in bars.flags:
            arrays[name] = pa.array(bars.flags[name], type=pa.bool_())
        else:
            arrow_type = {"numeric": pa.float64(), "label": pa.string(), "flag": pa.bool_()}[kind]
            arrays[name] = pa.nulls(size, arrow_type)
    return pa.table(arrays)


# --------------------------------------------------------------------------------------------------
# Module-level entry points (the CLI wires `miner data import` to import_file)
# --------------------------------------------------------------------------------------------------


def import_file(
    path: str | Path,
    kind: str = "daily",
    store: str | Path | MarketStore = "market.duckdb",
    column_map: Mapping[str, str] | None = None,
    *,
    drop_suspect: bool = False,
    session: str | SessionGrid | None = None,
    rules: str | TradingRules | None = None,
) -> ImportReport:
    """Import a CSV or Parquet file of daily or minute bars into the store (created if absent);
    `session` (minute) and `rules` (daily) as `MarketStore.import_frame`."""
    options: dict[str, Any] = {"drop_suspect": drop_suspect, "session": session, "rules": rules}
    if isinstance(store, MarketStore):
        return store.import_file(path, kind, column_map, **options)
    with MarketStore(store) as opened:
        return opened.import_file(path, kind, column_map, **options)


def load_market(
    store: str | Path | MarketStore,
    start: Any = None,
    end: Any = None,
    instruments: Iterable[str] | None = None,
    minute: bool = False,
    *,
    session: str | SessionGrid | None = None,
    max_intraday_bytes: int = MAX_INTRADAY_BYTES,
) -> MarketData:
    """Load a MarketData from the market store (a path is opened read-only for the call); minute
    bars on the session the store recorded at import."""
    if isinstance(store, MarketStore):
        return store.load(
            start, end, instruments, minute, session=session, max_intraday_bytes=max_intraday_bytes
        )
    with MarketStore.opened(store, read_only=True) as opened:
        return opened.load(
            start, end, instruments, minute, session=session, max_intraday_bytes=max_intraday_bytes
        )


def _refuse_data_file(path: Path) -> None:
    """A market store must be a DuckDB database file: DuckDB would open a Parquet or CSV path as
    an empty in-memory database and the import would vanish."""
    if path.is_file():
        with path.open("rb") as handle:
            header = handle.read(12)
        if header[8:12] != _DUCKDB_MAGIC:
            raise DataError(f"{path} is not a DuckDB database file; name a market store, e.g. market.duckdb")
    elif path.suffix.lower() in _DATA_FILE_SUFFIXES:
        raise DataError(
            f"{path} names a {path.suffix} data file, not a DuckDB market store; use e.g. market.duckdb"
        )

"""Market data: the `MarketData` panel, built from long tables, and the DuckDB market store.

A panel field is a float64 array of shape (T, N): rows are trading dates ascending, columns are
instruments sorted, NaN means missing. Intraday fields are (T, N, M) arrays on a regular grid of M
minute slots per day. Long tables (date, instrument, value) exist only here, at the edges.

Derived fields (added when the input does not carry a column of that name):

* ``returns = close / delay(close, 1) - 1``: NaN on the first row and wherever either close is
  missing or the previous close is 0.
* ``vwap``: ``amount / volume`` when ``amount`` exists (NaN where volume is 0 or missing), else
  ``(high + low + close) / 3`` when high and low exist, else a copy of ``close``.

Derived intraday fields, computed once where the minute cubes are assembled (`from_frame`,
`load_market`, the synthetic market) and stored next to open/high/low/close/volume in
``MarketData.intraday`` (read-only, part of the fingerprint like every cube):

* ``minute_returns`` (when the bars have ``close``): ``close / previous close - 1``, the previous
  close being that of the latest earlier bar of the same day (a missing minute had no trade, so
  the next bar's return spans the gap). NaN on the first bar of each day, on missing bars and
  where the previous close is not positive; nothing crosses a day.
* ``buy_volume`` and ``sell_volume`` (when the bars have all of open, high, low, close, volume):
  each bar's volume split by where its close sits in its own high-low range. With
  ``share = (close - low) / (high - low)`` clipped to [0, 1] when ``high > low``, else 1 if
  ``close > open``, 0 if ``close < open`` and 0.5 if they are equal (a bar without range):
  ``buy_volume = volume * share`` and ``sell_volume = volume - buy_volume``. Both are NaN where
  any of the five inputs is NaN. A bar closing at its high counts as all buying, at its low as
  all selling, mid-range as half and half.

No derived value is ever inf.

The market store is one DuckDB file (see `MarketStore` for its tables). `import_file` validates a
CSV or Parquet file and upserts it in one transaction; `load_market` reads a panel back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import importlib.util
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from miner.errors import DataError
from operators.intraday import buy_sell_volume, minute_returns

log = logging.getLogger(__name__)


def _imported_on_first_use(name: str) -> ModuleType:
    """The module `name`, executed when one of its attributes is first read (the standard
    library's `importlib.util.LazyLoader` recipe).

    A scoring worker uses `MarketData` but none of the loaders, so it never pays the import of
    pandas, pyarrow and DuckDB (~0.2 s of each worker's start-up).
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa
else:
    duckdb = _imported_on_first_use("duckdb")
    pd = _imported_on_first_use("pandas")
    pa = _imported_on_first_use("pyarrow")

PRICE_FIELDS = ("open", "high", "low", "close", "vwap")
QUANTITY_FIELDS = ("volume", "amount")
MINUTE_FIELDS = ("open", "high", "low", "close", "volume")
DEFAULT_GROUPS = ("sector", "industry", "subindustry")
MAX_INTRADAY_BYTES = 4 * 2**30
SCHEMA_VERSION = "1"

_NS_PER_DAY = 86_400 * 10**9
_NS_PER_MINUTE = 60 * 10**9
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


# --------------------------------------------------------------------------------------------------
# The minute grid
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionGrid:
    """The minute slots of one trading day: `start`..`end` inclusive, every `step_minutes`.

    Times are wall-clock exchange times "HH:MM". The default is the US regular session 09:30..16:00
    with its 391 one-minute labels (the opening and closing auction bars included).
    """

    start: str = "09:30"
    end: str = "16:00"
    step_minutes: int = 1

    def __post_init__(self) -> None:
        span = self.end_ns - self.start_ns
        step = self.step_minutes * _NS_PER_MINUTE
        if self.step_minutes < 1 or span < 0 or span % step:
            raise DataError(
                f"session grid {self.start}..{self.end} every {self.step_minutes} min is not a "
                "whole number of slots"
            )

    @property
    def start_ns(self) -> int:
        return _clock_ns(self.start)

    @property
    def end_ns(self) -> int:
        return _clock_ns(self.end)

    @property
    def slots(self) -> int:
        """M, the number of minute slots per day."""
        return (self.end_ns - self.start_ns) // (self.step_minutes * _NS_PER_MINUTE) + 1


def _clock_ns(clock: str) -> int:
    try:
        hours, minutes = (int(part) for part in clock.split(":"))
    except ValueError:
        raise DataError(f"session time {clock!r} is not HH:MM") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise DataError(f"session time {clock!r} is not HH:MM")
    return (hours * 60 + minutes) * _NS_PER_MINUTE


US_REGULAR_SESSION = SessionGrid()


# --------------------------------------------------------------------------------------------------
# MarketData
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MarketData:
    """A market panel: dates x instruments fields, optional intraday cubes and group labels.

    * ``dates``: datetime64[D], strictly ascending; ``instruments``: object array of str, sorted,
      unique.
    * ``fields``: name -> (T, N) float64, C-contiguous, read-only. Group fields (``sector``...) are
      float codes indexing ``groups[name]``; NaN = no label.
    * ``intraday``: name -> (T, N, M) float64, read-only ({} without minute data): the minute bars
      and the derived ``minute_returns``, ``buy_volume``, ``sell_volume`` (module doc). One cube
      takes 8*T*N*M bytes: 284 names x 44 days x 391 slots is 39 MB a field; the 505 x 1259 S&P
      panel at 391 slots would be 2 GB a field, so load minute data for a date range.
    """

    dates: np.ndarray
    instruments: np.ndarray
    fields: Mapping[str, np.ndarray]
    intraday: Mapping[str, np.ndarray] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dates = np.asarray(self.dates, dtype="datetime64[D]")
        instruments = np.asarray(self.instruments, dtype=object)
        if dates.ndim != 1 or (dates.size > 1 and not (np.diff(dates) > np.timedelta64(0)).all()):
            raise DataError("MarketData dates must be one-dimensional and strictly ascending")
        if instruments.ndim != 1 or not all(isinstance(name, str) for name in instruments):
            raise DataError("MarketData instruments must be a one-dimensional array of str")
        if instruments.size > 1 and not (instruments[1:] > instruments[:-1]).all():
            raise DataError("MarketData instruments must be sorted and unique")
        shape = (dates.size, instruments.size)
        fields = {name: _frozen_panel(name, array, shape) for name, array in self.fields.items()}
        intraday = {
            name: _frozen_panel(name, array, shape, cube=True) for name, array in self.intraday.items()
        }
        if len({cube.shape[2] for cube in intraday.values()}) > 1:
            raise DataError("MarketData intraday fields must share one number of minute slots")
        groups = {name: tuple(str(label) for label in labels) for name, labels in self.groups.items()}
        missing = sorted(set(groups) - set(fields))
        if missing:
            raise DataError(f"MarketData groups {missing} have no code field in fields")
        object.__setattr__(self, "dates", _read_only(dates))
        object.__setattr__(self, "instruments", _read_only(instruments))
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "intraday", intraday)
        object.__setattr__(self, "groups", groups)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled arrays come back writable: freeze them again."""
        self.__dict__.update(state)
        for name in ("dates", "instruments"):
            self.__dict__[name] = _read_only(self.__dict__[name])
        for name in ("fields", "intraday"):
            self.__dict__[name] = {key: _read_only(a) for key, a in self.__dict__[name].items()}

    @property
    def T(self) -> int:
        return int(self.dates.size)

    @property
    def N(self) -> int:
        return int(self.instruments.size)

    @property
    def M(self) -> int:
        """Minute slots per day; 0 without intraday data."""
        return next(iter(self.intraday.values())).shape[2] if self.intraday else 0

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 hex over dates, instruments, group labels and every field and intraday array."""
        digest = hashlib.sha256()
        digest.update(b"dates\0" + self.dates.astype("<i8").tobytes())
        digest.update(b"instruments\0" + "\x1f".join(self.instruments).encode())
        for kind, arrays in (("field", self.fields), ("intraday", self.intraday)):
            for name in sorted(arrays):
                array = arrays[name]
                digest.update(f"{kind}\0{name}\0{array.shape}\0".encode())
                _hash_values(digest, array)
        for name in sorted(self.groups):
            digest.update(f"group\0{name}\0".encode() + "\x1f".join(self.groups[name]).encode())
        return digest.hexdigest()

    def field(self, name: str) -> np.ndarray:
        """The (T, N) array of a field; DataError naming the field and the available ones."""
        try:
            return self.fields[name]
        except KeyError:
            raise DataError(f"unknown field {name!r}; available: {', '.join(sorted(self.fields))}") from None

    def is_group(self, name: str) -> bool:
        return name in self.groups

    def slice_rows(self, start: int, stop: int) -> MarketData:
        """Rows start..stop-1 (Python slice rules) as views of this panel, no copies."""
        rows = range(self.T)[start:stop]
        if not rows or rows.step != 1:
            raise DataError(f"row slice {start}:{stop} of a {self.T}-row panel is empty")
        window = slice(rows.start, rows.stop)
        return MarketData(
            dates=self.dates[window],
            instruments=self.instruments,
            fields={name: array[window] for name, array in self.fields.items()},
            intraday={name: cube[window] for name, cube in self.intraday.items()},
            groups=self.groups,
        )

    def select(
        self,
        start: Any = None,
        end: Any = None,
        instruments: Iterable[str] | None = None,
    ) -> MarketData:
        """The dates start..end (inclusive, None = open) and the named instruments (None = all)."""
        first = 0 if start is None else int(np.searchsorted(self.dates, to_day(start), "left"))
        stop = self.T if end is None else int(np.searchsorted(self.dates, to_day(end), "right"))
        if first >= stop:
            raise DataError(
                f"no dates between {start} and {end} (data spans {self.dates[0]}..{self.dates[-1]})"
            )
        rows = self.slice_rows(first, stop)
        if instruments is None:
            return rows
        columns = self._columns_of(instruments)
        return MarketData(
            dates=rows.dates,
            instruments=rows.instruments[columns],
            fields={name: array[:, columns] for name, array in rows.fields.items()},
            intraday={name: cube[:, columns] for name, cube in rows.intraday.items()},
            groups=rows.groups,
        )

    def _columns_of(self, instruments: Iterable[str]) -> np.ndarray:
        wanted = np.asarray(_names(instruments), dtype=object)
        if wanted.size == 0:
            raise DataError("select: the instrument list is empty")
        columns = np.searchsorted(self.instruments, wanted)
        found = (columns < self.N) & (self.instruments[np.minimum(columns, self.N - 1)] == wanted)
        if not found.all():
            unknown = ", ".join(wanted[~found][:10])
            raise DataError(f"select: unknown instrument(s) {unknown}")
        return columns

    @classmethod
    def from_frame(
        cls,
        daily: pd.DataFrame,
        minute: pd.DataFrame | None = None,
        *,
        groups: Iterable[str] = DEFAULT_GROUPS,
        source: str = "frame",
        session: SessionGrid = US_REGULAR_SESSION,
        max_intraday_bytes: int = MAX_INTRADAY_BYTES,
    ) -> MarketData:
        """Build from long DataFrames: daily (`date`, `instrument`, fields...) and minute bars.

        Validation raises a one-line DataError naming `source`, the column and the first offending
        row: its number (the frame's integer index, else its position), date and instrument.
        Numeric columns become float64 fields; string columns and the columns named in `groups`
        become group fields (integer codes, labels sorted); boolean columns such as ``suspect``
        are ignored. ``high < low`` is an error except on rows a boolean ``suspect`` column flags
        (the file already owns them).

        Minute bars (`datetime`, `instrument`, open/high/low/close/volume; other columns ignored)
        are placed on `session`'s grid; the daily dates and instruments are the master: bars on
        other days or of other instruments, and bars off the grid, are dropped with a logged
        warning. Missing minutes are NaN.
        """
        bars = _validate_daily(daily, source, frozenset(groups))
        market = _assemble_daily(_encode_rows(bars))
        if minute is None:
            return market
        minutes = _validate_minute(minute, source)
        codes, names = pd.factorize(minutes.instruments)
        instrument_index = _index_of(market.instruments, np.asarray(names, dtype=object))[codes]
        cubes = _minute_cubes(
            minutes.timestamps,
            instrument_index,
            minutes.values,
            market.dates,
            market.N,
            session,
            source,
            max_intraday_bytes,
        )
        return cls(market.dates, market.instruments, market.fields, cubes, market.groups)


def _frozen_panel(name: str, array: np.ndarray, shape: tuple[int, int], cube: bool = False) -> np.ndarray:
    values = np.ascontiguousarray(array, dtype=np.float64)
    if values.shape[:2] != shape or values.ndim != (3 if cube else 2):
        expected = f"({shape[0]}, {shape[1]}{', M' if cube else ''})"
        raise DataError(f"MarketData field {name!r} has shape {values.shape}, expected {expected}")
    return _read_only(values)


def _read_only(array: np.ndarray) -> np.ndarray:
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


def _hash_values(digest: Any, array: np.ndarray) -> None:
    """Feed an array in row chunks; every NaN is hashed as the same bit pattern."""
    rows = array.reshape(array.shape[0], -1) if array.shape[0] else array.reshape(0, 1)
    chunk = max(1, 2**20 // max(1, rows.shape[1]))
    for first in range(0, rows.shape[0], chunk):
        block = rows[first : first + chunk]
        block = np.where(np.isnan(block), np.nan, block).astype("<f8", copy=False)
        digest.update(block.tobytes())


def to_day(value: Any) -> np.datetime64:
    """A date argument (str, date, datetime64, Timestamp...) as datetime64[D]; a DataError naming
    the value when it is not a date."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DataError(f"{value!r} is not a date") from None
    if pd.isna(stamp):
        raise DataError(f"{value!r} is not a date")
    return np.datetime64(stamp.date(), "D")


def _names(instruments: Iterable[str] | str) -> list[str]:
    """Sorted unique instrument names; a single string is one name."""
    return sorted({instruments} if isinstance(instruments, str) else {str(name) for name in instruments})


def _index_of(universe: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Position of each name in the sorted `universe`, -1 where absent."""
    if universe.size == 0:
        return np.full(names.size, -1, dtype=np.int64)
    positions = np.searchsorted(universe, names)
    clipped = np.minimum(positions, universe.size - 1)
    return np.where(universe[clipped] == names, clipped, -1).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Derived fields
# --------------------------------------------------------------------------------------------------


def derive_returns(close: np.ndarray) -> np.ndarray:
    """``close / delay(close, 1) - 1``; NaN on row 0, where a close is missing or the last is 0."""
    returns = np.full(close.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns[1:] = close[1:] / close[:-1] - 1.0
    returns[~np.isfinite(returns)] = np.nan
    return returns


def derive_vwap(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """amount / volume, else (high + low + close) / 3, else close; never inf."""
    if "amount" in fields and "volume" in fields:
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = fields["amount"] / fields["volume"]
        vwap[~np.isfinite(vwap)] = np.nan
        return vwap
    if "high" in fields and "low" in fields:
        return (fields["high"] + fields["low"] + fields["close"]) / 3.0
    return np.array(fields["close"], dtype=np.float64)


def derivable_intraday(present: Iterable[str]) -> tuple[str, ...]:
    """The derived intraday fields that minute cubes named `present` allow (and do not carry)."""
    have = set(present)
    derived = []
    if "close" in have:
        derived.append("minute_returns")
    if have.issuperset(MINUTE_FIELDS):
        derived += ["buy_volume", "sell_volume"]
    return tuple(name for name in derived if name not in have)


def with_derived_intraday(cubes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The minute cubes plus the derived intraday fields they allow (module doc); inputs unchanged."""
    out = dict(cubes)
    wanted = derivable_intraday(out)
    if "minute_returns" in wanted:
        out["minute_returns"] = minute_returns(out["close"])
    if "buy_volume" in wanted or "sell_volume" in wanted:
        split = buy_sell_volume(*(out[name] for name in MINUTE_FIELDS))
        out.update((name, cube) for name, cube in zip(("buy_volume", "sell_volume"), split) if name in wanted)
    return out


def _with_derived(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if "returns" not in fields:
        fields["returns"] = derive_returns(fields["close"])
    if "vwap" not in fields:
        fields["vwap"] = derive_vwap(fields)
    return fields


# --------------------------------------------------------------------------------------------------
# Validation of long tables
# --------------------------------------------------------------------------------------------------


@dataclass
class _DailyBars:
    """Validated daily rows, one entry per row: the common form of frames and files."""

    dates: np.ndarray  # datetime64[D]
    instruments: np.ndarray  # object str
    numeric: dict[str, np.ndarray]  # float64
    labels: dict[str, np.ndarray]  # object: str or None
    flags: dict[str, np.ndarray]  # bool


@dataclass
class _MinuteBars:
    timestamps: np.ndarray  # int64 ns, naive exchange time
    instruments: np.ndarray  # object str
    values: dict[str, np.ndarray]  # float64, MINUTE_FIELDS present
    ignored: tuple[str, ...]


def _validate_daily(frame: pd.DataFrame, source: str, groups: frozenset[str]) -> _DailyBars:
    _require(frame, source, ("date", "instrument", "close"))
    rows = _row_numbers(frame)
    instruments = _instrument_column(frame, source, rows)
    dates = _time_column(frame, "date", source, instruments, rows).astype("datetime64[D]")
    where = _RowLocator(source, rows, dates, instruments)
    _reject_duplicates(dates.astype(np.int64), where, "date")
    numeric: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    flags: dict[str, np.ndarray] = {}
    for name in frame.columns:
        if name in ("date", "instrument"):
            continue
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            flags[name] = column.fillna(False).to_numpy(dtype=bool)
        elif name in groups or not (_is_numeric(column) or name in PRICE_FIELDS + QUANTITY_FIELDS):
            labels[name] = _label_values(column)
        else:
            numeric[name] = _numeric_values(column, name, where)
    _check_values(numeric, where, flags.get("suspect"))
    for name, values in labels.items():
        if pd.isna(values).all():
            raise DataError(f"{source}: column {name!r} has no values (all missing)")
    return _DailyBars(dates, instruments, numeric, labels, flags)


def _validate_minute(frame: pd.DataFrame, source: str) -> _MinuteBars:
    _require(frame, source, ("datetime", "instrument", "close"))
    rows = _row_numbers(frame)
    instruments = _instrument_column(frame, source, rows)
    stamps = _time_column(frame, "datetime", source, instruments, rows).astype("datetime64[ns]")
    where = _RowLocator(source, rows, stamps, instruments)
    timestamps = stamps.astype(np.int64)
    _reject_duplicates(timestamps, where, "datetime")
    values = {
        name: _numeric_values(frame[name], name, where) for name in MINUTE_FIELDS if name in frame.columns
    }
    _check_values(values, where, None)
    ignored = tuple(
        str(name) for name in frame.columns if name not in ("datetime", "instrument", *MINUTE_FIELDS)
    )
    return _MinuteBars(timestamps, instruments, values, ignored)


def _row_numbers(frame: pd.DataFrame) -> np.ndarray:
    """The row number to report for each position: the frame's integer index (a file's 0-based
    data row, kept when rows are dropped), else the position."""
    if pd.api.types.is_integer_dtype(frame.index):
        return frame.index.to_numpy()
    return np.arange(len(frame))


@dataclass
class _RowLocator:
    """Names a row for error messages: its number, date and instrument."""

    source: str
    rows: np.ndarray
    times: np.ndarray
    instruments: np.ndarray

    def describe(self, position: int) -> str:
        when = pd.Timestamp(self.times[position])
        stamp = when.date().isoformat() if when == when.normalize() else when.isoformat(sep=" ")
        return f"row {self.rows[position]} (date {stamp}, instrument {self.instruments[position]})"

    def error(self, column: str, problem: str, position: int) -> DataError:
        return DataError(f"{self.source}: column {column!r} {problem} at {self.describe(position)}")


def _require(frame: pd.DataFrame, source: str, columns: tuple[str, ...]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{source}: missing required column(s) {', '.join(missing)} (found: {found})")
    if frame.columns.duplicated().any():
        twice = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"{source}: duplicated column name(s) {twice}")
    if len(frame) == 0:
        raise DataError(f"{source}: no rows (the universe is empty)")


def _instrument_column(frame: pd.DataFrame, source: str, rows: np.ndarray) -> np.ndarray:
    column = frame["instrument"]
    missing = column.isna().to_numpy()
    if missing.any():
        row = rows[int(np.argmax(missing))]
        raise DataError(f"{source}: column 'instrument' is missing at row {row}")
    if pd.api.types.is_float_dtype(column):
        raise DataError(
            f"{source}: column 'instrument' holds numbers, not codes; read it as text "
            "(leading zeros are part of a code)"
        )
    return column.astype(str).to_numpy(dtype=object)


def _time_column(
    frame: pd.DataFrame, name: str, source: str, instruments: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """The column as naive datetime64[ns]; DataError on the first missing or unparseable value."""
    raw = frame[name]
    try:
        if pd.api.types.is_integer_dtype(raw):  # 20200102-style dates, not epoch nanoseconds
            parsed = pd.to_datetime(raw.astype(str), format="%Y%m%d", errors="coerce")
        else:
            parsed = pd.to_datetime(raw, errors="coerce")
            if (parsed.isna() & raw.notna()).any():  # the format guessed from row 0 may not fit all
                parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    except (TypeError, ValueError, OverflowError):
        parsed = pd.Series([_parse_one(value) for value in raw], index=raw.index)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    bad = parsed.isna().to_numpy()
    if bad.any():
        position = int(np.argmax(bad))
        value = raw.iloc[position]
        problem = "is missing" if pd.isna(value) else f"has an unparseable value {value!r}"
        raise DataError(
            f"{source}: column {name!r} {problem} at row {rows[position]} "
            f"(instrument {instruments[position]})"
        )
    return parsed.to_numpy(dtype="datetime64[ns]")


def _parse_one(value: Any) -> pd.Timestamp:
    try:
        return pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        return pd.NaT


def _reject_duplicates(keys: np.ndarray, where: _RowLocator, time_name: str) -> None:
    codes = pd.factorize(where.instruments)[0]
    duplicated = pd.DataFrame({"t": keys, "i": codes}).duplicated().to_numpy()
    if duplicated.any():
        raise DataError(
            f"{where.source}: {int(duplicated.sum())} duplicated ({time_name}, instrument) key(s), "
            f"first at {where.describe(int(np.argmax(duplicated)))}"
        )


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _numeric_values(column: pd.Series, name: str, where: _RowLocator) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        raise DataError(f"{where.source}: column {name!r} is boolean, not numeric")
    if _is_numeric(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(column, errors="coerce")
    bad = (converted.isna() & column.notna()).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise where.error(name, f"has a non-numeric value {column.iloc[row]!r}", row)
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _label_values(column: pd.Series) -> np.ndarray:
    values = column.to_numpy(dtype=object)
    present = column.notna().to_numpy()
    labels = np.full(values.size, None, dtype=object)
    if pd.api.types.is_float_dtype(column) and present.any() and (values[present] % 1 == 0).all():
        values = np.where(present, column.fillna(0).to_numpy(dtype=np.int64), 0).astype(object)
    labels[present] = [str(value) for value in values[present]]
    return labels


def _check_values(numeric: Mapping[str, np.ndarray], where: _RowLocator, suspect: np.ndarray | None) -> None:
    """inf, negative prices/quantities, high < low (not on suspect rows), all-NaN columns."""
    for name, values in numeric.items():
        _first_row(np.isinf(values), where, name, "has an infinite value")
        if name in PRICE_FIELDS + QUANTITY_FIELDS:
            with np.errstate(invalid="ignore"):
                _first_row(values < 0, where, name, "has a negative value")
        if np.isnan(values).all():
            raise DataError(f"{where.source}: column {name!r} has no values (all NaN)")
    if "high" in numeric and "low" in numeric:
        with np.errstate(invalid="ignore"):
            inverted = numeric["high"] < numeric["low"]
        if suspect is not None:
            inverted &= ~suspect
        _first_row(inverted, where, "high", "is below 'low'")


def _first_row(bad: np.ndarray, where: _RowLocator, column: str, problem: str) -> None:
    if bad.any():
        raise where.error(column, problem, int(np.argmax(bad)))


# --------------------------------------------------------------------------------------------------
# Long rows -> panels
# --------------------------------------------------------------------------------------------------


@dataclass
class _EncodedRows:
    """Daily rows whose keys and labels are codes into sorted uniques (-1 = missing label)."""

    dates: np.ndarray  # unique, datetime64[D], ascending
    date_index: np.ndarray
    instruments: np.ndarray  # unique, object str, sorted
    instrument_index: np.ndarray
    numeric: dict[str, np.ndarray]
    labels: dict[str, tuple[np.ndarray, tuple[str, ...]]]


def _encode_rows(bars: _DailyBars) -> _EncodedRows:
    dates, date_index = np.unique(bars.dates, return_inverse=True)
    instrument_index, instruments = pd.factorize(bars.instruments, sort=True)
    labels = {}
    for name, values in bars.labels.items():
        codes, uniques = pd.factorize(values, sort=True)
        labels[name] = (codes, tuple(uniques))
    return _EncodedRows(
        dates,
        date_index,
        np.asarray(instruments, dtype=object),
        instrument_index,
        bars.numeric,
        labels,
    )


def _assemble_daily(rows: _EncodedRows) -> MarketData:
    """Pivot daily rows into a MarketData (derived fields added, all-missing columns dropped)."""
    shape = (rows.dates.size, rows.instruments.size)
    fields = {
        name: _pivot(rows.date_index, rows.instrument_index, values, shape)
        for name, values in rows.numeric.items()
        if not np.isnan(values).all()
    }
    if "close" not in fields:
        raise DataError("no close prices in the selected rows")
    groups: dict[str, tuple[str, ...]] = {}
    for name, (codes, labels) in rows.labels.items():
        if labels:
            fields[name] = _pivot(
                rows.date_index, rows.instrument_index, np.where(codes >= 0, codes, np.nan), shape
            )
            groups[name] = labels
    return MarketData(rows.dates, rows.instruments, _with_derived(fields), {}, groups)


def _pivot(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    panel = np.full(shape, np.nan)
    panel[rows, columns] = values
    return panel


def _minute_cubes(
    timestamps: np.ndarray,
    instrument_index: np.ndarray,
    values: Mapping[str, np.ndarray],
    dates: np.ndarray,
    n_instruments: int,
    session: SessionGrid,
    source: str,
    max_bytes: int,
) -> dict[str, np.ndarray]:
    """Scatter minute bars into (T, N, M) cubes by (day index, instrument index, slot index), plus
    the derived intraday fields (the memory limit counts them too)."""
    n_days, slots = dates.size, session.slots
    size = 8 * n_days * n_instruments * slots * (len(values) + len(derivable_intraday(values)))
    if size > max_bytes:
        raise DataError(
            f"{source}: minute cubes for {n_days} days x {n_instruments} instruments x "
            f"{slots} slots need {size / 2**30:.1f} GiB (limit {max_bytes / 2**30:.1f} GiB); "
            "select fewer dates"
        )
    day_number = np.floor_divide(timestamps, _NS_PER_DAY)
    offset = timestamps - day_number * _NS_PER_DAY - session.start_ns
    step = session.step_minutes * _NS_PER_MINUTE
    slot = np.floor_divide(offset, step)
    on_grid = (offset % step == 0) & (slot >= 0) & (slot < slots)
    day_index = _index_of(dates.astype(np.int64), day_number)
    known_day = day_index >= 0
    known_instrument = instrument_index >= 0
    _warn_dropped(source, ~known_day, "on days without daily bars")
    _warn_dropped(source, known_day & ~known_instrument, "of instruments without daily bars")
    _warn_dropped(
        source,
        known_day & known_instrument & ~on_grid,
        f"off the session grid {session.start}..{session.end}",
    )
    keep = known_day & known_instrument & on_grid
    flat = (day_index[keep] * n_instruments + instrument_index[keep]) * slots + slot[keep]
    cubes = {}
    for name, column in values.items():
        cube = np.full(n_days * n_instruments * slots, np.nan)
        cube[flat] = column[keep]
        cubes[name] = cube.reshape(n_days, n_instruments, slots)
    return with_derived_intraday(cubes)


def _warn_dropped(source: str, dropped: np.ndarray, reason: str) -> None:
    count = int(dropped.sum())
    if count:
        log.warning("%s: dropped %d minute bar(s) %s", source, count, reason)


# --------------------------------------------------------------------------------------------------
# The DuckDB market store
# --------------------------------------------------------------------------------------------------

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
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
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

    def __str__(self) -> str:
        text = (
            f"{self.source}: {self.rows} {self.kind} rows ({self.replaced} replaced), "
            f"{self.instruments} instruments, {self.first_date}..{self.last_date}"
        )
        if self.dropped_suspect:
            text += f", {self.dropped_suspect} suspect rows dropped"
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
    lacks become NULL); measured on the S&P file it is ~8x faster than DELETE + INSERT.
    """

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._con = _connect(self.path, read_only)
        self._owns_connection = True
        self._prepare()

    @classmethod
    def on_connection(cls, con: duckdb.DuckDBPyConnection, path: str | Path = "<connection>") -> MarketStore:
        """The market tables on an open connection (the factor library's), which close() keeps."""
        store = cls.__new__(cls)
        store.path = Path(path)
        store.read_only = False
        store._con = con
        store._owns_connection = False
        store._prepare()
        return store

    def __enter__(self) -> MarketStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_connection:
            self._con.close()

    def _prepare(self) -> None:
        if not self.read_only:
            self._con.execute(_SCHEMA)
            self._con.execute(
                "INSERT INTO store_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                [SCHEMA_VERSION],
            )
        try:
            rows = self._con.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchall()
        except duckdb.CatalogException:
            raise DataError(f"{self.path} holds no market store (import data into it first)") from None
        found = rows[0][0] if rows else None
        if found != SCHEMA_VERSION:
            raise DataError(f"market store {self.path} has schema version {found}, expected {SCHEMA_VERSION}")

    # ---- imports ---------------------------------------------------------------------------------

    def daily_row_count(self) -> int:
        """How many daily bars the store holds (0 for a new store)."""
        return int(self._con.execute("SELECT count(*) FROM daily_bars").fetchall()[0][0])

    def import_file(
        self,
        path: str | Path,
        kind: str = "daily",
        column_map: Mapping[str, str] | None = None,
        *,
        drop_suspect: bool = False,
    ) -> ImportReport:
        """Validate a CSV or Parquet file and upsert it, all or nothing.

        Errors name the file, the column and the row (0-based data row, header excluded).
        """
        frame = _read_table(Path(path), kind, column_map)
        return self.import_frame(frame, kind, source=str(path), drop_suspect=drop_suspect)

    def import_frame(
        self,
        frame: pd.DataFrame,
        kind: str = "daily",
        *,
        source: str = "frame",
        drop_suspect: bool = False,
    ) -> ImportReport:
        """Validate a long DataFrame and upsert it in one transaction (all or nothing).

        Rows flagged by a boolean ``suspect`` column are imported as they are unless `drop_suspect`.
        Column names are lower-cased (DuckDB identifiers ignore case).
        """
        if self.read_only:
            raise DataError(f"market store {self.path} is open read-only")
        if kind not in ("daily", "minute"):
            raise DataError(f"{source}: unknown import kind {kind!r} (expected 'daily' or 'minute')")
        frame = _normalized_columns(frame, source)
        dropped = 0
        if drop_suspect and "suspect" in frame.columns:
            if not pd.api.types.is_bool_dtype(frame["suspect"]):
                raise DataError(f"{source}: column 'suspect' is not boolean (true/false)")
            suspect = frame["suspect"].fillna(False).to_numpy(dtype=bool)
            dropped = int(suspect.sum())
            frame = frame.loc[~suspect]
        if kind == "daily":
            return self._write_daily(
                _validate_daily(frame, source, frozenset(DEFAULT_GROUPS)), source, dropped
            )
        return self._write_minute(_validate_minute(frame, source), source, dropped)

    def _write_daily(self, bars: _DailyBars, source: str, dropped: int) -> ImportReport:
        incoming_kinds = {name: "numeric" for name in bars.numeric}
        incoming_kinds.update({name: "label" for name in bars.labels})
        incoming_kinds.update({name: "flag" for name in bars.flags})
        with self._transaction(source):
            columns = self._extend_daily_columns(incoming_kinds, source)
            table = _daily_arrow(bars, columns)
            replaced = self._upsert("daily_bars", "date", table)
            first, last = bars.dates.min(), bars.dates.max()
            self._log_change("daily", first, source, len(bars.dates))
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

    def _write_minute(self, bars: _MinuteBars, source: str, dropped: int) -> ImportReport:
        columns: dict[str, Any] = {
            "datetime": pa.array(bars.timestamps.astype("datetime64[ns]")),
            "instrument": pa.array(bars.instruments, type=pa.string()),
        }
        for name in MINUTE_FIELDS:
            values = bars.values.get(name)
            columns[name] = (
                pa.array(values, from_pandas=True)
                if values is not None
                else pa.nulls(len(bars.timestamps), pa.float64())
            )
        days = bars.timestamps.astype("datetime64[ns]").astype("datetime64[D]")
        with self._transaction(source):
            replaced = self._upsert("minute_bars", "datetime", pa.table(columns))
            self._log_change("minute", days.min(), source, len(days))
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

    @contextlib.contextmanager
    def _transaction(self, source: str) -> Iterator[None]:
        self._con.begin()
        try:
            yield
            self._con.commit()
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):
                self._con.rollback()
            if isinstance(exc, duckdb.Error):
                raise DataError(f"{source}: import failed, store unchanged: {exc}") from exc
            raise

    # ---- loading ---------------------------------------------------------------------------------

    def load(
        self,
        start: Any = None,
        end: Any = None,
        instruments: Iterable[str] | None = None,
        minute: bool = False,
        *,
        session: SessionGrid = US_REGULAR_SESSION,
        max_intraday_bytes: int = MAX_INTRADAY_BYTES,
    ) -> MarketData:
        """The stored panel for dates start..end (inclusive) and the named instruments (None = all).

        A stored column that is entirely NULL in the selection counts as absent (so ``vwap`` is
        derived when no import supplied it). Boolean columns (``suspect``) are not loaded.
        """
        first = None if start is None else to_day(start)
        last = None if end is None else to_day(end)
        wanted = None if instruments is None else _names(instruments)
        rows = self._fetch_daily(first, last, wanted)
        if wanted is not None:
            missing = sorted(set(wanted) - set(rows.instruments))
            if missing:
                names = ", ".join(missing[:10])
                raise DataError(f"market store {self.path}: no daily bars for instrument(s) {names}")
        market = _assemble_daily(rows)
        if not minute:
            return market
        cubes = self._fetch_minute_cubes(market, session, max_intraday_bytes)
        return MarketData(market.dates, market.instruments, market.fields, cubes, market.groups)

    def _fetch_daily(
        self, first: np.datetime64 | None, last: np.datetime64 | None, wanted: list[str] | None
    ) -> _EncodedRows:
        """One query kept in Arrow: strings are dictionary-encoded there, never Python objects."""
        kinds = self._daily_columns()
        loaded = [name for name, kind in kinds.items() if kind in ("numeric", "label")]
        where, params = _filters("date", first, last, wanted)
        selected = ", ".join(f'"{name}"' for name in ["date", "instrument", *loaded])
        table = self._con.sql(f"SELECT {selected} FROM daily_bars {where}", params=params).to_arrow_table()
        if table.num_rows == 0:
            raise DataError(
                f"market store {self.path}: no daily bars for dates "
                f"{first or 'start'}..{last or 'end'}"
                + (f" and instruments {', '.join(wanted[:10])}" if wanted else "")
            )
        dates, date_index = _dense_days(table.column("date").cast(pa.int32()).to_numpy())
        instrument_index, instruments = _sorted_codes(table.column("instrument"))
        return _EncodedRows(
            dates,
            date_index,
            np.asarray(instruments, dtype=object),
            instrument_index,
            {name: _arrow_floats(table.column(name)) for name in loaded if kinds[name] == "numeric"},
            {name: _sorted_codes(table.column(name)) for name in loaded if kinds[name] == "label"},
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
        return _minute_cubes(
            table.column("ns").to_numpy().astype(np.int64),
            table.column("position").to_numpy().astype(np.int64),
            {name: _arrow_floats(table.column(name)) for name in MINUTE_FIELDS},
            market.dates,
            market.N,
            session,
            f"market store {self.path}",
            max_bytes,
        )


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DataError(f"market store {path} is locked by another process") from None
        if read_only and not path.exists():
            raise DataError(f"market store {path} does not exist") from None
        raise DataError(f"cannot open market store {path}: {exc}") from None
    except duckdb.ConnectionException:
        raise DataError(
            f"market store {path} is already open in this process with another read_only setting; "
            "pass that MarketStore instead of the path"
        ) from None


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


def _normalized_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
    names = [str(name).strip().lower() for name in frame.columns]
    for name in names:
        if not _IDENTIFIER.match(name):
            raise DataError(
                f"{source}: column name {name!r} is not a plain identifier (letters, digits, _); "
                "rename it with a column map"
            )
    if len(set(names)) != len(names):
        raise DataError(f"{source}: column names clash once lower-cased: {list(frame.columns)}")
    return frame.set_axis(names, axis=1)


def _daily_arrow(bars: _DailyBars, columns: Mapping[str, str]) -> pa.Table:
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


def _read_table(path: Path, kind: str, column_map: Mapping[str, str] | None) -> pd.DataFrame:
    """Read a CSV or Parquet file, rename its columns by `column_map` (file name -> our name)."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    mapping = dict(column_map or {})
    suffixes = [suffix.lower() for suffix in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            frame = pd.read_parquet(path)
        elif ".csv" in suffixes:
            instrument_column = next(
                (src for src, dst in mapping.items() if dst == "instrument"), "instrument"
            )
            frame = pd.read_csv(path, dtype={instrument_column: str})
        else:
            raise DataError(f"{path}: unsupported file type (expected .csv or .parquet)")
    except DataError:
        raise
    except Exception as exc:  # the readers raise many types: report any as a bad file
        raise DataError(f"{path}: cannot read {kind} bars: {exc}") from None
    unknown = sorted(set(mapping) - set(frame.columns))
    if unknown:
        raise DataError(f"{path}: column map names column(s) {unknown} the file does not have")
    return frame.rename(columns=mapping)


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
) -> ImportReport:
    """Import a CSV or Parquet file of daily or minute bars into the store (created if absent)."""
    if isinstance(store, MarketStore):
        return store.import_file(path, kind, column_map, drop_suspect=drop_suspect)
    with MarketStore(store) as opened:
        return opened.import_file(path, kind, column_map, drop_suspect=drop_suspect)


def load_market(
    store: str | Path | MarketStore,
    start: Any = None,
    end: Any = None,
    instruments: Iterable[str] | None = None,
    minute: bool = False,
    *,
    session: SessionGrid = US_REGULAR_SESSION,
    max_intraday_bytes: int = MAX_INTRADAY_BYTES,
) -> MarketData:
    """Load a MarketData from the market store (a path is opened read-only for the call)."""
    if isinstance(store, MarketStore):
        return store.load(
            start, end, instruments, minute, session=session, max_intraday_bytes=max_intraday_bytes
        )
    with MarketStore(store, read_only=True) as opened:
        return opened.load(
            start, end, instruments, minute, session=session, max_intraday_bytes=max_intraday_bytes
        )

"""Validation of long bar tables (frames and files): the one place bad input is refused.

Every error is one line naming the source, the column and the first offending row (its number,
date and instrument).

Times: naive values are exchange wall-clock time. Minute bars with tz-aware times are converted to
the session's time zone (each value is an instant, so offsets may differ, e.g. across a daylight
saving change); a daily date with an offset keeps its own calendar date, and one file's dates must
then share one offset. Naive mixed with aware values is an error, and so is a time outside the
range numpy's datetime64[ns] can hold (1677-09-22 .. 2262-04-11).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miner.errors import DataError
from miner.market.fields import MINUTE_FIELDS, PRICE_FIELDS, QUANTITY_FIELDS
from miner.market.session import NS_PER_DAY, SessionGrid

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_OFFSET_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:\.\d*)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$"  # "09:30+08:00"
_EARLIEST, _LATEST = pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-11")


@dataclass
class DailyBars:
    """Validated daily rows, one entry per row: the common form of frames and files."""

    dates: np.ndarray  # datetime64[D]
    instruments: np.ndarray  # object str
    numeric: dict[str, np.ndarray]  # float64
    labels: dict[str, np.ndarray]  # object: str or None
    flags: dict[str, np.ndarray]  # bool


@dataclass
class MinuteBars:
    timestamps: np.ndarray  # int64 ns, naive exchange time
    instruments: np.ndarray  # object str
    values: dict[str, np.ndarray]  # float64, every one of MINUTE_FIELDS
    ignored: tuple[str, ...]

    def on_grid(self, session: SessionGrid, source: str) -> MinuteBars:
        """The bars on the session's slots; the others are dropped with a logged count."""
        day = np.floor_divide(self.timestamps, NS_PER_DAY)
        keep = session.slot_of(self.timestamps - day * NS_PER_DAY) >= 0
        if keep.all():
            return self
        log.warning("%s: dropped %d minute bar(s) off the %s", source, int((~keep).sum()), session)
        return MinuteBars(
            self.timestamps[keep],
            self.instruments[keep],
            {name: values[keep] for name, values in self.values.items()},
            self.ignored,
        )


def validate_daily(frame: pd.DataFrame, source: str, groups: frozenset[str]) -> DailyBars:
    _require(frame, source, ("date", "instrument", "close"))
    rows = _row_numbers(frame)
    instruments = _instrument_column(frame, source, rows)
    dates = _time_column(frame, "date", source, instruments, rows, None).astype("datetime64[D]")
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
    return DailyBars(dates, instruments, numeric, labels, flags)


def validate_minute(frame: pd.DataFrame, source: str, session: SessionGrid) -> MinuteBars:
    """Minute bars: `datetime`, `instrument` and every one of open/high/low/close/volume; times
    in the session's time zone (module doc). Off-grid bars are kept (`MinuteBars.on_grid`)."""
    _require(frame, source, ("datetime", "instrument", *MINUTE_FIELDS))
    rows = _row_numbers(frame)
    instruments = _instrument_column(frame, source, rows)
    stamps = _time_column(frame, "datetime", source, instruments, rows, session)
    where = _RowLocator(source, rows, stamps, instruments)
    timestamps = stamps.astype(np.int64)
    _reject_duplicates(timestamps, where, "datetime")
    values = {name: _numeric_values(frame[name], name, where) for name in MINUTE_FIELDS}
    _check_values(values, where, None)
    ignored = tuple(
        str(name) for name in frame.columns if name not in ("datetime", "instrument", *MINUTE_FIELDS)
    )
    return MinuteBars(timestamps, instruments, values, ignored)


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
    codes = column.astype(str)
    empty = (codes.str.strip() == "").to_numpy()
    if empty.any():
        raise DataError(f"{source}: column 'instrument' is empty at row {rows[int(np.argmax(empty))]}")
    return codes.to_numpy(dtype=object)


def _time_column(
    frame: pd.DataFrame,
    name: str,
    source: str,
    instruments: np.ndarray,
    rows: np.ndarray,
    session: SessionGrid | None,
) -> np.ndarray:
    """The column as naive datetime64[ns] exchange time (module doc); DataError on the first
    missing, unparseable or out-of-range value, and on mixed time zones."""
    raw = frame[name]

    def at(position: int) -> str:
        return f"row {rows[position]} (instrument {instruments[position]})"

    parsed = _parsed_times(raw, name, source, session is not None, at)
    bad = parsed.isna().to_numpy()
    if bad.any():
        position = int(np.argmax(bad))
        value = raw.iloc[position]
        problem = "is missing" if pd.isna(value) else f"has an unparseable value {value!r}"
        raise DataError(f"{source}: column {name!r} {problem} at {at(position)}")
    parsed = _in_exchange_time(parsed, session, f"{source}: column {name!r}")
    outside = ((parsed < _EARLIEST) | (parsed > _LATEST)).to_numpy()
    if outside.any():
        position = int(np.argmax(outside))
        raise DataError(
            f"{source}: column {name!r} has {raw.iloc[position]!r}, outside the supported range "
            f"{_EARLIEST.date()}..{_LATEST.date()}, at {at(position)}"
        )
    return parsed.to_numpy(dtype="datetime64[ns]")


def _parsed_times(raw: pd.Series, name: str, source: str, instants: bool, at: Any) -> pd.Series:
    """Times, NaT where unparseable: the fast vectorised parse, and the slow path that sorts out
    time zones only when the fast one meets mixed zones."""
    if pd.api.types.is_integer_dtype(raw):  # 20200102-style dates, not epoch nanoseconds
        return pd.to_datetime(raw.astype(str), format="%Y%m%d", errors="coerce")
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw):
        return raw
    try:
        parsed = pd.to_datetime(raw, errors="coerce")
        if (parsed.isna() & raw.notna()).any():  # the format guessed from row 0 may not fit all
            parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
        if not (parsed.isna() & raw.notna()).any():
            return parsed
    except (TypeError, ValueError, OverflowError):  # ValueError: "Mixed timezones detected"
        pass
    return _zoned_times(raw, name, source, instants, at)


def _zoned_times(raw: pd.Series, name: str, source: str, instants: bool, at: Any) -> pd.Series:
    """Values that may mix time zones: naive mixed with aware is an error; aware values with
    different offsets are instants (minute bars, `instants`) or an error (daily dates)."""
    aware = _awareness(raw)
    known = ~np.isnan(aware)
    if (aware[known] == 1).any():
        first = int(np.argmax(known))
        mixed = np.flatnonzero(known & (aware != aware[first]))
        if mixed.size and pd.notna(_parse_one(raw.iloc[mixed[0]])):
            other = int(mixed[0])
            raise DataError(
                f"{source}: column {name!r} mixes naive and tz-aware times ({raw.iloc[first]!r} at "
                f"{at(first)}, {raw.iloc[other]!r} at {at(other)}); give every time in one form"
            )
        if not mixed.size and instants:
            return pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        if not mixed.size:
            offsets = [_parse_one(value).utcoffset() for value in raw]
            differs = [
                p for p, offset in enumerate(offsets) if offset is not None and offset != offsets[first]
            ]
            if differs:
                raise DataError(
                    f"{source}: column {name!r} mixes UTC offsets ({raw.iloc[first]!r} at {at(first)}, "
                    f"{raw.iloc[differs[0]]!r} at {at(differs[0])}); a date belongs to one time zone"
                )
    return pd.Series([_parse_one(value) for value in raw], index=raw.index, dtype=object)


def _awareness(raw: pd.Series) -> np.ndarray:
    """1.0 where a value carries a time zone, 0.0 where it is naive, NaN where it is missing."""
    out = np.full(len(raw), np.nan)
    present = raw.notna().to_numpy()
    if pd.api.types.is_string_dtype(raw.dtype) and raw.dtype != object:
        out[present] = raw[present].str.contains(_OFFSET_SUFFIX, regex=True).to_numpy(dtype=float)
        return out
    suffix = re.compile(_OFFSET_SUFFIX)
    for position in np.flatnonzero(present):
        value = raw.iloc[position]
        if isinstance(value, str):
            out[position] = float(bool(suffix.search(value.strip())))
        else:
            out[position] = float(getattr(value, "tzinfo", None) is not None)
    return out


def _in_exchange_time(parsed: pd.Series, session: SessionGrid | None, where: str) -> pd.Series:
    """Naive times: aware ones converted to the session's zone (daily dates keep their own)."""
    if parsed.dtype == object:  # parsed one by one: every value naive, or one zone
        parsed = pd.to_datetime(parsed, utc=session is not None and _any_aware(parsed))
    if getattr(parsed.dt, "tz", None) is None:
        return parsed
    if session is None:
        return parsed.dt.tz_localize(None)
    if session.timezone is None:
        raise DataError(
            f"{where} has tz-aware times but the {session} has no time zone: add one, e.g. "
            "--session '09:30-11:30,13:00-15:00@Asia/Shanghai'"
        )
    return parsed.dt.tz_convert(session.timezone).dt.tz_localize(None)


def _any_aware(values: pd.Series) -> bool:
    return any(getattr(value, "tzinfo", None) is not None for value in values)


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


def normalized_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
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


def read_bar_file(
    path: Path, kind: str = "daily", column_map: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Read a CSV or Parquet file of `kind` bars, renaming its columns by `column_map` (file name ->
    our name); instrument codes are read as text."""
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

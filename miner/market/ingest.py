"""Validation of long bar tables (frames and files): the one place bad input is refused.

Every error is one line naming the source, the column and the first offending row (its number,
date and instrument).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miner.errors import DataError
from miner.market.fields import MINUTE_FIELDS, PRICE_FIELDS, QUANTITY_FIELDS

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


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
    values: dict[str, np.ndarray]  # float64, MINUTE_FIELDS present
    ignored: tuple[str, ...]


def validate_daily(frame: pd.DataFrame, source: str, groups: frozenset[str]) -> DailyBars:
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
    return DailyBars(dates, instruments, numeric, labels, flags)


def validate_minute(frame: pd.DataFrame, source: str) -> MinuteBars:
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

"""Factor values between their two shapes: wide (dates x instruments) panels and long rows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa


def long_values(panel: np.ndarray, dates: np.ndarray, universe: np.ndarray) -> pa.Table:
    """The finite cells of a (dates x universe) panel as an Arrow (date, instrument, value) table."""
    rows, columns = np.nonzero(np.isfinite(panel))
    names_array = pa.DictionaryArray.from_arrays(
        pa.array(columns.astype(np.int32)), pa.array(universe.tolist(), type=pa.string())
    )
    return pa.table(
        {"date": pa.array(dates[rows]), "instrument": names_array, "value": pa.array(panel[rows, columns])}
    )


def insert_values(con: duckdb.DuckDBPyConnection, factor_id: str, values: pa.Table) -> None:
    """Append a factor's values (an Arrow table, one bulk insert).

    DuckDB reads the local `incoming_values` by its replacement scan of Python objects, which
    costs a one-day update less than register() + unregister() (benchmarks/README.md).
    """
    incoming_values = values  # noqa: F841 (read by the SQL below)
    con.execute(
        "INSERT INTO factor_values SELECT ?, date, instrument, value FROM incoming_values", [factor_id]
    )


def scatter(table: pa.Table, dates: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """A (dates x instruments) panel from (date, instrument, value) rows; other keys are ignored.

    `dates` must be ascending; `universe` is any list of distinct instruments."""
    panel = np.full((dates.size, universe.size), np.nan)
    if table.num_rows == 0 or dates.size == 0 or universe.size == 0:
        return panel
    days = table.column("date").cast(pa.int32()).to_numpy()
    calendar = dates.astype(np.int64)
    rows = np.minimum(np.searchsorted(calendar, days), calendar.size - 1)
    encoded = table.column("instrument").combine_chunks().dictionary_encode()
    dictionary = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    order = np.argsort(universe)  # `universe` may be a caller's unsorted instrument list
    positions = order[np.minimum(np.searchsorted(universe, dictionary, sorter=order), universe.size - 1)]
    positions = np.where(universe[positions] == dictionary, positions, -1)
    columns = positions[encoded.indices.to_numpy()]
    keep = (calendar[rows] == days) & (columns >= 0)
    panel[rows[keep], columns[keep]] = table.column("value").to_numpy()[keep]
    return panel


def wide(panel: np.ndarray, dates: np.ndarray, instruments: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        panel,
        index=pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="date"),
        columns=pd.Index(list(instruments), name="instrument", dtype=object),
    )


def json_safe(value: Any) -> Any:
    """Metrics as JSON: numpy scalars to Python, NaN and inf to null."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value

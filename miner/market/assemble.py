"""Long rows -> panels: daily rows pivoted into a `MarketData`, minute bars scattered into cubes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from miner.errors import DataError
from miner.market.fields import derivable_intraday, with_derived, with_derived_intraday
from miner.market.ingest import DailyBars, validate_daily, validate_minute
from miner.market.panel import MarketData
from miner.market.rules import History, TradingRules, check_codes, rule_fields
from miner.market.session import NS_PER_DAY, SessionGrid

log = logging.getLogger(__name__)


def market_from_frames(
    daily: pd.DataFrame,
    minute: pd.DataFrame | None,
    groups: frozenset[str],
    source: str,
    session: SessionGrid,
    rules: TradingRules | None,
    max_intraday_bytes: int,
) -> MarketData:
    """`MarketData.from_frame`: validate the long frames, pivot the daily rows, scatter the minutes."""
    bars = validate_daily(daily, source, groups)
    if rules is not None:
        check_codes(rules, pd.unique(bars.instruments), source)
    market = assemble_daily(encode_rows(bars), rules)
    if minute is None:
        return market
    minutes = validate_minute(minute, source, session)
    codes, names = pd.factorize(minutes.instruments)
    instrument_index = index_of(market.instruments, np.asarray(names, dtype=object))[codes]
    cubes = minute_cubes(
        minutes.timestamps,
        instrument_index,
        minutes.values,
        market.dates,
        market.N,
        session,
        source,
        max_intraday_bytes,
    )
    return MarketData(market.dates, market.instruments, market.fields, cubes, market.groups)


def index_of(universe: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Position of each name in the sorted `universe`, -1 where absent."""
    if universe.size == 0:
        return np.full(names.size, -1, dtype=np.int64)
    positions = np.searchsorted(universe, names)
    clipped = np.minimum(positions, universe.size - 1)
    return np.where(universe[clipped] == names, clipped, -1).astype(np.int64)


@dataclass
class EncodedRows:
    """Daily rows whose keys and labels are codes into sorted uniques (-1 = missing label)."""

    dates: np.ndarray  # unique, datetime64[D], ascending
    date_index: np.ndarray
    instruments: np.ndarray  # unique, object str, sorted
    instrument_index: np.ndarray
    numeric: dict[str, np.ndarray]
    labels: dict[str, tuple[np.ndarray, tuple[str, ...]]]
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # bool, the ones the rules read


def encode_rows(bars: DailyBars) -> EncodedRows:
    dates, date_index = np.unique(bars.dates, return_inverse=True)
    instrument_index, instruments = pd.factorize(bars.instruments, sort=True)
    labels = {}
    for name, values in bars.labels.items():
        codes, uniques = pd.factorize(values, sort=True)
        labels[name] = (codes, tuple(uniques))
    return EncodedRows(
        dates,
        date_index,
        np.asarray(instruments, dtype=object),
        instrument_index,
        bars.numeric,
        labels,
        {name: flags for name, flags in bars.flags.items() if name == "st"},
    )


def assemble_daily(
    rows: EncodedRows, rules: TradingRules | None = None, history: History | None = None
) -> MarketData:
    """Pivot daily rows into a MarketData (derived fields added, all-missing columns dropped);
    with trading rules, also their fields (`miner.market.rules`), `history` being what precedes
    the rows' first date."""
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
    fields = with_derived(fields)
    if rules is not None:
        history = history or History.none(shape[1], rows.dates[0])
        st = _st_flags(rows, fields, shape)
        derived = rule_fields(rules, rows.dates, rows.instruments, fields, st, history)
        if "tradable" in fields:  # the data's own column wins, as for every derived field
            del derived["tradable"]
        fields.update(derived)
    return MarketData(rows.dates, rows.instruments, fields, {}, groups)


def _st_flags(
    rows: EncodedRows, fields: Mapping[str, np.ndarray], shape: tuple[int, int]
) -> np.ndarray | None:
    """The (T, N) ST flags: a boolean `st` column, or a numeric one (non-zero = ST); None without."""
    if "st" in rows.flags:
        return (
            _pivot(rows.date_index, rows.instrument_index, rows.flags["st"].astype(np.float64), shape) == 1.0
        )
    if "st" in fields:
        return np.nan_to_num(fields["st"]) != 0.0
    return None


def _pivot(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    panel = np.full(shape, np.nan)
    panel[rows, columns] = values
    return panel


def minute_cubes(
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
    day_number = np.floor_divide(timestamps, NS_PER_DAY)
    slot = session.slot_of(timestamps - day_number * NS_PER_DAY)
    on_grid = slot >= 0
    day_index = index_of(dates.astype(np.int64), day_number)
    known_day = day_index >= 0
    known_instrument = instrument_index >= 0
    _warn_dropped(source, ~known_day, "on days without daily bars")
    _warn_dropped(source, known_day & ~known_instrument, "of instruments without daily bars")
    _warn_dropped(
        source,
        known_day & known_instrument & ~on_grid,
        f"off the {session}",
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

"""The market as the library sees it: one operation's calendar, change log and window loads, and
what a library keeps of them between operations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from miner.errors import DataError, LibraryError
from miner.market import MarketData
from miner.market.panel import to_day
from miner.market.store import MarketStore


class MarketMemo:
    """What a library keeps of the market between operations (which each open the file afresh):
    the calendar and the whole daily panel of the market version it last read. Every import logs a
    row in data_changes in its own transaction, so an unchanged `MarketView.version` means unchanged
    market tables."""

    def __init__(self) -> None:
        self.version: tuple[int, dt.datetime | None] | None = None
        self.calendar: tuple[np.ndarray, np.ndarray] | None = None
        self.daily: MarketData | None = None

    def at(self, version: tuple[int, dt.datetime | None]) -> MarketMemo:
        """This memo, emptied first if it holds another version of the market."""
        if version != self.version:
            self.version, self.calendar, self.daily = version, None, None
        return self


class MarketView:
    """One operation's view of the market tables: calendar, change log and window loads (the
    calendar and the whole daily panel through `memo`, when given)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, store: MarketStore, where: Path, memo: MarketMemo | None = None
    ) -> None:
        self.con = con
        self.store = store
        self.where = where
        self._memo = None if memo is None else memo.at(self.version())
        self._calendar: tuple[np.ndarray, np.ndarray] | None = None if memo is None else memo.calendar

    @property
    def dates(self) -> np.ndarray:
        return self._load_calendar()[0]

    @property
    def universe(self) -> np.ndarray:
        return self._load_calendar()[1]

    def _load_calendar(self) -> tuple[np.ndarray, np.ndarray]:
        if self._calendar is None:
            days = self.con.execute("SELECT DISTINCT date FROM daily_bars").fetchall()
            instruments = self.con.execute("SELECT DISTINCT instrument FROM daily_bars").fetchall()
            if not days:
                raise LibraryError(
                    f"the market store {self.where} has no daily bars: import market data first"
                )
            dates = np.sort(np.array([day for (day,) in days], dtype="datetime64[D]"))
            universe = np.array(sorted(name for (name,) in instruments), dtype=object)
            self._calendar = (dates, universe)
            if self._memo is not None:
                self._memo.calendar = self._calendar
        return self._calendar

    def changes(self) -> list[tuple[str, dt.date, dt.datetime]]:
        """Every logged import: (kind, first date touched, imported_at)."""
        return [
            tuple(row)
            for row in self.con.execute("SELECT kind, first_date, imported_at FROM data_changes").fetchall()
        ]

    def version(self) -> tuple[int, dt.datetime | None]:
        """Changes with every import: how many there were and when the last one was."""
        count, last = self.con.execute("SELECT count(*), max(imported_at) FROM data_changes").fetchall()[0]
        return int(count), last

    def columns(self) -> set[str]:
        rows = self.con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'daily_bars' AND table_schema = current_schema()"
        ).fetchall()
        return {name for (name,) in rows}

    def row_of(self, day: Any) -> int:
        """The calendar row of a trading date; LibraryError when it is not one."""
        wanted = day_of(day)
        row = int(np.searchsorted(self.dates, wanted))
        if row >= self.dates.size or self.dates[row] != wanted:
            raise LibraryError(
                f"{wanted} is not a trading date of the market store {self.where} "
                f"({self.dates[0]}..{self.dates[-1]}, {self.dates.size} dates)"
            )
        return row

    def rows_between(self, start: Any, end: Any) -> tuple[int, int]:
        """Calendar rows first..stop (exclusive) of the dates start..end inclusive (None = open)."""
        first = 0 if start is None else int(np.searchsorted(self.dates, day_of(start), "left"))
        stop = self.dates.size if end is None else int(np.searchsorted(self.dates, day_of(end), "right"))
        return first, max(first, stop)

    def window(self, first: int, stop: int, minute: bool = False) -> MarketData:
        """Calendar rows first..stop-1 on the whole instrument universe."""
        whole_daily = not minute and first == 0 and stop == self.dates.size
        if whole_daily and self._memo is not None and self._memo.daily is not None:
            return self._memo.daily
        market = on_universe(
            self.store.load(self.dates[first], self.dates[stop - 1], minute=minute), self.universe
        )
        if whole_daily and self._memo is not None:
            self._memo.daily = market
        return market


def on_universe(market: MarketData, universe: np.ndarray) -> MarketData:
    """The panel widened to `universe` (NaN columns for instruments without bars in it)."""
    if market.N == universe.size:
        return market
    columns = np.searchsorted(universe, market.instruments)

    def spread(array: np.ndarray) -> np.ndarray:
        out = np.full((array.shape[0], universe.size, *array.shape[2:]), np.nan)
        out[:, columns] = array
        return out

    return MarketData(
        market.dates,
        universe,
        {name: spread(array) for name, array in market.fields.items()},
        {name: spread(cube) for name, cube in market.intraday.items()},
        market.groups,
    )


def as_list(names_or_name: Iterable[str] | str) -> list[str]:
    """A list of names; a single string is one name."""
    if isinstance(names_or_name, str):
        return [names_or_name]
    return [str(name) for name in names_or_name]


def day_of(value: Any) -> np.datetime64:
    try:
        return to_day(value)
    except DataError as exc:
        raise LibraryError(str(exc)) from None


def date_of(day: np.datetime64) -> dt.date:
    return pd.Timestamp(day).date()

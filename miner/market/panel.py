"""`MarketData`: the market panel every formula is evaluated on.

A panel field is a float64 array of shape (T, N): rows are trading dates ascending, columns are
instruments sorted, NaN means missing. Intraday fields are (T, N, M) arrays on a regular grid of M
minute slots per day. This module needs numpy only, so that scoring workers import no pandas,
pyarrow or DuckDB; building panels from long tables lives in `miner.market.assemble`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from miner.errors import DataError
from miner.market.fields import DEFAULT_GROUPS
from miner.market.session import DEFAULT_SESSION, SessionGrid

if TYPE_CHECKING:
    import pandas as pd

    from miner.market.rules import TradingRules

MAX_INTRADAY_BYTES = 4 * 2**30


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
        wanted = np.asarray(names_of(instruments), dtype=object)
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
        session: SessionGrid | str = DEFAULT_SESSION,
        rules: TradingRules | str | None = None,
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
        are placed on the slots of `session` (a `SessionGrid` or a spec: ``us``, ``cn``,
        ``cn_open`` or segments, `miner.market.session`), tz-aware times converted to its zone;
        the daily dates and instruments are the master: bars on other days or of other
        instruments, and bars off the grid, are dropped with a logged warning. Missing minutes
        are NaN. `rules` (``us``, ``cn``, ``cn_locked``; `miner.market.rules`) add the derived
        ``tradable`` field (and, for A-shares, ``limit_up`` / ``limit_down``).
        """
        from miner.market.assemble import market_from_frames  # pandas-based: loaded on use
        from miner.market.rules import trading_rules
        from miner.market.session import session_grid

        return market_from_frames(
            daily,
            minute,
            frozenset(groups),
            source,
            session_grid(session),
            None if rules is None else trading_rules(rules),
            max_intraday_bytes,
        )


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
    import pandas as pd  # parses every spelling of a date; imported here to keep this module light

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DataError(f"{value!r} is not a date") from None
    if pd.isna(stamp):
        raise DataError(f"{value!r} is not a date")
    return np.datetime64(stamp.date(), "D")


def names_of(instruments: Iterable[str] | str) -> list[str]:
    """Sorted unique instrument names; a single string is one name."""
    return sorted({instruments} if isinstance(instruments, str) else {str(name) for name in instruments})

"""The minute grid of a trading day (session): its segments, its slots and its time zone.

A session is one or more segments of end-labelled minute bars, e.g. the A-share day
09:31-11:30 + 13:01-15:00 (240 slots, no lunch slots). Intraday cubes hold only the session's
trading slots, in order, so every intraday operator sees one continuous series per day.

Presets (`session_grid`):

* ``us``: 09:30-16:00, 391 slots (the opening and closing auction bars included), America/New_York.
* ``cn``: 09:31-11:30 + 13:01-15:00, 240 slots, Asia/Shanghai (vendors that fold the 09:30 call
  auction into the 09:31 bar).
* ``cn_open``: 09:30-11:30 + 13:01-15:00, 241 slots, Asia/Shanghai (vendors that send the 09:30
  opening bar on its own).

Any other spec is a comma-separated list of ``HH:MM-HH:MM`` segments (both ends inclusive),
optionally followed by ``@ZONE`` (an IANA time zone), e.g. ``"09:30-11:30,13:00-15:00@Asia/Shanghai"``.
Naive timestamps are exchange wall-clock time; tz-aware ones are converted to the session's zone
(a session without a zone refuses them).
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass, field

import numpy as np

from miner.errors import DataError

NS_PER_DAY = 86_400 * 10**9
NS_PER_MINUTE = 60 * 10**9
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class SessionGrid:
    """The minute slots of one trading day: each segment `start`..`end` inclusive, every
    `step_minutes`; `timezone` is the exchange's IANA zone (None: naive times only)."""

    segments: tuple[tuple[str, str], ...]
    step_minutes: int = 1
    timezone: str | None = None
    name: str | None = field(default=None, compare=False)  # a preset's name; equality ignores it

    def __post_init__(self) -> None:
        if not self.segments:
            raise DataError("a session grid needs at least one segment")
        if self.step_minutes < 1:
            raise DataError(f"session grid step {self.step_minutes} min must be a positive whole number")
        step = self.step_minutes * NS_PER_MINUTE
        previous_end = -1
        for start, end in self.segments:
            first, last = _clock_ns(start), _clock_ns(end)
            if last < first or (last - first) % step:
                raise DataError(
                    f"session segment {start}-{end} every {self.step_minutes} min is not a whole number "
                    "of slots"
                )
            if first <= previous_end:
                raise DataError(f"session segment {start}-{end} overlaps or precedes the one before it")
            previous_end = last
        if self.timezone is not None:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise DataError(f"session time zone {self.timezone!r} is not an IANA time zone") from None

    @property
    def spec(self) -> str:
        """The string that `session_grid` reads back into this grid (what a store records)."""
        if self.name is not None:
            return self.name
        text = ",".join(f"{start}-{end}" for start, end in self.segments)
        if self.step_minutes != 1:
            text += f"/{self.step_minutes}"
        return text + (f"@{self.timezone}" if self.timezone else "")

    @property
    def slots(self) -> int:
        """M, the number of minute slots per day."""
        return int(self.slot_times().size)

    def slot_times(self) -> np.ndarray:
        """(M,) minutes after midnight of every slot, in order."""
        return np.concatenate(
            [
                np.arange(_clock_ns(start), _clock_ns(end) + 1, self.step_minutes * NS_PER_MINUTE)
                // NS_PER_MINUTE
                for start, end in self.segments
            ]
        )

    def slot_of(self, nanoseconds_of_day: np.ndarray) -> np.ndarray:
        """Slot index of each time of day (ns after midnight); -1 off the grid."""
        minutes, rest = np.divmod(np.asarray(nanoseconds_of_day, dtype=np.int64), NS_PER_MINUTE)
        on_minute = (rest == 0) & (minutes >= 0) & (minutes < MINUTES_PER_DAY)
        return np.where(on_minute, _slot_table(self)[np.clip(minutes, 0, MINUTES_PER_DAY - 1)], -1)

    def __str__(self) -> str:
        text = " + ".join(f"{start}-{end}" for start, end in self.segments)
        return f"{self.name or 'custom'} session {text}" + (f" ({self.timezone})" if self.timezone else "")


@functools.cache
def _slot_table(grid: SessionGrid) -> np.ndarray:
    """(1440,) slot index of every minute of the day, -1 off the grid."""
    table = np.full(MINUTES_PER_DAY, -1, dtype=np.int64)
    times = grid.slot_times()
    table[times] = np.arange(times.size)
    return table


def _clock_ns(clock: str) -> int:
    try:
        hours, minutes = (int(part) for part in clock.strip().split(":"))
    except ValueError:
        raise DataError(f"session time {clock!r} is not HH:MM") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise DataError(f"session time {clock!r} is not HH:MM")
    return (hours * 60 + minutes) * NS_PER_MINUTE


US_REGULAR_SESSION = SessionGrid((("09:30", "16:00"),), timezone="America/New_York", name="us")
CN_SESSION = SessionGrid((("09:31", "11:30"), ("13:01", "15:00")), timezone="Asia/Shanghai", name="cn")
CN_OPEN_SESSION = SessionGrid(
    (("09:30", "11:30"), ("13:01", "15:00")), timezone="Asia/Shanghai", name="cn_open"
)
SESSIONS = {grid.spec: grid for grid in (US_REGULAR_SESSION, CN_SESSION, CN_OPEN_SESSION)}
DEFAULT_SESSION = US_REGULAR_SESSION


def session_grid(spec: str | SessionGrid) -> SessionGrid:
    """A preset name (us, cn, cn_open) or ``SEGMENTS[/STEP][@ZONE]`` as a SessionGrid (module doc)."""
    if isinstance(spec, SessionGrid):
        return spec
    text = str(spec).strip()
    if text in SESSIONS:
        return SESSIONS[text]
    body, _, zone = text.partition("@")
    body, _, step = body.partition("/")
    if "-" not in body:
        raise DataError(
            f"session {spec!r}: expected a preset ({', '.join(SESSIONS)}) or segments such as "
            "'09:30-11:30,13:00-15:00@Asia/Shanghai'"
        )
    segments = []
    for part in body.split(","):
        start, sep, end = part.partition("-")
        if not sep:
            raise DataError(f"session {spec!r}: segment {part!r} is not HH:MM-HH:MM")
        segments.append((start.strip(), end.strip()))
    try:
        step_minutes = int(step) if step else 1
    except ValueError:
        raise DataError(f"session {spec!r}: step {step!r} is not a whole number of minutes") from None
    return SessionGrid(tuple(segments), step_minutes, zone.strip() or None)

"""The minute grid of a trading day (session)."""

from __future__ import annotations

from dataclasses import dataclass

from miner.errors import DataError

NS_PER_DAY = 86_400 * 10**9
NS_PER_MINUTE = 60 * 10**9


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
        step = self.step_minutes * NS_PER_MINUTE
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
        return (self.end_ns - self.start_ns) // (self.step_minutes * NS_PER_MINUTE) + 1


def _clock_ns(clock: str) -> int:
    try:
        hours, minutes = (int(part) for part in clock.split(":"))
    except ValueError:
        raise DataError(f"session time {clock!r} is not HH:MM") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise DataError(f"session time {clock!r} is not HH:MM")
    return (hours * 60 + minutes) * NS_PER_MINUTE


US_REGULAR_SESSION = SessionGrid()

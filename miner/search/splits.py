"""Train / valid / test segments as row ranges, with the embargo that keeps labels apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miner.config import Segment, SplitSpec
from miner.errors import ConfigError

MIN_SEGMENT_ROWS = 20


@dataclass(frozen=True)
class Segments:
    """Row slices of the panel. A segment's last `embargo` rows are left out of it: their
    labels would read prices from the next segment."""

    train: slice
    valid: slice
    test: slice
    embargo: int

    def as_dict(self) -> dict[str, slice]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


def _rows(dates: np.ndarray, segment: Segment) -> tuple[int, int]:
    start = int(np.searchsorted(dates, np.datetime64(segment.start, "D"), side="left"))
    stop = int(np.searchsorted(dates, np.datetime64(segment.end, "D"), side="right"))
    return start, stop


def make_segments(dates: np.ndarray, splits: SplitSpec, embargo: int, source: str = "<config>") -> Segments:
    """Segments of `dates` for the configured split; a `ConfigError` when one falls outside the data."""
    first, last = dates[0], dates[-1]
    bounds = {}
    for name in ("train", "valid", "test"):
        segment: Segment = getattr(splits, name)
        if np.datetime64(segment.start, "D") < first or np.datetime64(segment.end, "D") > last:
            raise ConfigError(
                f"{source}: splits.{name}: {segment.start}..{segment.end} lies outside the data "
                f"({first}..{last})"
            )
        start, stop = _rows(dates, segment)
        if name != "test":
            stop -= embargo
        if stop - start < MIN_SEGMENT_ROWS:
            raise ConfigError(
                f"{source}: splits.{name}: only {max(stop - start, 0)} usable rows after the "
                f"{embargo}-row embargo (need {MIN_SEGMENT_ROWS})"
            )
        bounds[name] = slice(start, stop)
    return Segments(bounds["train"], bounds["valid"], bounds["test"], embargo)

"""The `get_factor` cache: one byte-bounded LRU of frames per library file and process.

While a process has a library file open, no other process can write it (DuckDB's lock), so a
cache shared by the process's open `FactorLibrary` objects stays exact; it is dropped when the
last one closes, because another process may write the file after that.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from miner.lang.cache import ByteLRU

FrameCache = ByteLRU[tuple, pd.DataFrame]
"""Keys start with the factor id: (factor_id, start, end, instruments)."""

_SHARED_CACHES: dict[Path, tuple[FrameCache, list[int]]] = {}


def _frame_bytes(frame: pd.DataFrame) -> int:
    return int(frame.memory_usage(index=True).sum())


def new_frame_cache(max_bytes: int) -> FrameCache:
    return ByteLRU(max_bytes, _frame_bytes)


def acquire_cache(path: Path, max_bytes: int) -> FrameCache:
    """The cache of the library file at `path` (created on first use); pair with `release_cache`."""
    cache, users = _SHARED_CACHES.setdefault(path, (new_frame_cache(max_bytes), [0]))
    users[0] += 1
    return cache


def release_cache(path: Path) -> None:
    entry = _SHARED_CACHES.get(path)
    if entry is None:
        return
    entry[1][0] -= 1
    if entry[1][0] <= 0:
        del _SHARED_CACHES[path]


def forget_factor(cache: FrameCache, factor_id: str) -> None:
    """Drop every cached frame of a factor (its values changed)."""
    cache.drop_where(lambda key: key[0] == factor_id)

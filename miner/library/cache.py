"""The `get_factor` cache: one byte-bounded LRU of frames per library file and process, exact while
other processes write the file.

A frame is kept with the version it was read at: the factor's creation and last-write times
(every write of a factor's values sets ``last_updated`` in the same transaction) and the market's
(the count and last time of its imports, since a frame's dates and columns come from the market
calendar). Before a frame is served, the files' signature (`miner.storage.file_signature`: any
commit by any process changes it) is compared with the one seen at the last look; when it differs,
one read-only query fetches every factor's current version and the frames of older versions are
dropped. An unchanged file costs two `stat` calls and no connection. The signature is read before
that query opens the file, and another process's next commit comes at least one open of the file
later (milliseconds), so it always shows as a new modification time.

The cache is shared by a process's open `FactorLibrary` objects on one file and dropped when the
last one closes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import pandas as pd

from miner.lang.cache import ByteLRU

Version = Hashable
Versions = Mapping[str, Version]  # factor id -> version


class FrameCache:
    """Frames keyed by (factor_id, start, end, instruments), each with the version it was read at."""

    def __init__(self, max_bytes: int) -> None:
        self._frames: ByteLRU[tuple, tuple[Version, pd.DataFrame]] = ByteLRU(max_bytes, _entry_bytes)
        self._signature: tuple | None = None

    def is_current(self, signature: tuple) -> bool:
        """Whether the files are as they were when the versions were last checked."""
        return signature == self._signature

    def refresh(self, signature: tuple, versions: Versions) -> None:
        """Drop the frames of factors whose version changed; `versions` were read after the files'
        `signature` was taken."""
        self._frames.drop_where(lambda key, entry: versions.get(key[0]) != entry[0])
        self._signature = signature

    def get(self, key: tuple) -> pd.DataFrame | None:
        """The frame of `key`, if cached (call `is_current` / `refresh` first)."""
        entry = self._frames.get(key)
        return None if entry is None else entry[1]

    def put(self, key: tuple, version: Version, frame: pd.DataFrame) -> None:
        self._frames.put(key, (version, frame))

    def forget_factor(self, factor_id: str) -> None:
        """Drop every cached frame of a factor (this process just wrote its values)."""
        self._frames.drop_where(lambda key, _: key[0] == factor_id)

    def clear(self) -> None:
        self._frames.clear()

    @property
    def hits(self) -> int:
        return self._frames.hits

    @property
    def bytes(self) -> int:
        return self._frames.bytes

    def __len__(self) -> int:
        return len(self._frames)


def _entry_bytes(entry: tuple[Version, pd.DataFrame]) -> int:
    return int(entry[1].memory_usage(index=True).sum())


_SHARED_CACHES: dict[Path, tuple[FrameCache, list[int]]] = {}


def acquire_cache(path: Path, max_bytes: int) -> FrameCache:
    """The cache of the library file at `path` (created on first use); pair with `release_cache`."""
    cache, users = _SHARED_CACHES.setdefault(path, (FrameCache(max_bytes), [0]))
    users[0] += 1
    return cache


def release_cache(path: Path) -> None:
    entry = _SHARED_CACHES.get(path)
    if entry is None:
        return
    entry[1][0] -= 1
    if entry[1][0] <= 0:
        del _SHARED_CACHES[path]

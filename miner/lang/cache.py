"""A least-recently-used map bounded by the bytes of its values (the evaluator's subformula cache,
the factor library's frame cache)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """Keeps the most recently used values whose sizes (`size_of`) sum to at most `max_bytes`;
    a value larger than the bound is not kept. Counts hits and misses of `get`."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self.size_of = size_of
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item[0]

    def __contains__(self, key: object) -> bool:
        """Whether `key` is held (neither a hit nor a miss)."""
        return key in self._items

    def put(self, key: K, value: V) -> None:
        """Keep `value` under `key` (replacing what was there), evicting the least recently used."""
        size = self.size_of(value)
        if size > self.max_bytes:
            return
        self._drop(key)
        self._items[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def drop_where(self, condition: Callable[[K, V], bool]) -> None:
        """Forget every entry for which `condition(key, value)` holds."""
        for key in [key for key, (value, _) in self._items.items() if condition(key, value)]:
            self._drop(key)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def _drop(self, key: K) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= item[1]

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __len__(self) -> int:
        return len(self._items)

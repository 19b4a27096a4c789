"""Sorting helpers of the numba kernels: short runs of keys, runs of tied keys, sorted windows.

Shared by the cross-sectional ranks (`operators.cross_section`), the sorted windows of `ts_median`
and `ts_mad_despike`, and the ranking kernels of the metrics (`evaluation.ranking`). Keys are any
numbers without NaN (floats, or integer sort keys); a *payload* array (e.g. the keys' columns) is
moved along with them. Everything works in place on caller-owned buffers: nothing allocates.

Kernels in other files call these: see the package docstring on numba's cache after an edit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SHORT_RUN = 16
"""`sort_run` insertion-sorts runs up to this length and heapsorts longer ones."""


@njit(cache=True, nogil=True)
def move_back(keys: np.ndarray, payload: np.ndarray | None, lo: int, k: int) -> int:
    """Move keys[k] back to its place in the sorted keys[lo:k], after the keys equal to it, and
    payload[k] with it (payload may be None); returns how many keys it passed."""
    key = keys[k]
    if payload is not None:
        carried = payload[k]
    s = k - 1
    while s >= lo and keys[s] > key:
        keys[s + 1] = keys[s]
        if payload is not None:
            payload[s + 1] = payload[s]
        s -= 1
    keys[s + 1] = key
    if payload is not None:
        payload[s + 1] = carried
    return k - 1 - s


@njit(cache=True, nogil=True)
def insertion_sort(keys: np.ndarray, payload: np.ndarray, lo: int, hi: int) -> None:
    """Sort keys[lo:hi] ascending in place, moving payload[lo:hi] along; stable."""
    for k in range(lo + 1, hi):
        move_back(keys, payload, lo, k)


@njit(cache=True, nogil=True)
def _sift_down(keys: np.ndarray, payload: np.ndarray, base: int, root: int, end: int) -> None:
    """Restore the max-heap property below ``root`` in keys[base:base+end] (payload follows)."""
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and keys[base + child] < keys[base + child + 1]:
            child += 1
        if keys[base + root] >= keys[base + child]:
            return
        a, b = base + root, base + child
        keys[a], keys[b] = keys[b], keys[a]
        payload[a], payload[b] = payload[b], payload[a]
        root = child


@njit(cache=True, nogil=True)
def heapsort(keys: np.ndarray, payload: np.ndarray, lo: int, hi: int) -> None:
    """Sort keys[lo:hi] ascending in place, moving payload[lo:hi] along (O(L log L), not stable)."""
    size = hi - lo
    for root in range(size // 2 - 1, -1, -1):
        _sift_down(keys, payload, lo, root, size)
    for end in range(size - 1, 0, -1):
        keys[lo], keys[lo + end] = keys[lo + end], keys[lo]
        payload[lo], payload[lo + end] = payload[lo + end], payload[lo]
        _sift_down(keys, payload, lo, 0, end)


@njit(cache=True, nogil=True)
def sort_run(keys: np.ndarray, payload: np.ndarray, lo: int, hi: int) -> None:
    """Sort keys[lo:hi] ascending in place, moving payload[lo:hi] along: nothing when already
    sorted, an insertion sort up to `SHORT_RUN` keys, else heapsort (equal keys may swap)."""
    for k in range(lo + 1, hi):
        if keys[k] < keys[k - 1]:
            break
    else:
        return
    if hi - lo > SHORT_RUN:
        heapsort(keys, payload, lo, hi)
    else:
        insertion_sort(keys, payload, lo, hi)


@njit(cache=True, nogil=True)
def equal_run_end(keys: np.ndarray, first: int, stop: int) -> int:
    """The end of the run of sorted keys from ``first`` (before ``stop``) equal to keys[first]."""
    end = first + 1
    while end < stop and keys[end] == keys[first]:
        end += 1
    return end


@njit(cache=True, nogil=True)
def prefix_run_end(keys: np.ndarray, first: int, stop: int, shift: np.unsignedinteger) -> int:
    """The end of the run of sorted unsigned keys from ``first`` (before ``stop``) that share the
    bits of keys[first] from bit ``shift`` up."""
    prefix = keys[first] >> shift
    end = first + 1
    while end < stop and (keys[end] >> shift) == prefix:
        end += 1
    return end


@njit(cache=True, nogil=True)
def insert_sorted(values: np.ndarray, m: int, v: float) -> int:
    """Insert v into the sorted values[:m] after the values equal to it; returns m + 1."""
    values[m] = v
    move_back(values, None, 0, m)
    return m + 1


@njit(cache=True, nogil=True)
def remove_sorted(values: np.ndarray, m: int, v: float) -> int:
    """Remove the first of the values equal to v (one must be there) from the sorted values[:m];
    returns m - 1."""
    i = 0
    while values[i] < v:
        i += 1
    for j in range(i, m - 1):
        values[j] = values[j + 1]
    return m - 1

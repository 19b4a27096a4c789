"""Degeneracy gates: cheap tests that reject a candidate factor before it is scored.

A factor fails when it is missing on too many of the label's valid cells (coverage), when too
few of the scorable dates have enough names (dated), or when it takes too few distinct values
on a date (distinct: a 0/1 flag that is 1 almost everywhere ranks as mostly ties). Only the
dates in ``rows`` are read. Failure reasons start with the gate's name, then the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class Gates:
    """Thresholds a candidate must reach on the rows it is scored on."""

    min_coverage: float  # share of the label's valid cells (in rows) where the factor is finite
    min_distinct: float  # median over sampled dates of (#distinct finite values / #finite values)
    min_dated_share: float  # share of scorable dates with >= min_names finite values where the label is valid


def _row_range(rows: slice, n_rows: int) -> tuple[int, int]:
    """(start, stop) of a contiguous slice of dates."""
    if not isinstance(rows, slice):
        raise ValueError(f"rows must be a slice of dates, got {type(rows).__name__}")
    start, stop, step = rows.indices(n_rows)
    if step != 1:
        raise ValueError(f"rows must be a contiguous slice (step 1), got step {step}")
    return start, max(start, stop)


def _sampled_dates(start: int, stop: int, dates: int) -> np.ndarray:
    """Up to ``dates`` evenly spaced rows of [start, stop), deterministic and distinct."""
    count = min(int(dates), stop - start)
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    return np.linspace(start, stop - 1, count).astype(np.int64)  # spacing >= 1: floors stay distinct


def _distinct_shares(block: np.ndarray) -> np.ndarray:
    """Per row: #distinct finite values / #finite values (0 with fewer than 2 finite values)."""
    ordered = np.sort(np.where(np.isfinite(block), block, np.nan), axis=1)  # NaN sorts last
    finite = np.isfinite(ordered)
    counts = finite.sum(axis=1)
    changes = ((ordered[:, 1:] != ordered[:, :-1]) & finite[:, 1:]).sum(axis=1)
    shares = np.zeros(block.shape[0])
    enough = counts >= 2
    shares[enough] = (changes[enough] + 1) / counts[enough]
    return shares


def distinct_share(values: np.ndarray, rows: slice, dates: int = 64) -> float:
    """Median over up to `dates` evenly spaced dates of rows of the share of distinct finite values.

    Dates sampled with `np.linspace` over the rows (deterministic); a date with fewer than 2
    finite values counts as 0. NaN when rows is empty.
    """
    start, stop = _row_range(rows, values.shape[0])
    sampled = _sampled_dates(start, stop, dates)
    if sampled.size == 0:
        return math.nan
    return float(np.median(_distinct_shares(np.asarray(values, dtype=np.float64)[sampled])))


@njit(cache=True, nogil=True)
def _gate_counts(values, universe, start, stop, min_names):
    """(covered cells, universe cells, dates with >= min_names covered, dates with >= min_names
    universe cells) over rows start..stop-1; covered = finite and in the universe."""
    covered = 0
    total = 0
    dated = 0
    scorable = 0
    for t in range(start, stop):
        row_covered = 0
        row_total = 0
        for n in range(values.shape[1]):  # no branch: the loop vectorises
            member = universe[t, n]
            row_total += member
            row_covered += member and math.isfinite(values[t, n])
        covered += row_covered
        total += row_total
        dated += row_covered >= min_names
        scorable += row_total >= min_names
    return covered, total, dated, scorable


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def gate_failure(
    values: np.ndarray, universe: np.ndarray, rows: slice, gates: Gates, min_names: int
) -> str | None:
    """Why `values` fails a gate (a short reason naming the gate and the figures), or None."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    universe = np.ascontiguousarray(universe, dtype=np.bool_)
    if values.ndim != 2 or universe.shape != values.shape:
        raise ValueError(
            f"values and universe must be (T, N) panels of one shape, got {values.shape} and {universe.shape}"
        )
    start, stop = _row_range(rows, values.shape[0])
    covered, total, dated, scorable = _gate_counts(values, universe, start, stop, int(min_names))
    coverage = _share(covered, total)
    if not coverage >= gates.min_coverage:
        return f"coverage {coverage:.3g} < {gates.min_coverage:g}"
    dated_share = _share(dated, scorable)
    if not dated_share >= gates.min_dated_share:
        return f"dated {dated_share:.3g} < {gates.min_dated_share:g} ({dated} of {scorable} dates)"
    distinct = distinct_share(values, rows)
    if not distinct >= gates.min_distinct:
        return f"distinct {distinct:.3g} < {gates.min_distinct:g}"
    return None

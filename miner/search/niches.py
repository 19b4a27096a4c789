"""Novelty by behaviour: candidates whose train rank-IC series move together are one idea.

Formula text and canonical forms cannot see that `ts_median(returns * close, 5)` and
`ts_median(returns * vwap, 5)` are one factor; their per-date rank IC series can. A candidate's
behaviour is its train rank-IC series averaged over weeks, centred and scaled to unit norm, so
the |dot product| of two behaviours is the |correlation| of their weekly IC. Selection then sees
only the best candidate of each idea (clearing, Petrowski 1996) and the hall of fame keeps one
place per idea, so the search spreads over ideas instead of polishing copies of one
(`miner.search.evolution`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

WEEK = 5  # dates per averaged block: daily IC is too noisy to tell two ideas apart


def behaviour(rank_ic_series: np.ndarray) -> np.ndarray | None:
    """The unit-norm, centred weekly means of a per-date IC series (missing weeks 0); None if flat."""
    series = np.asarray(rank_ic_series, dtype=np.float64)
    usable = series.size - series.size % WEEK
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN weeks
        weekly = np.nanmean(series[:usable].reshape(-1, WEEK), axis=1)
    present = np.isfinite(weekly)
    if present.sum() < 2 or np.ptp(weekly[present]) == 0.0:
        return None
    centred = np.where(present, weekly - weekly[present].mean(), 0.0)
    return (centred / np.linalg.norm(centred)).astype(np.float32)


def distinct_ideas(behaviours: Sequence[np.ndarray | None], max_correlation: float) -> list[bool]:
    """For behaviours in order of preference (best first), whether each is a new idea: its |correlation|
    with every earlier new idea is below `max_correlation`. A missing behaviour is never new."""
    present = [vector for vector in behaviours if vector is not None]
    kept = np.empty((len(present), present[0].size if present else 0), dtype=np.float32)
    count = 0
    out = []
    for vector in behaviours:
        new = vector is not None and not (np.abs(kept[:count] @ vector) >= max_correlation).any()
        if new:
            kept[count] = vector
            count += 1
        out.append(new)
    return out

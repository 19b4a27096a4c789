"""GP objectives and survivor rules built from metrics (plain floats and arrays; no DEAP)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evaluation.metrics import ic_stats

WORST_FITNESS = -1.0e9
"""Fitness of a candidate that cannot be scored (too few dates, no variance, NaN): finite, so
DEAP's comparisons and statistics stay well-defined, and below any real score."""


def icir_fitness(rank_ic_series: np.ndarray, size: int, parsimony: float = 0.0, min_dates: int = 20) -> float:
    """|mean| / std (ddof=1) of a per-date rank IC series minus ``parsimony * size``.

    Sign-agnostic: a consistently negative IC is as useful as a positive one (the formula can
    be negated). `WORST_FITNESS` when fewer than ``min_dates`` finite values remain or the
    series has no variance.
    """
    return fitness_from_stats(ic_stats(rank_ic_series), size, parsimony, min_dates)


def fitness_from_stats(
    stats: Mapping[str, float], size: int, parsimony: float = 0.0, min_dates: int = 20
) -> float:
    """`icir_fitness` of a series whose `ic_stats` are already at hand."""
    if stats["n"] < max(int(min_dates), 2) or not math.isfinite(stats["icir"]):
        return WORST_FITNESS
    return abs(stats["icir"]) - parsimony * size


@dataclass(frozen=True)
class SurvivorThresholds:
    """What a candidate must show on the validation segment to be admitted (the defaults are the
    experiment config's, `miner.config.SurvivorSpec`)."""

    min_abs_rank_ic: float
    max_turnover: float
    min_coverage: float


def _stat(stats: Mapping[str, float], key: str) -> float:
    if key not in stats:
        raise KeyError(f"validation stats lack {key!r} (have: {sorted(stats)})")
    return float(stats[key])


def admit(
    valid_stats: Mapping[str, float],
    train_sign: float,
    thresholds: SurvivorThresholds,
) -> tuple[bool, str]:
    """(admitted, reason) for a candidate scored on a validation segment.

    ``valid_stats`` needs ``rank_ic_mean``, ``turnover`` and ``coverage`` (as in
    `factor_summary`); ``train_sign`` is the sign of the training mean rank IC. The validation
    rank IC must reach the threshold in the training direction, turnover must not exceed its
    maximum and coverage must reach its minimum; NaN fails each test.
    """
    if not (math.isfinite(train_sign) and train_sign != 0.0):
        return False, f"training rank IC has no sign ({train_sign!r})"
    signed_ic = _stat(valid_stats, "rank_ic_mean") * math.copysign(1.0, train_sign)
    turnover = _stat(valid_stats, "turnover")
    cover = _stat(valid_stats, "coverage")
    if not signed_ic >= thresholds.min_abs_rank_ic:
        return False, (
            f"validation rank IC {signed_ic:.4g} in the training direction is below "
            f"{thresholds.min_abs_rank_ic:.4g}"
        )
    if not turnover <= thresholds.max_turnover:
        return False, f"turnover {turnover:.4g} exceeds {thresholds.max_turnover:.4g}"
    if not cover >= thresholds.min_coverage:
        return False, f"coverage {cover:.4g} is below {thresholds.min_coverage:.4g}"
    return True, "admitted"

"""GP objectives and survivor rules built from metrics (plain floats and arrays; no DEAP)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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


# ------------------------------------------------------------------ objectives on an IC series


def _finite(series: np.ndarray) -> np.ndarray:
    """The finite values of a 1-D series, in order."""
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"series must be 1-D, got shape {series.shape}")
    return series[np.isfinite(series)]


def hac_tstat(series: np.ndarray, lag: int) -> float:
    """Newey-West (Bartlett, `lag` lags) t of the finite values' mean; NaN if fewer than 3 or no variance.

    Long-run variance gamma_0 + 2 sum_j (1 - j / (lag + 1)) gamma_j with gamma_j = sum e_t e_(t-j) / n
    (no small-sample correction), so lag 0 gives mean / (std(ddof=0) / sqrt(n)). NaN dates are
    dropped and their neighbours treated as adjacent.
    """
    if int(lag) != lag or lag < 0:
        raise ValueError(f"lag must be an integer >= 0, got {lag!r}")
    values = _finite(series)
    n = values.size
    if n < 3 or (values == values[0]).all():
        return math.nan
    mean = float(values.mean())
    resid = values - mean
    long_run = float(resid @ resid) / n
    for j in range(1, min(int(lag), n - 1) + 1):
        long_run += 2.0 * (1.0 - j / (lag + 1.0)) * float(resid[j:] @ resid[:-j]) / n
    return mean / math.sqrt(long_run / n) if long_run > 0.0 else math.nan


def block_means(series: np.ndarray, blocks: int) -> np.ndarray:
    """Means of the finite values in `blocks` contiguous, near-equal parts of the series (NaN: empty part).

    The parts split the positions (`np.array_split`: sizes differ by at most one, the longer first),
    NaN included, so pass the series of the scored rows only.
    """
    if int(blocks) != blocks or blocks < 1:
        raise ValueError(f"blocks must be an integer >= 1, got {blocks!r}")
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"series must be 1-D, got shape {series.shape}")
    parts = np.array_split(series, int(blocks))
    return np.array(
        [float(part[np.isfinite(part)].mean()) if np.isfinite(part).any() else math.nan for part in parts]
    )


def _sample_std(values: np.ndarray) -> float:
    """std (ddof=1), 0 for a constant series, NaN for fewer than 2 values (as `ic_stats`)."""
    if values.size < 2:
        return math.nan
    if (values == values[0]).all():
        return 0.0
    return float(values.std(ddof=1))


def _mean_std_value(series: np.ndarray, blocks: int, beta: float) -> float:
    """(|mean of block means| - beta * std of block means) / std of the series."""
    means = block_means(series, blocks)
    means = means[np.isfinite(means)]
    spread = _sample_std(_finite(series))
    if means.size < 2 or not spread > 0.0:
        return math.nan
    return (abs(float(means.mean())) - beta * _sample_std(means)) / spread


@dataclass(frozen=True)
class Objective:
    """How a per-date IC series is scored, in ICIR units (sign-agnostic: a formula can be negated).

    icir: |mean| / std (ddof=1). tstat: |Newey-West t| / sqrt(n), an ICIR whose standard error
    allows for the overlap of multi-day labels (``hac_lag`` lags; lag 0 is |mean| / std with
    ddof=0). mean_std: (|m| - beta * std of the ``blocks`` block means (ddof=1)) / std of the
    series (ddof=1), m the mean of the block means: block means of the sign opposite to m lower
    |m| and raise their spread, so only an IC that holds in every part of the sample scores high.
    """

    kind: Literal["icir", "tstat", "mean_std"]
    hac_lag: int = 0
    blocks: int = 4
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("icir", "tstat", "mean_std"):
            raise ValueError(f"unknown objective kind {self.kind!r} (expected icir, tstat or mean_std)")
        if int(self.hac_lag) != self.hac_lag or self.hac_lag < 0:
            raise ValueError(f"hac_lag must be an integer >= 0, got {self.hac_lag!r}")
        if int(self.blocks) != self.blocks or self.blocks < 2:
            raise ValueError(f"blocks must be an integer >= 2, got {self.blocks!r}")

    def value(self, series: np.ndarray) -> float:
        """Sign-agnostic score of a per-date IC series, in ICIR units; NaN when undefined."""
        if self.kind == "icir":
            return abs(ic_stats(series)["icir"])
        if self.kind == "tstat":
            return abs(hac_tstat(series, self.hac_lag)) / math.sqrt(max(_finite(series).size, 1))
        return _mean_std_value(series, self.blocks, self.beta)

    def fitness(self, series: np.ndarray, size: int, parsimony: float, min_dates: int) -> float:
        """value - parsimony * size; WORST_FITNESS with fewer than min_dates finite values or a NaN value."""
        if _finite(series).size < max(int(min_dates), 2):
            return WORST_FITNESS
        value = self.value(series)
        return value - parsimony * size if math.isfinite(value) else WORST_FITNESS

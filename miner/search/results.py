"""What a mining run produces: per-generation statistics, survivors and their segment metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from miner.search.scoring import Score
from miner.search.splits import Segments


@dataclass
class GenerationStats:
    generation: int
    best: float
    median: float
    unique_share: float
    scored: int
    memo_skipped: int
    cache_hit_rate: float
    candidates_per_s: float
    failed: int
    seconds: float
    gated: dict[str, int] = field(default_factory=dict)  # new candidates failing each degeneracy gate
    pool_size: int = 0
    pool_valid_rank_ic: float = math.nan


@dataclass
class SegmentMetrics:
    rank_ic: float
    icir: float
    turnover: float
    coverage: float
    ic: float = math.nan


@dataclass
class Survivor:
    name: str
    formula: str
    size: int
    lookback: int
    train_fitness: float
    segments: dict[str, SegmentMetrics]
    decay: dict[int, float] = field(default_factory=dict)
    half_life: float = math.nan


@dataclass(frozen=True)
class Admission:
    """How survivors were admitted: the hurdle on valid t-statistics for the formulas tested."""

    scored: int  # distinct formulas scored in the run
    examined: int  # candidates examined on valid (hall of fame and pool)
    tests: int  # the hypotheses the hurdle controls for (`survivors.tests`)
    method: str
    alpha: float
    hurdle: float  # the t the best candidate had to reach


@dataclass
class MiningResult:
    survivors: list[Survivor]
    hall_of_fame: list[Score]
    logbook: list[GenerationStats]
    rejected: dict[str, str]
    data_fingerprint: str
    segments: Segments
    admission: Admission | None = None

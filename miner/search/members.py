"""The factors a run compares and combines, as members: each evaluated once, standardised for
combination (`evaluation.combine.standardize`) and scored on every segment; and the zoo pick, a zoo
set's top factors by signed valid rank IC. Shared by the search's factor pool and the baseline report."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation import combine, metrics
from miner.config import ExperimentConfig
from miner.errors import ConfigError, FormulaError
from miner.lang import Evaluator
from miner.market import MarketData
from miner.market.labels import experiment_label
from miner.search.splits import Segments, make_segments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A factor taking part in a comparison: its values standardised for combination and its mean
    rank IC on each segment."""

    name: str
    formula: str
    standardized: np.ndarray
    rank_ic: dict[str, float]

    @property
    def sign(self) -> float:
        """The direction the train segment gives it (0 without a train rank IC)."""
        train = self.rank_ic["train"]
        return math.copysign(1.0, train) if math.isfinite(train) and train != 0.0 else 0.0

    def signed_rank_ic(self, segment: str) -> float:
        return self.sign * self.rank_ic[segment]


@dataclass(frozen=True)
class ZooPick:
    """The `top_k` factors of a zoo set with the best signed valid rank IC, best first."""

    set_name: str
    members: list[Member]


@dataclass(frozen=True)
class Context:
    """A run's market, label, segments and metric settings."""

    market: MarketData
    label: np.ndarray
    segments: Segments
    min_names: int

    @classmethod
    def of(cls, config: ExperimentConfig, market: MarketData) -> Context:
        label = experiment_label(market, config.label)
        segments = make_segments(market.dates, config.splits, config.embargo, config.source)
        return cls(market, label, segments, config.fitness.min_names)


def members_of(
    named_formulas: Sequence[tuple[str, str]], context: Context, evaluator: Evaluator | None = None
) -> list[Member]:
    """Each formula evaluated, standardised and scored on every segment."""
    evaluator = evaluator or Evaluator(context.market)
    return [
        member_of(name, formula, evaluator.evaluate(formula), context) for name, formula in named_formulas
    ]


def member_of(name: str, formula: str, values: np.ndarray, context: Context) -> Member:
    """A factor's `values` standardised and scored on every segment (`formula` names it in a composite)."""
    standardized = combine.standardize(values)
    series = metrics.rank_ic(standardized, context.label, context.min_names)
    rank_ic = {
        segment: float(metrics.ic_stats(series[rows])["mean"])
        for segment, rows in context.segments.as_dict().items()
    }
    return Member(name, formula, standardized, rank_ic)


def pick_zoo(set_name: str, top_k: int, context: Context, where: str = "baselines.zoo") -> ZooPick:
    """The set's `top_k` factors by signed valid rank IC (only the best k are kept in memory)."""
    best: list[Member] = []
    for member in zoo_members(set_name, context, where):
        if math.isfinite(member.signed_rank_ic("valid")):
            best = sorted([*best, member], key=lambda m: -m.signed_rank_ic("valid"))[:top_k]
    return ZooPick(set_name, best)


def zoo_members(set_name: str, context: Context, where: str) -> Iterator[Member]:
    """The set's factors one at a time, each evaluated and scored; a factor the market cannot
    evaluate (e.g. a sector neutralisation on bars without sectors) is left out with a warning.
    An unknown set is a `ConfigError` that starts with `where` (the option or key naming it)."""
    from miner.zoo import load_zoo

    try:
        factors = load_zoo(set_name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    evaluator = Evaluator(context.market)
    for factor in factors:
        try:
            values = evaluator.evaluate(factor.formula)
        except FormulaError as exc:
            log.warning("zoo %s: %s left out: %s", set_name, factor.id, exc)
            continue
        yield member_of(factor.id, factor.formula, values, context)

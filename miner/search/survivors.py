"""Honest admission: hall-of-fame candidates are admitted on the valid segment only; test metrics are
computed for the survivors and reported, never used."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from evaluation import forward_returns, metrics
from evaluation.fitness import SurvivorThresholds, admit
from evaluation.labels import DEFAULT_HORIZONS
from miner.config import ExperimentConfig, SurvivorSpec
from miner.lang import Evaluator, lookback
from miner.market import MarketData
from miner.search.results import SegmentMetrics, Survivor
from miner.search.scoring import Score
from miner.search.splits import Segments


class SurvivorSelection:
    """Admits candidates in order of train fitness: valid rank IC in the train direction, turnover,
    coverage, and |correlation| below the cap with every survivor admitted before and every
    library factor."""

    def __init__(
        self,
        config: ExperimentConfig,
        data: MarketData,
        label: np.ndarray,
        segments: Segments,
        library_factors: Mapping[str, np.ndarray],
    ) -> None:
        self.config = config
        self.data = data
        self.label = label
        self.segments = segments
        self.library_factors = library_factors

    def select(self, candidates: list[Score]) -> tuple[list[Survivor], dict[str, str]]:
        """The survivors and, per rejected formula, why it was not admitted."""
        rules = self.config.survivors
        evaluator = Evaluator(self.data)
        admitted: list[tuple[Survivor, np.ndarray]] = []
        rejected: dict[str, str] = {}
        ranked_labels = {
            name: metrics.prepare_label(self.label, rows=rows)
            for name, rows in self.segments.as_dict().items()
        }
        decay_labels = self._decay_labels()
        for score in sorted(candidates, key=lambda s: -s.fitness[0]):
            if len(admitted) >= rules.max_survivors:
                break
            values = evaluator.evaluate(score.formula)
            seg = {
                name: self._segment_metrics(values, rows, ranked_labels[name])
                for name, rows in self.segments.as_dict().items()
            }
            reason = admission_failure(seg["train"], seg["valid"], rules)
            if reason is None:
                reason = self._too_correlated(values, admitted, rules.max_correlation)
            if reason is not None:
                rejected[score.formula] = reason
                continue
            name = f"{self.config.name}_{len(admitted) + 1:03d}"
            survivor = Survivor(
                name, score.formula, score.size, lookback(score.formula), score.fitness[0], seg
            )
            self._add_decay(survivor, values, decay_labels)
            admitted.append((survivor, values))
        return [s for s, _ in admitted], rejected

    def _segment_metrics(
        self, values: np.ndarray, rows: slice, ranked_label: metrics.LabelRanks
    ) -> SegmentMetrics:
        return segment_metrics(values, self.label, ranked_label, rows, self.config.fitness.min_names)

    def _too_correlated(
        self, values: np.ndarray, admitted: list[tuple[Survivor, np.ndarray]], limit: float
    ) -> str | None:
        others = [(s.name, v) for s, v in admitted] + list(self.library_factors.items())
        for name, other in others:
            rho = metrics.factor_correlation(values, other, rows=self.segments.valid)
            if math.isfinite(rho) and abs(rho) >= limit:
                return f"|correlation| {abs(rho):.2f} with {name} on valid >= {limit}"
        return None

    def _decay_labels(self) -> dict[int, np.ndarray]:
        """Forward returns at the horizons survivors' IC decay is measured on."""
        price = self.data.field(self.config.label.price)
        return {h: forward_returns(price, h, self.config.label.delay) for h in DEFAULT_HORIZONS}

    def _add_decay(self, survivor: Survivor, values: np.ndarray, labels: dict[int, np.ndarray]) -> None:
        decay = metrics.ic_decay(
            values, labels, rows=self.segments.valid, min_names=self.config.fitness.min_names
        )
        survivor.decay = {int(h): float(v) for h, v in decay.items()}
        survivor.half_life = float(metrics.half_life(decay))


def segment_metrics(
    values: np.ndarray, label: np.ndarray, ranked_label: metrics.LabelRanks, rows: slice, min_names: int
) -> SegmentMetrics:
    """A factor's rank IC, ICIR, turnover, coverage and IC on the rows of one segment (`ranked_label`
    is `metrics.prepare_label(label, rows=rows)`)."""
    stats = metrics.ic_stats(metrics.rank_ic_fast(values, ranked_label, min_names=min_names)[rows])
    pearson = metrics.ic_stats(metrics.ic(values, label, min_names=min_names, rows=rows)[rows])
    return SegmentMetrics(
        rank_ic=stats["mean"],
        icir=stats["icir"],
        turnover=metrics.factor_turnover(values, rows=rows),
        coverage=metrics.coverage(values, universe=np.isfinite(label), rows=rows),
        ic=pearson["mean"],
    )


def admission_failure(train: SegmentMetrics, valid: SegmentMetrics, rules: SurvivorSpec) -> str | None:
    """Why a candidate is not admitted on valid (`evaluation.fitness.admit`), or None."""
    thresholds = SurvivorThresholds(rules.min_abs_rank_ic, rules.max_turnover, rules.min_coverage)
    stats = {"rank_ic_mean": valid.rank_ic, "turnover": valid.turnover, "coverage": valid.coverage}
    admitted, reason = admit(stats, train.rank_ic, thresholds)
    return None if admitted else f"valid segment: {reason}"

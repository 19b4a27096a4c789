"""Honest admission: candidates (the hall of fame and the pool's mined factors) are admitted on the
valid segment only, against a hurdle that controls for how many formulas the run tested; test
metrics are computed for the survivors and reported, never used."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation import combine, metrics
from evaluation.fitness import SurvivorThresholds, admit, hac_tstat
from evaluation.labels import DEFAULT_HORIZONS
from evaluation.multiple_testing import first_hurdle, significant
from miner.config import ExperimentConfig, SurvivorSpec
from miner.lang import Evaluator, lookback
from miner.market import MarketData
from miner.market.labels import experiment_label
from miner.search.results import Admission, SegmentMetrics, Survivor
from miner.search.scoring import Score
from miner.search.splits import Segments


def hac_lag(dates: int, horizon: int) -> int:
    """Newey-West lag for a per-date IC series: the overlap of `horizon`-day labels, and at least
    the usual rule floor(4 (dates / 100) ** (2/9)) for the series' own autocorrelation."""
    return max(horizon - 1, math.floor(4 * (max(dates, 1) / 100) ** (2 / 9)))


@dataclass
class Examined:
    """A candidate evaluated on every segment, with its valid t-statistic in its train direction."""

    score: Score
    values: np.ndarray
    segments: dict[str, SegmentMetrics]
    valid_t: float


class SurvivorSelection:
    """Admits candidates on valid: a t-statistic hurdle that grows with the number of formulas the
    run tested (`survivors.hurdle`), the thresholds, |correlation| below the cap with every survivor
    admitted before, every library factor and every locked pool factor (the zoo pick), and with
    `require_gain` a better valid rank IC of the ridge combination of those factors. Candidates are
    taken in order of train |ICIR|; test metrics are computed for survivors and only reported."""

    def __init__(
        self,
        config: ExperimentConfig,
        data: MarketData,
        label: np.ndarray,
        segments: Segments,
        library_factors: Mapping[str, np.ndarray],
        locked: Sequence[tuple[str, np.ndarray]] = (),
        evaluator: Evaluator | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.label = label
        self.segments = segments
        self.library_factors = library_factors
        self.locked = locked  # (name, standardised values) of factors the survivors must add to
        self.evaluator = evaluator or Evaluator(data)  # the run's, whose cache holds the pool's factors

    def select(
        self, candidates: list[Score], tested: int
    ) -> tuple[list[Survivor], dict[str, str], Admission]:
        """The survivors, per rejected formula why it was not admitted, and the hurdle applied."""
        rules = self.config.survivors
        examined = self._examine(candidates)
        tests = max(tested if rules.tests == "scored" else 0, len(examined), 1)
        method = rules.hurdle
        if method == "none":
            passed = np.ones(len(examined), dtype=bool)
            hurdle = -math.inf
        else:
            passed = significant([e.valid_t for e in examined], method, rules.alpha, tests, rules.t_min)
            hurdle = first_hurdle(method, rules.alpha, tests, rules.t_min)
        admitted: list[tuple[Survivor, np.ndarray]] = []
        rejected: dict[str, str] = {}
        decay_labels = self._decay_labels()
        gain_base = self._combined_valid_ic([]) if rules.require_gain else math.nan
        mined_standardized: list[np.ndarray] = []  # the survivors', for the gain rule
        order = sorted(
            range(len(examined)), key=lambda i: -abs(np.nan_to_num(examined[i].segments["train"].icir))
        )
        for i in order:
            if len(admitted) >= rules.max_survivors:
                break
            candidate = examined[i]
            reason = admission_failure(candidate.segments["train"], candidate.segments["valid"], rules)
            if reason is None and not passed[i]:
                reason = (
                    f"valid t {candidate.valid_t:.2f} does not clear the {method} hurdle for {tests} "
                    f"tested formulas (first step t >= {hurdle:.2f})"
                )
            if reason is None:
                reason = self._too_correlated(candidate.values, admitted, rules.max_correlation)
            if reason is None and rules.require_gain:
                standardized = combine.standardize(candidate.values)
                with_it = self._combined_valid_ic([*mined_standardized, standardized])
                if not with_it > gain_base:
                    reason = (
                        f"the combination's valid rank IC {with_it:.4f} does not improve on {gain_base:.4f}"
                    )
                else:
                    gain_base = with_it
                    mined_standardized.append(standardized)
            if reason is not None:
                rejected[candidate.score.formula] = reason
                continue
            score = candidate.score
            name = f"{self.config.name}_{len(admitted) + 1:03d}"
            survivor = Survivor(
                name, score.formula, score.size, lookback(score.formula), score.fitness[0], candidate.segments
            )
            self._add_decay(survivor, candidate.values, decay_labels)
            admitted.append((survivor, candidate.values))
        admission = Admission(tested, len(examined), tests, method, rules.alpha, hurdle)
        return [s for s, _ in admitted], rejected, admission

    def _examine(self, candidates: list[Score]) -> list[Examined]:
        evaluator = self.evaluator
        ranked_labels = {
            name: metrics.prepare_label(self.label, rows=rows)
            for name, rows in self.segments.as_dict().items()
        }
        valid = self.segments.valid
        lag = hac_lag(valid.stop - valid.start, self.config.label.horizon)
        min_names = self.config.fitness.min_names
        out: list[Examined] = []
        seen: set[str] = set()
        for score in candidates:
            if score.formula in seen:
                continue
            seen.add(score.formula)
            values = evaluator.evaluate(score.formula)
            series = {
                name: metrics.rank_ic_fast(values, ranked_labels[name], min_names=min_names)[rows]
                for name, rows in self.segments.as_dict().items()
            }
            seg = {
                name: segment_metrics_of(series[name], values, self.label, rows, min_names)
                for name, rows in self.segments.as_dict().items()
            }
            sign = (
                math.copysign(1.0, seg["train"].rank_ic) if math.isfinite(seg["train"].rank_ic) else math.nan
            )
            out.append(Examined(score, values, seg, sign * hac_tstat(series["valid"], lag)))
        return out

    def _combined_valid_ic(self, mined_standardized: Sequence[np.ndarray]) -> float:
        """Valid rank IC of the ridge combination of the locked factors and the standardised mined
        ones (0 for none)."""
        members = [v for _, v in self.locked] + list(mined_standardized)
        if not members:
            return 0.0
        segments = self.segments
        min_names = self.config.fitness.min_names
        try:
            fitted = combine.fit("ridge", members, self.label, segments.train, segments.valid, min_names)
        except ValueError:
            return math.nan
        return fitted.valid_rank_ic

    def _too_correlated(
        self, values: np.ndarray, admitted: list[tuple[Survivor, np.ndarray]], limit: float
    ) -> str | None:
        others = [(s.name, v) for s, v in admitted] + list(self.library_factors.items()) + list(self.locked)
        for name, other in others:
            rho = metrics.factor_correlation(values, other, rows=self.segments.valid)
            if math.isfinite(rho) and abs(rho) >= limit:
                return f"|correlation| {abs(rho):.2f} with {name} on valid >= {limit}"
        return None

    def _decay_labels(self) -> dict[int, np.ndarray]:
        """Forward returns at the horizons survivors' IC decay is measured on."""
        spec = self.config.label
        return {
            h: experiment_label(self.data, spec.model_copy(update={"horizon": h})) for h in DEFAULT_HORIZONS
        }

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
    series = metrics.rank_ic_fast(values, ranked_label, min_names=min_names)[rows]
    return segment_metrics_of(series, values, label, rows, min_names)


def segment_metrics_of(
    rank_ic_series: np.ndarray, values: np.ndarray, label: np.ndarray, rows: slice, min_names: int
) -> SegmentMetrics:
    """`segment_metrics` of a factor whose per-date rank IC series on the rows is at hand."""
    stats = metrics.ic_stats(rank_ic_series)
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

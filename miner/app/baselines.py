"""What every mining run is measured against, on its own splits and label.

* the survivors' composites, one per combination method (`evaluation.combine`);
* the zoo baseline: the `baselines.zoo` set's `top_k` factors with the best signed valid rank IC
  (each signed by its train rank IC), their mean signed rank IC and their composite;
* zoo + mined: one composite of the zoo's top k and the survivors, against the zoo-only composite.

Every choice (the top k, signs, weights, penalties) is made on train and valid; test figures are
computed from those choices and only reported.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich import box
from rich.table import Table

from evaluation import combine, metrics
from miner.config import ExperimentConfig
from miner.market import MarketData
from miner.search.members import Context, Member, ZooPick, members_of, pick_zoo

log = logging.getLogger(__name__)

SEGMENTS = ("train", "valid", "test")
QUANTILES = 5  # long-short is the top minus the bottom quintile's mean label


@dataclass(frozen=True)
class SegmentStats:
    rank_ic: float
    icir: float
    long_short: float  # mean top-minus-bottom quintile label per date


@dataclass(frozen=True)
class CompositeResult:
    method: str
    formula: str
    weights: dict[str, float]  # member name -> weight on its standardised values
    penalty: float
    segments: dict[str, SegmentStats]


@dataclass(frozen=True)
class BaselineReport:
    survivors: list[Member]
    composites: dict[str, CompositeResult]  # by method
    zoo: ZooPick | None
    zoo_composite: CompositeResult | None
    zoo_plus_mined: CompositeResult | None

    def metrics(self) -> dict[str, float]:
        """The run's baseline figures by MLflow metric name (a composite that could not be formed,
        e.g. of no survivors, has none; a mean over no factor is NaN)."""
        values: dict[str, float] = {}
        for segment in SEGMENTS:
            values[f"survivors_mean_{segment}_rank_ic"] = mean_signed_rank_ic(self.survivors, segment)
            if self.zoo is not None:
                values[f"zoo_top_k_{segment}_rank_ic"] = mean_signed_rank_ic(self.zoo.members, segment)
        named: dict[str, CompositeResult | None] = {f"composite_{m}": c for m, c in self.composites.items()}
        named |= {"zoo_composite": self.zoo_composite, "zoo_plus_mined_composite": self.zoo_plus_mined}
        for prefix, result in named.items():
            if result is None:
                continue
            for segment, stats in result.segments.items():
                values[f"{prefix}_{segment}_rank_ic"] = stats.rank_ic
                values[f"{prefix}_{segment}_icir"] = stats.icir
                values[f"{prefix}_{segment}_long_short"] = stats.long_short
        return values

    def choices(self) -> dict:
        """Every choice the report made, as plain data (formulas, signs, weights): what test
        figures are computed from (`miner.app.research.score_choices`)."""
        return {
            "survivors": [{"name": m.name, "formula": m.formula, "sign": m.sign} for m in self.survivors],
            "composites": {method: _composite_choice(c) for method, c in self.composites.items()},
            "zoo": None
            if self.zoo is None
            else {
                "set": self.zoo.set_name,
                "top_k": [{"name": m.name, "formula": m.formula, "sign": m.sign} for m in self.zoo.members],
            },
            "zoo_composite": _composite_choice(self.zoo_composite),
            "zoo_plus_mined_composite": _composite_choice(self.zoo_plus_mined),
        }


def _composite_choice(result: CompositeResult | None) -> dict | None:
    if result is None:
        return None
    penalty = result.penalty if math.isfinite(result.penalty) else None
    return {"method": result.method, "formula": result.formula, "weights": result.weights, "penalty": penalty}


def mean_signed_rank_ic(members: Sequence[Member], segment: str) -> float:
    """Mean over the members of their rank IC on the segment, each in its train direction."""
    values = [m.signed_rank_ic(segment) for m in members if m.sign]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


# ------------------------------------------------------------------------------------------------


def composite_of(method: str, members: Sequence[Member], context: Context) -> CompositeResult | None:
    """The members' composite by `method`, fitted on train (penalty on valid), or None when the
    members give no composite (e.g. no member has a train rank IC)."""
    if not members:
        return None
    standardized = [m.standardized for m in members]
    segments = context.segments
    try:
        fitted = combine.fit(
            method, standardized, context.label, segments.train, segments.valid, context.min_names
        )
    except ValueError as exc:
        log.warning("no %s composite of %s: %s", method, ", ".join(m.name for m in members), exc)
        return None
    values = combine.composite(standardized, fitted.weights)
    formula = combine.composite_formula([m.formula for m in members], fitted.weights)
    weights = {m.name: float(w) for m, w in zip(members, fitted.weights) if w}
    stats = {segment: segment_stats(values, context, rows) for segment, rows in segments.as_dict().items()}
    return CompositeResult(method, formula, weights, fitted.penalty, stats)


def segment_stats(values: np.ndarray, context: Context, rows: slice) -> SegmentStats:
    """Mean rank IC, ICIR and mean long-short of a factor over the segment's rows."""
    stats = metrics.ic_stats(metrics.rank_ic(values, context.label, context.min_names, rows=rows)[rows])
    spread = metrics.long_short(metrics.quantile_returns(values, context.label, QUANTILES, rows=rows))[rows]
    finite = spread[np.isfinite(spread)]
    return SegmentStats(stats["mean"], stats["icir"], float(finite.mean()) if finite.size else math.nan)


def baseline_report(
    config: ExperimentConfig,
    market: MarketData,
    survivors: Sequence[tuple[str, str]],
    zoo: ZooPick | None = None,
) -> BaselineReport:
    """The report of a run whose survivors are `(name, formula)` pairs; `zoo` reuses a pick made
    on the same market and config (else it is made here, unless `baselines.zoo` is none)."""
    context = Context.of(config, market)
    spec = config.baselines
    mined = members_of(survivors, context)
    composites = {m: c for m in combine.METHODS if (c := composite_of(m, mined, context)) is not None}
    if zoo is None and spec.zoo != "none":
        zoo = pick_zoo(spec.zoo, spec.top_k, context, f"{config.source}: baselines.zoo")
    picked = [] if zoo is None else zoo.members
    return BaselineReport(
        survivors=mined,
        composites=composites,
        zoo=zoo,
        zoo_composite=composite_of(spec.method, picked, context),
        zoo_plus_mined=composite_of(spec.method, [*picked, *mined], context) if zoo else None,
    )


# ------------------------------------------------------------------------------------------------


def baseline_table(report: BaselineReport) -> Table:
    """Mined vs the baselines: mean rank IC per segment (choices on train / valid, test reported)."""
    table = Table(
        title="mined vs baselines: mean rank IC (chosen on train / valid; test is reported only)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("what")
    for segment in SEGMENTS:
        table.add_column(segment, justify="right")
    table.add_column("members", justify="right")
    rows: list[tuple[str, dict[str, float], int]] = [
        ("survivors (mean, signed)", _means(report.survivors), len(report.survivors))
    ]
    for method, result in report.composites.items():
        rows.append((f"survivors' {method} composite", _ics(result), len(result.weights)))
    if report.zoo is not None:
        zoo = f"zoo {report.zoo.set_name} top {len(report.zoo.members)}"
        rows.append((f"{zoo} (mean, signed)", _means(report.zoo.members), len(report.zoo.members)))
        for label, chosen in (
            (f"{zoo} composite", report.zoo_composite),
            ("zoo + mined composite", report.zoo_plus_mined),
        ):
            if chosen is not None:
                rows.append((f"{label} ({chosen.method})", _ics(chosen), len(chosen.weights)))
    for label, values, count in rows:
        table.add_row(label, *(f"{values[s]:+.4f}" for s in SEGMENTS), str(count))
    return table


def verdict(report: BaselineReport) -> str | None:
    """One line: does mining add to the zoo (zoo + mined vs zoo-only composite), on valid and test?"""
    if report.zoo_composite is None or report.zoo_plus_mined is None:
        return None
    parts = []
    for segment in ("valid", "test"):
        alone = report.zoo_composite.segments[segment].rank_ic
        both = report.zoo_plus_mined.segments[segment].rank_ic
        change = f" ({both / alone - 1:+.0%})" if alone > 0 else ""
        parts.append(f"{segment} {both:+.4f} vs {alone:+.4f}{change}")
    return f"zoo + mined vs zoo-only composite rank IC: {'; '.join(parts)}"


def _means(members: Sequence[Member]) -> dict[str, float]:
    return {s: mean_signed_rank_ic(members, s) for s in SEGMENTS}


def _ics(result: CompositeResult) -> dict[str, float]:
    return {s: result.segments[s].rank_ic for s in SEGMENTS}

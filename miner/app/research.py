"""Comparing searches without ever choosing on the test years.

A comparison runs in two steps that cannot mix: `frozen_run` mines and builds the baseline report on
a market whose test period is withheld (`withhold_test`: every value from the test segment's first
row on is NaN, so nothing there can be read) and freezes every choice as plain data (formulas,
signs, composite weights); `score_choices` then evaluates those frozen choices on the full market.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation import metrics
from miner.app.baselines import baseline_report
from miner.config import ExperimentConfig
from miner.lang import Evaluator
from miner.market import MarketData
from miner.search.evolution import Miner
from miner.search.members import Context, ZooPick
from miner.search.splits import Segments


def withhold_test(market: MarketData, segments: Segments) -> MarketData:
    """The market with every daily and intraday value from the test segment's first row on NaN."""
    first = segments.test.start

    def cut(array: np.ndarray) -> np.ndarray:
        out = np.array(array, dtype=np.float64)
        out[first:] = np.nan
        return out

    return dataclasses.replace(
        market,
        fields={name: cut(a) for name, a in market.fields.items()},
        intraday={name: cut(a) for name, a in market.intraday.items()},
    )


@dataclass(frozen=True)
class FrozenRun:
    """One search's choices, made without the test period, and what it cost."""

    search: str
    seed: int
    candidates: int  # distinct formulas scored
    mining_seconds: float
    report_seconds: float
    best_train_fitness: list[float]  # the best fitness scored so far, by generation (round)
    choices: dict


def frozen_run(config: ExperimentConfig, withheld: MarketData, zoo: ZooPick | None = None) -> FrozenRun:
    """Mine `withheld` (a market whose test period `withhold_test` removed) and freeze the survivors,
    composites and zoo pick (`BaselineReport.choices`)."""
    started = time.perf_counter()
    result = Miner(config, withheld, zoo_pick=zoo).run()
    mined = time.perf_counter()
    report = baseline_report(config, withheld, [(s.name, s.formula) for s in result.survivors], zoo)
    return FrozenRun(
        search=config.gp.search,
        seed=config.seed,
        candidates=sum(g.scored for g in result.logbook),
        mining_seconds=mined - started,
        report_seconds=time.perf_counter() - mined,
        best_train_fitness=list(itertools.accumulate((g.best for g in result.logbook), max)),
        choices=report.choices(),
    )


def score_choices(choices: dict, context: Context, segment: str = "test") -> dict[str, float]:
    """Mean rank IC of frozen choices on one segment of the full market: the survivors' and the zoo
    top k's mean in their train direction, and each composite formula's."""
    evaluator = Evaluator(context.market)
    rows = context.segments.as_dict()[segment]

    def rank_ic(formula: str) -> float:
        series = metrics.rank_ic(evaluator.evaluate(formula), context.label, context.min_names, rows=rows)
        return float(metrics.ic_stats(series[rows])["mean"])

    def signed_mean(entries: Sequence[dict]) -> float:
        values = [e["sign"] * rank_ic(e["formula"]) for e in entries if e["sign"]]
        return float(np.mean(values)) if values else math.nan

    scores = {"survivors_mean_rank_ic": signed_mean(choices["survivors"])}
    for method, composite in choices["composites"].items():
        scores[f"composite_{method}_rank_ic"] = rank_ic(composite["formula"])
    if choices["zoo"] is not None:
        scores["zoo_top_k_rank_ic"] = signed_mean(choices["zoo"]["top_k"])
    for key in ("zoo_composite", "zoo_plus_mined_composite"):
        if choices[key] is not None:
            scores[f"{key}_rank_ic"] = rank_ic(choices[key]["formula"])
    return scores

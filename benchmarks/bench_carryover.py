"""Where out-of-sample skill comes from: does train fitness, or valid, rank candidates for later years?

On `bench_research.py --tune`'s split (the stooq panel cut at 2015-12-31, 500 names; train 2008-2011,
valid 2012-2013, 2014-2015 playing test), it runs the GP and random search at the GP's budget with
`experiments/daily_us.yaml` (the test period withheld while mining), then evaluates every candidate
that passed the gates on the whole cut panel and prints how train fitness and the valid rank IC (in
the train direction) order the candidates' valid and 2014-2015 rank IC.

    python benchmarks/bench_carryover.py [--seed N] [--variant NAME] [--data PATH]

`--variant` is one of `bench_research.py`'s config variants (e.g. no_niche: the search before
novelty by behaviour).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from bench_research import DEFAULT_DATA, TUNE, VARIANTS, experiment, load
from scipy.stats import spearmanr

from evaluation import metrics
from miner.app.research import withhold_test
from miner.lang import Evaluator
from miner.market import MarketData
from miner.search.evolution import Miner
from miner.search.members import Context

TOP = (20, 200)  # the fittest candidates compared


def signed_segment_ics(formulas: list[str], context: Context, evaluator: Evaluator) -> np.ndarray:
    """(candidates, 3): each formula's mean rank IC on train, valid and test, signed by train's."""
    segments = context.segments.as_dict()
    prepared = {name: metrics.prepare_label(context.label, rows=rows) for name, rows in segments.items()}
    out = np.full((len(formulas), 3), np.nan)
    for i, formula in enumerate(formulas):
        values = evaluator.evaluate(formula)
        means = [
            float(np.nanmean(metrics.rank_ic_fast(values, prepared[name], context.min_names)[rows]))
            for name, rows in segments.items()
        ]
        sign = math.copysign(1.0, means[0]) if math.isfinite(means[0]) else math.nan
        out[i] = sign * np.array(means)
    return out


def carryover(fitness: np.ndarray, ics: np.ndarray) -> dict[str, float]:
    """Rank correlations and top-k means of one search's candidates (fitness order)."""
    keep = np.isfinite(ics).all(axis=1)
    fitness, ics = fitness[keep], ics[keep]
    order = np.argsort(-fitness, kind="stable")
    out = {
        "candidates": float(len(fitness)),
        "train fitness vs valid, all": spearmanr(fitness, ics[:, 1])[0],
        "valid vs test, all": spearmanr(ics[:, 1], ics[:, 2])[0],
    }
    top = order[: TOP[1]]
    out[f"train fitness vs valid, {TOP[1]} fittest"] = spearmanr(fitness[top], ics[top, 1])[0]
    fittest = order[: TOP[0]]
    out[f"{TOP[0]} fittest: mean valid"] = float(ics[fittest, 1].mean())
    out[f"{TOP[0]} fittest: mean test"] = float(ics[fittest, 2].mean())
    best_valid = np.argsort(-ics[:, 1], kind="stable")[: TOP[0]]
    out[f"{TOP[0]} best on valid: mean test"] = float(ics[best_valid, 2].mean())
    return out


def mined_candidates(market: MarketData, data: Path, seed: int, overrides: dict) -> dict[str, list]:
    """Per search, (formula, train fitness) of every candidate that passed the gates."""
    budget = replace(TUNE, overrides=overrides)
    gp_config = experiment(budget, data, seed, "gp")
    withheld = withhold_test(market, Context.of(gp_config, market).segments)
    out: dict[str, list] = {}
    budget_of_gp: int | None = None
    for search in ("gp", "random"):
        miner = Miner(experiment(budget, data, seed, search, budget_of_gp), withheld)
        result = miner.run()
        budget_of_gp = budget_of_gp or sum(g.scored for g in result.logbook)
        out[search] = [(s.formula, s.fitness[0]) for s in miner.memo.values() if s.valid]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="a bench_research config variant")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    market = load(args.data, TUNE.instruments, TUNE.end)
    overrides = VARIANTS[args.variant] if args.variant else {}
    context = Context.of(experiment(TUNE, args.data, args.seed, "gp"), market)
    evaluator = Evaluator(market)
    rows = {}
    for search, scored in mined_candidates(market, args.data, args.seed, overrides).items():
        formulas = [f for f, _ in scored]
        fitness = np.array([fit for _, fit in scored])
        rows[search] = carryover(fitness, signed_segment_ics(formulas, context, evaluator))
    print(f"# Carry-over on the tuning split (seed {args.seed}, variant {args.variant or 'as shipped'})\n")
    print("| statistic (rank IC in the train direction; test = 2014-2015) | GP | random |")
    print("|---|---:|---:|")
    for key in rows["gp"]:
        digits = 0 if key == "candidates" else 4
        print(f"| {key} | {rows['gp'][key]:.{digits}f} | {rows['random'][key]:.{digits}f} |")


if __name__ == "__main__":
    main()

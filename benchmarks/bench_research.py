"""Research benchmark: does mining beat the zoo and random search out of sample?

On the stooq panel (1,501 US stocks, `suspect` rows dropped): train 2008-2013, valid 2014-2015,
test 2016-2017, label the next-day close-to-close return after a one-day delay. For each seed it
compares, at equal candidate budgets,
(a) the zoo: the set's top k factors by signed valid rank IC, and their ew and ridge composites;
(b) random search (`gp.search: random`) scoring exactly as many distinct formulas as the GP did;
(c) the GP as `experiments/daily_us.yaml` configures it, its budget sized for about 5 minutes;
each with its survivors' mean signed rank IC, their ew and ridge composites, and zoo + mined vs
zoo-only (ridge composites), then the medians over seeds and the ratios issue 15 is judged on. A
run that admits no survivor delivers no factor: its survivors' figures count as 0.

Nothing is chosen on the test years, by construction (`miner.app.research`): every search, zoo
pick, sign, weight and penalty is chosen on a market whose test period is NaN (`withhold_test`),
the choices are frozen as plain data (JSON, written with `--choices FILE`), and only then are they
scored on the full market's test rows.

    python benchmarks/bench_research.py [--quick] [--zoo SET] [--choices FILE] [--data PATH]
    python benchmarks/bench_research.py --from-choices FILE     # re-score frozen choices, no mining
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml
from joblib.externals.loky import get_reusable_executor

from miner.app.baselines import composite_of
from miner.app.research import frozen_run, score_choices, withhold_test
from miner.config import ExperimentConfig, config_from_dict
from miner.market import MarketData
from miner.search.members import Context, ZooPick, pick_zoo

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "us_stooq_daily_2008_2017.parquet"
SPLITS = {
    "train": {"start": "2008-01-02", "end": "2013-12-31"},
    "valid": {"start": "2014-01-02", "end": "2015-12-31"},
    "test": {"start": "2016-01-04", "end": "2017-11-10"},
}
SEGMENTS = ("valid", "test")


TUNING_SPLITS = {  # --tune: the real test years are cut off; 2014-2015 (the real valid) plays test
    "train": {"start": "2008-01-02", "end": "2011-12-30"},
    "valid": {"start": "2012-01-03", "end": "2013-12-31"},
    "test": {"start": "2014-01-02", "end": "2015-12-31"},
}


def merged(base: dict, change: dict) -> dict:
    """`base` with `change` laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in change.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


POOL_ON_ZOO = {"enabled": True, "zoo": "alpha158"}
FIRST_TUNING = {  # experiments/daily_us.yaml's rules when the first variants were compared
    "fitness": {"objective": "icir"},
    "survivors": {"min_abs_rank_ic": 0.015, "hurdle": "holm", "max_correlation": 0.7},
}
FIRST_VARIANTS: dict[str, dict] = {
    "before": {  # the search as issue 15 found it: no gates, no hurdle, no pool
        "fitness": {"gates": {"enabled": False}},
        "survivors": {"hurdle": "none"},
    },
    "gates_holm": {},  # the degeneracy gates and the Holm hurdle (both on by default)
    "pool": {"pool": {"enabled": True}, "survivors": {"require_gain": True}},
    "pool_zoo": {"pool": POOL_ON_ZOO, "survivors": {"require_gain": True}},
    "pool_zoo_tstat": {
        "pool": POOL_ON_ZOO,
        "survivors": {"require_gain": True},
        "fitness": {"objective": "tstat"},
    },
    "pool_zoo_corr05": {
        "pool": {**POOL_ON_ZOO, "max_correlation": 0.5},
        "survivors": {"require_gain": True, "max_correlation": 0.5},
    },
    # the hurdle alone decides significance: no separate minimum |rank IC|
    "ic0_holm": {"survivors": {"min_abs_rank_ic": 0.0}},
    "ic0_bh": {"survivors": {"min_abs_rank_ic": 0.0, "hurdle": "bh"}},
    "ic0_bh_tstat": {
        "survivors": {"min_abs_rank_ic": 0.0, "hurdle": "bh"},
        "fitness": {"objective": "tstat"},
    },
    "ic0_bh_corr05": {"survivors": {"min_abs_rank_ic": 0.0, "hurdle": "bh", "max_correlation": 0.5}},
    "ic0_bh_corr05_meanstd": {
        "survivors": {"min_abs_rank_ic": 0.0, "hurdle": "bh", "max_correlation": 0.5},
        "fitness": {"objective": "mean_std"},
    },
    "pool_ic0_bh_corr05_meanstd": {
        "pool": {"enabled": True},
        "survivors": {"min_abs_rank_ic": 0.0, "hurdle": "bh", "max_correlation": 0.5, "require_gain": True},
        "fitness": {"objective": "mean_std"},
    },
    "pool_ic0_bh": {
        "pool": {"enabled": True},
        "survivors": {"require_gain": True, "min_abs_rank_ic": 0.0, "hurdle": "bh"},
    },
    "pool_zoo_ic0_holm": {"pool": POOL_ON_ZOO, "survivors": {"require_gain": True, "min_abs_rank_ic": 0.0}},
    "pool_zoo_ic0_bh": {
        "pool": POOL_ON_ZOO,
        "survivors": {"require_gain": True, "min_abs_rank_ic": 0.0, "hurdle": "bh"},
    },
}
VARIANTS: dict[str, dict] = {
    **{name: merged(FIRST_TUNING, change) for name, change in FIRST_VARIANTS.items()},
    "shipped": {},  # experiments/daily_us.yaml as it is
    "no_niche": {"gp": {"niche_correlation": None}},  # as shipped before novelty by behaviour
    # novelty by behaviour: one candidate per idea in selection and in the hall of fame
    "niche09": {"gp": {"niche_correlation": 0.9}},
    "niche07": {"gp": {"niche_correlation": 0.7}},
    "niche05": {"gp": {"niche_correlation": 0.5}},
    "niche07_hof30": {"gp": {"niche_correlation": 0.7, "hall_of_fame": 30}},
    "niche07_pool_zoo": {
        "gp": {"niche_correlation": 0.7},
        "pool": POOL_ON_ZOO,
        "survivors": {"require_gain": True},
    },
}
"""Config changes compared by `--tune`, laid over `experiments/daily_us.yaml` (the first ones over its
rules as they were then, `FIRST_TUNING`)."""


@dataclass(frozen=True)
class Budget:
    population: int
    generations: int
    seeds: tuple[int, ...]
    zoo: str
    instruments: int | None  # the first n instruments only (None: all)
    splits: dict = field(default_factory=lambda: SPLITS)
    overrides: dict = field(default_factory=dict)  # config changes (deep-merged)
    end: str | None = None  # rows after this date are dropped (--tune: the real test years)


FULL = Budget(population=300, generations=8, seeds=(1, 2, 3), zoo="alpha158", instruments=None)
QUICK = Budget(population=40, generations=2, seeds=(1,), zoo="classic", instruments=300)
TUNE = Budget(
    population=300,
    generations=8,
    seeds=(1,),
    zoo="alpha158",
    instruments=500,
    splits=TUNING_SPLITS,
    end=TUNING_SPLITS["test"]["end"],
)
TOP_K = 10


def load(path: Path, instruments: int | None, end: str | None = None) -> MarketData:
    frame = pd.read_parquet(path)
    frame = frame[~frame["suspect"]].drop(columns="suspect")
    if end is not None:
        frame = frame[pd.to_datetime(frame["date"]) <= pd.Timestamp(end)]
    if instruments is not None:
        frame = frame[frame["instrument"].isin(sorted(frame["instrument"].unique())[:instruments])]
    return MarketData.from_frame(frame, source=str(path))


def experiment(
    budget: Budget, data: Path, seed: int, search: str, candidates: int | None = None
) -> ExperimentConfig:
    """`experiments/daily_us.yaml` on the stooq splits, at the benchmark's budget."""
    raw = merged(yaml.safe_load((REPO / "experiments" / "daily_us.yaml").read_text()), budget.overrides)
    raw.update(
        name=f"research_{search}",
        seed=seed,
        data={"source": "file", "path": str(data)},
        splits={**budget.splits, "embargo": raw["splits"].get("embargo", 0)},
        baselines={"zoo": budget.zoo, "top_k": TOP_K, "method": "ridge"},
        tracking={"enabled": False},
    )
    raw["gp"].update(population=budget.population, generations=budget.generations, search=search)
    if candidates is not None:
        raw["gp"]["budget"] = candidates
    return config_from_dict(raw, f"bench_research ({search}, seed {seed})")


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def cpu_seconds() -> float:
    """CPU time of this process and of its worker processes that have ended."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def measured_run(config: ExperimentConfig, withheld: MarketData, zoo: ZooPick) -> dict:
    """`frozen_run` with its CPU seconds, workers included: they start inside the run and are
    stopped at its end, so every run pays its own start-up (a machine shared with other jobs makes
    wall time a poor measure; CPU time is what the run cost)."""
    get_reusable_executor().shutdown(wait=True)
    before = cpu_seconds()
    run = frozen_run(config, withheld, zoo)
    get_reusable_executor().shutdown(wait=True)
    return {**asdict(run), "cpu_seconds": cpu_seconds() - before}


# --- step 1: every choice, with the test period withheld -------------------------------------


def choose(withheld: MarketData, budget: Budget, data: Path) -> dict:
    """Zoo pick and composites, then per seed the GP and random search at the GP's budget: plain data."""
    config = experiment(budget, data, budget.seeds[0], "gp")
    context = Context.of(config, withheld)
    seconds, zoo = timed(lambda: pick_zoo(budget.zoo, TOP_K, context, "--zoo"))
    composites = {method: composite_of(method, zoo.members, context) for method in ("ew", "ridge")}
    choices: dict = {
        "zoo": {
            "set": budget.zoo,
            "seconds": seconds,
            "top_k": [{"name": m.name, "formula": m.formula, "sign": m.sign} for m in zoo.members],
            "composites": {method: c.formula for method, c in composites.items() if c is not None},
        },
        "runs": [],
    }
    for seed in budget.seeds:
        gp = measured_run(experiment(budget, data, seed, "gp"), withheld, zoo)
        rand = measured_run(experiment(budget, data, seed, "random", gp["candidates"]), withheld, zoo)
        for run in (gp, rand):
            print(
                f"seed {seed}: {run['search']} scored {run['candidates']} formulas in "
                f"{run['mining_seconds']:.0f} s ({run['cpu_seconds']:.0f} CPU s), load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        choices["runs"] += [gp, rand]
    return choices


# --- step 2: the frozen choices on the full market ------------------------------------------


def score(choices: dict, market: MarketData, budget: Budget, data: Path) -> dict:
    context = Context.of(experiment(budget, data, budget.seeds[0], "gp"), market)
    zoo = choices["zoo"]
    zoo_scores = {}
    for segment in SEGMENTS:
        frozen = {
            "survivors": zoo["top_k"],
            "composites": {m: {"formula": f} for m, f in zoo["composites"].items()},
        }
        frozen |= {"zoo": None, "zoo_composite": None, "zoo_plus_mined_composite": None}
        zoo_scores[segment] = score_choices(frozen, context, segment)
    runs = [
        {**run, "scores": {segment: score_choices(run["choices"], context, segment) for segment in SEGMENTS}}
        for run in choices["runs"]
    ]
    return {"zoo": zoo_scores, "runs": runs}


# --- tables ---------------------------------------------------------------------------------


def cell(value: float | None, digits: int = 4) -> str:
    return "" if value is None or value != value else f"{value:+.{digits}f}"


def run_table(results: dict, segment: str, budget: Budget) -> str:
    lines = [
        f"| seed | search | distinct candidates | mining s | survivors | single mean {segment} rank IC "
        f"| ew composite | ridge composite | zoo + mined (ridge) | zoo-only (ridge) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    zoo = results["zoo"][segment]
    lines.append(
        f"| all | zoo {budget.zoo} top {TOP_K} (a) | {len(load_zoo_ids(budget.zoo))} formulas | | {TOP_K} "
        f"| {cell(zoo['survivors_mean_rank_ic'])} | {cell(zoo.get('composite_ew_rank_ic'))} "
        f"| {cell(zoo.get('composite_ridge_rank_ic'))} | | {cell(zoo.get('composite_ridge_rank_ic'))} |"
    )
    for run in results["runs"]:
        label = "random search (b)" if run["search"] == "random" else "GP (c)"
        mined = [
            cell(delivered(run, key, segment)) if run["choices"]["survivors"] else "none: 0"
            for key in ("survivors_mean_rank_ic", "composite_ew_rank_ic", "composite_ridge_rank_ic")
        ]
        s = run["scores"][segment]
        lines.append(
            f"| {run['seed']} | {label} | {run['candidates']} | {run['mining_seconds']:.0f} "
            f"| {len(run['choices']['survivors'])} | {' | '.join(mined)} "
            f"| {cell(s.get('zoo_plus_mined_composite_rank_ic'))} | {cell(s.get('zoo_composite_rank_ic'))} |"
        )
    return "\n".join(lines)


def load_zoo_ids(name: str) -> list[str]:
    from miner.zoo import load_zoo

    return [f.id for f in load_zoo(name)]


def delivered(run: dict, key: str, segment: str) -> float:
    """A run's figure; a run that admitted no survivor delivers no factor, so its survivors' mean and
    composites count as 0 (its zoo + mined composite is the zoo's)."""
    value = run["scores"][segment].get(key, float("nan"))
    return 0.0 if value != value and not run["choices"]["survivors"] else value


def median_of(runs: Sequence[dict], search: str, key: str, segment: str) -> float:
    values = [delivered(r, key, segment) for r in runs if r["search"] == search]
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b == b and a == a and b > 0 else "n/a (denominator <= 0)"


def summary_table(results: dict, segment: str) -> str:
    runs = results["runs"]
    keys = {
        "single survivors, mean signed rank IC": "survivors_mean_rank_ic",
        "ew composite": "composite_ew_rank_ic",
        "ridge composite": "composite_ridge_rank_ic",
        "zoo + mined composite (ridge)": "zoo_plus_mined_composite_rank_ic",
    }
    zoo = results["zoo"][segment]
    lines = [
        f"| median over seeds, {segment} rank IC | zoo top {TOP_K} | random search | GP |",
        "|---|---:|---:|---:|",
    ]
    zoo_cells = {
        "survivors_mean_rank_ic": zoo["survivors_mean_rank_ic"],
        "composite_ew_rank_ic": zoo.get("composite_ew_rank_ic"),
        "composite_ridge_rank_ic": zoo.get("composite_ridge_rank_ic"),
        "zoo_plus_mined_composite_rank_ic": None,
    }
    for label, key in keys.items():
        lines.append(
            f"| {label} | {cell(zoo_cells[key])} | {cell(median_of(runs, 'random', key, segment))} "
            f"| {cell(median_of(runs, 'gp', key, segment))} |"
        )
    gp = {key: median_of(runs, "gp", key, segment) for key in keys.values()}
    rand = {key: median_of(runs, "random", key, segment) for key in keys.values()}
    zoo_only = zoo.get("composite_ridge_rank_ic") or float("nan")
    lines += [
        "",
        f"| ratio ({segment}, medians of seeds) | value | issue 15's target |",
        "|---|---:|---:|",
        f"| GP ridge composite / random ridge composite | {ratio(gp['composite_ridge_rank_ic'], rand['composite_ridge_rank_ic'])} | >= 1.2x |",
        f"| GP ew composite / random ew composite | {ratio(gp['composite_ew_rank_ic'], rand['composite_ew_rank_ic'])} | |",
        f"| (zoo + GP) / zoo-only composite (ridge) | {ratio(gp['zoo_plus_mined_composite_rank_ic'], zoo_only)} | >= 1.15x |",
        f"| (zoo + random) / zoo-only composite (ridge) | {ratio(rand['zoo_plus_mined_composite_rank_ic'], zoo_only)} | |",
        f"| GP single mean / zoo top-{TOP_K} mean | {ratio(gp['survivors_mean_rank_ic'], zoo['survivors_mean_rank_ic'])} | >= 1x |",
    ]
    return "\n".join(lines)


def git_state() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return head.stdout.strip() or "unknown"


def survivors_table(choices: dict) -> str:
    lines = ["| seed | search | survivor (in its train direction) |", "|---:|---|---|"]
    for run in choices["runs"]:
        formulas = [f"{'' if e['sign'] > 0 else '-'}[{e['formula']}]" for e in run["choices"]["survivors"]]
        lines.append(
            f"| {run['seed']} | {run['search']} | {'; '.join(f'`{f}`' for f in formulas) or 'none'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 names, 1 seed, tiny budget")
    parser.add_argument(
        "--tune",
        action="store_true",
        help="choose defaults: the real test years cut off, 2014-2015 as test, 500 names, 1 seed",
    )
    parser.add_argument(
        "--variant", action="append", choices=sorted(VARIANTS), help="a config variant (repeatable)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="the seeds to run (default: the mode's)")
    parser.add_argument("--zoo", help="zoo set for (a) and the zoo + mined composites")
    parser.add_argument("--choices", type=Path, help="write the frozen choices (JSON) here")
    parser.add_argument(
        "--from-choices", type=Path, help="score choices frozen by an earlier run (no mining; same options)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    budget = TUNE if args.tune else QUICK if args.quick else FULL
    if args.zoo:
        budget = replace(budget, zoo=args.zoo)
    if args.seeds:
        budget = replace(budget, seeds=tuple(args.seeds))
    market = load(args.data, budget.instruments, budget.end)
    for variant in args.variant or ([] if not args.tune else list(VARIANTS)) or [None]:
        chosen = budget if variant is None else replace(budget, overrides=VARIANTS[variant])
        choices_file = args.choices
        if choices_file is not None and variant is not None:
            choices_file = choices_file.with_name(f"{choices_file.stem}_{variant}{choices_file.suffix}")
        report(args, chosen, market, variant, choices_file)


def report(
    args: argparse.Namespace,
    budget: Budget,
    market: MarketData,
    variant: str | None,
    choices_file: Path | None,
) -> None:
    """Choose (or read the frozen choices), then score them and print the tables."""
    if args.from_choices:
        choices = json.loads(args.from_choices.read_text())
    else:
        started = time.perf_counter()
        segments = Context.of(experiment(budget, args.data, budget.seeds[0], "gp"), market).segments
        choices = choose(withhold_test(market, segments), budget, args.data)
        choices |= {"git": git_state(), "seconds": time.perf_counter() - started, "load": os.getloadavg()[0]}
        choices |= {"variant": variant, "overrides": budget.overrides}
        choices = json.loads(json.dumps(choices))  # frozen: plain data only
        if choices_file:
            choices_file.write_text(json.dumps(choices, indent=2))
    started = time.perf_counter()
    results = score(choices, market, budget, args.data)
    scoring = time.perf_counter() - started

    mode = "tune" if args.tune else "quick" if args.quick else "full"
    print(f"\n## Research benchmark ({mode}{f', variant {variant}' if variant else ''})\n")
    print(
        f"git {choices.get('git', 'unknown')}, {market.N} instruments x {market.T} dates, zoo {budget.zoo}, "
        f"population {budget.population} x {budget.generations} generations (2 islands), seeds "
        f"{list(budget.seeds)}, splits {json.dumps(budget.splits)}, config changes "
        f"{json.dumps(budget.overrides)}; choosing {choices.get('seconds', float('nan')):.0f} s (zoo pick "
        f"{choices['zoo']['seconds']:.0f} s, load average at the end {choices.get('load', float('nan')):.1f}), "
        f"scoring the frozen choices {scoring:.0f} s"
        + (f" (re-scored from {args.from_choices})" if args.from_choices else "")
        + "\n",
        flush=True,
    )
    for segment in ("test", "valid"):
        print(f"### {segment}\n")
        print(run_table(results, segment, budget) + "\n")
        print(summary_table(results, segment) + "\n")
    print("### survivors\n")
    print(survivors_table(choices) + "\n")
    print("### cost and search progress per run\n")
    print(
        "| seed | search | mining wall s | report wall s | CPU s (workers included) "
        "| best train fitness after the first / last generation |"
    )
    print("|---:|---|---:|---:|---:|---|")
    for run in results["runs"]:
        best = run["best_train_fitness"]
        print(
            f"| {run['seed']} | {run['search']} | {run['mining_seconds']:.0f} | {run['report_seconds']:.0f} "
            f"| {run['cpu_seconds']:.0f} | {best[0]:.3f} / {best[-1]:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

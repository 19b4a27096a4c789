"""Mining-loop throughput on the real S&P 500 panel: our Miner vs a plain DEAP loop over pandas.

One process prints Markdown tables for
(a) our `Miner` (population 500, 5 generations, loky with 2 workers) searching the same language
    as the pandas loop below (the same 16 primitives, the same windows): candidates scored per
    second per generation and overall, subexpression-cache hit rate, memo-skipped duplicates, and
    how busy the workers were (each scoring batch is timed inside its worker by wrapping
    `score_batch`); this like-for-like run is the one the issue's target is checked on;
(b) the same for our full default language (elementwise + timeseries + cross_section operators
    without the 0/1 logical ones: medians, regressions, group operators...), whose dearer
    operators make each candidate cost more;
(c) the loop users write today: `gp.PrimitiveSetTyped` over wide pandas DataFrames, `gp.compile`,
    fitness = rank-IC ICIR from `rank(axis=1)` + `corrwith(axis=1)`, `algorithms.varAnd`, one
    process, for a fixed number of evaluations;
then the ratios against the issue's target (>= 20x the pandas loop, and above gplearn's quoted
66 programs/s, which is not run here). All loops score the same rows: the train segment of the
split below, with the history before it (our Miner's train panel).

    python benchmarks/bench_mining.py [--quick] [--profile] [--repeats N] [--data PATH]

`--profile` adds a sequential cProfile run of our loop and a table of where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import platform
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import deap
import numba
import numpy as np
import pandas as pd
from deap import algorithms, base, creator, gp, tools
from joblib.externals.loky import get_reusable_executor

import miner.search.evolution
from evaluation import forward_returns, metrics
from miner.config import ExperimentConfig, config_from_dict
from miner.lang import Call, Evaluator, Name, Num, to_string
from miner.market import MarketData
from miner.search.evolution import Miner
from miner.search.language import enabled_operators
from miner.search.panels import Panel
from miner.search.results import GenerationStats
from miner.search.scoring import ScoringSpec, score_batch
from miner.search.splits import make_segments
from operators import Kind

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_sp500_5yr_daily.parquet"
REPO = Path(__file__).resolve().parents[1]
SPLITS = {
    "train": {"start": "2013-02-08", "end": "2016-06-30"},
    "valid": {"start": "2016-07-01", "end": "2017-06-30"},
    "test": {"start": "2017-07-01", "end": "2018-02-07"},
}
WINDOWS = [1, 2, 3, 5, 10, 20, 40, 60]
PANDAS_PRIMITIVES = ("add", "sub", "mul", "div", "ts_corr", "neg", "abs", "rank", "ts_mean", "ts_std",
                     "ts_sum", "ts_max", "ts_min", "ts_rank", "delay", "delta")  # fmt: skip
"""The pandas loop's primitives, named as our operators (`pandas_pset` checks the two agree)."""
FIELDS = ["open", "high", "low", "close", "volume", "vwap", "returns"]
GPLEARN_PER_S = 66.0  # quoted in the issue, not measured here
ISSUE_PANDAS_PER_S = 4.5  # quoted in the issue
TARGET_RATIO = 20.0
Frame = pd.DataFrame


@dataclass(frozen=True)
class Budget:
    population: int
    generations: int
    n_jobs: int
    pandas_population: int
    pandas_evaluations: int


FULL = Budget(population=500, generations=5, n_jobs=2, pandas_population=100, pandas_evaluations=300)
QUICK = Budget(population=100, generations=2, n_jobs=2, pandas_population=30, pandas_evaluations=40)


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def load_text() -> str:
    one, five, fifteen = load()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line[:2] != "??"]
    return f"{head}" + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else " (clean)")


SHARED_LANGUAGE = {"families": [], "include": list(PANDAS_PRIMITIVES)}
FULL_LANGUAGE = {
    "families": ["elementwise", "timeseries", "cross_section"],
    "exclude": ["and_", "or_", "not_", "eq", "ne"],
}


def mining_config(
    budget: Budget,
    data_path: Path,
    seed: int,
    operators: dict,
    cache_mb: int | None = None,
    niche_correlation: float | None = None,
) -> ExperimentConfig:
    parallel = {"backend": "loky", "n_jobs": budget.n_jobs}
    if cache_mb is not None:
        parallel["worker_cache_mb"] = cache_mb
    raw = {
        "name": "bench_mining",
        "seed": seed,
        "data": {"source": "file", "path": str(data_path)},
        "splits": SPLITS,
        "operators": operators,
        "gp": {
            "population": budget.population,
            "generations": budget.generations,
            "windows": WINDOWS,
            "niche_correlation": niche_correlation,
        },
        "parallel": parallel,
        "tracking": {"enabled": False},
    }
    return config_from_dict(raw, "bench_mining")


# --- (a) our Miner ---------------------------------------------------------------------------


def one_call_per_operator(config: ExperimentConfig, market: MarketData) -> list[str]:
    """A formula calling each enabled operator once on plain fields."""
    formulas = []
    for spec in enabled_operators(config):
        series = iter(["close", "volume", "open"])
        args: list[Name | Num] = []
        for arg in spec.args:
            if arg.kind is Kind.SERIES:
                args.append(Name(next(series)))
            elif arg.kind is Kind.WINDOW:
                args.append(Num(5.0))
            elif arg.kind is Kind.LAG:
                args.append(Num(2.0))
            elif arg.kind is Kind.GROUP:
                args.append(Name(sorted(market.groups)[0]))
            else:
                value = 2.0 if arg.default is None else arg.default
                value = value if arg.lower is None else max(value, arg.lower)
                value = value if arg.upper is None else min(value, arg.upper)
                args.append(Num(float(value)))
        formulas.append(to_string(Call(spec.name, tuple(args))))
    return formulas


def warm_up(config: ExperimentConfig, market: MarketData, label: np.ndarray) -> float:
    """Compile (or load from numba's cache) every enabled kernel and metric in this process, for
    in-memory and memory-mapped panels alike, so that workers find them in the cache on disk."""
    started = time.perf_counter()
    formulas = one_call_per_operator(config, market)
    rows = 120
    small = market.slice_rows(0, rows)
    small_label = np.ascontiguousarray(label[:rows])
    small_label.setflags(write=False)
    panel = Panel(small, small_label, slice(0, rows - 2))
    directory = Path(tempfile.mkdtemp(prefix="bench-mining-warm-"))
    try:
        for handle in (panel, panel.save(directory)):
            score_batch(handle, [(f, 3) for f in formulas], ScoringSpec())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    values = Evaluator(small).evaluate("rank(close)")
    for measure in (metrics.rank_ic, metrics.ic):  # survivor selection runs these in this process
        measure(values, label[:rows], rows=slice(0, rows - 2))
    return time.perf_counter() - started


def _timed_score_batch(log_path: str, handle, batch, spec, residual=None):
    """`score_batch`, timed inside whichever process runs it (one line per batch)."""
    started = time.perf_counter()
    out = score_batch(handle, batch, spec, residual)
    with open(log_path, "a") as log:
        log.write(f"{os.getpid()} {started!r} {time.perf_counter()!r} {len(batch)}\n")
    return out


@dataclass
class GenerationRecord:
    stats: GenerationStats
    ended: float
    load1: float


@dataclass
class MinerRun:
    records: list[GenerationRecord]
    started: float
    ended: float
    batches: list[tuple[int, float, float, int]]  # pid, start, end, formulas
    cache_hits: int
    cache_misses: int
    scored_sizes: list[int]
    survivors: int
    population: int


TRIVIAL_REASONS = ("constant formula", "over a 1-row window", "of an argument with itself")


def run_miner(config: ExperimentConfig, market: MarketData) -> MinerRun:
    """One timed `Miner.run()`, starting from no worker processes (loky keeps idle workers for
    reuse, so a run after another would otherwise skip the start-up a real run pays)."""
    get_reusable_executor().shutdown(wait=True)
    records: list[GenerationRecord] = []

    def on_generation(stats: GenerationStats) -> None:
        records.append(GenerationRecord(stats, time.perf_counter(), load()[0]))

    log_dir = Path(tempfile.mkdtemp(prefix="bench-mining-log-"))
    log_path = log_dir / "batches.txt"
    log_path.touch()
    miner.search.evolution.score_batch = functools.partial(_timed_score_batch, str(log_path))
    try:
        mining = Miner(config, market, on_generation=on_generation)
        started = time.perf_counter()
        result = mining.run()
        ended = time.perf_counter()
    finally:
        miner.search.evolution.score_batch = score_batch
    batches = []
    for line in log_path.read_text().splitlines():
        pid, start, end, n = line.split()
        batches.append((int(pid), float(start), float(end), int(n)))
    shutil.rmtree(log_dir, ignore_errors=True)
    sizes = [
        s.size for s in mining.memo.values() if s.reason is None or not s.reason.endswith(TRIVIAL_REASONS)
    ]
    return MinerRun(
        records, started, ended, batches, mining._cache_hits, mining._cache_misses, sizes,
        len(result.survivors), config.gp.population * config.gp.islands,
    )  # fmt: skip


def scoring_seconds(stats: GenerationStats) -> float:
    return stats.scored / stats.candidates_per_s if stats.candidates_per_s > 0 else 0.0


def scoring_rate(run: MinerRun) -> float:
    """Candidates scored / total scoring time of a run (the figure the target is checked on)."""
    return sum(r.stats.scored for r in run.records) / sum(scoring_seconds(r.stats) for r in run.records)


def report_miner(run: MinerRun, n_jobs: int) -> dict[str, float]:
    print("| gen | individuals | scored | memo skipped | pruned trivial | failed | cache hit rate "
          "| scoring s | **candidates/s** | worker busy s | worker utilization | other parent s "
          "| best fitness | load 1m |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    previous_end = run.started
    totals = {"scored": 0, "skipped": 0, "pruned": 0, "scoring": 0.0, "busy": 0.0}
    first_batch_latency = float("nan")
    for record in run.records:
        s = record.stats
        window = (previous_end, record.ended)
        mine = [b for b in run.batches if window[0] <= b[1] < window[1]]
        busy = sum(end - start for _, start, end, _ in mine)
        seconds = scoring_seconds(s)
        if s.generation == 0 and mine:
            first_batch_latency = min(b[1] for b in mine) - (record.ended - s.seconds)
        pruned = run.population - s.scored - s.memo_skipped
        utilization = busy / (n_jobs * seconds) if seconds > 0 else float("nan")
        print(
            f"| {s.generation} | {run.population} | {s.scored} | {s.memo_skipped} | {pruned} | {s.failed} "
            f"| {s.cache_hit_rate:.1%} | {seconds:.2f} | **{s.candidates_per_s:.1f}** | {busy:.2f} "
            f"| {utilization:.0%} | {s.seconds - seconds:.2f} | {s.best:.4f} | {record.load1:.2f} |"
        )
        totals["scored"] += s.scored
        totals["skipped"] += s.memo_skipped
        totals["pruned"] += pruned
        totals["scoring"] += seconds
        totals["busy"] += busy
        previous_end = record.ended
    generations_s = sum(r.stats.seconds for r in run.records)
    wall = run.ended - run.started
    before_first = run.records[0].ended - run.records[0].stats.seconds - run.started if run.records else 0.0
    after_last = run.ended - run.records[-1].ended if run.records else 0.0
    steady = [r.stats for r in run.records if r.stats.generation > 0]
    steady_scored = sum(s.scored for s in steady)
    steady_seconds = sum(scoring_seconds(s) for s in steady)
    lookups = run.cache_hits + run.cache_misses
    individuals = run.population * len(run.records)
    by_pid: dict[int, float] = {}
    for pid, start, end, _ in run.batches:
        by_pid[pid] = by_pid.get(pid, 0.0) + end - start
    overall = {
        "scoring": totals["scored"] / totals["scoring"] if totals["scoring"] else float("nan"),
        "steady": steady_scored / steady_seconds if steady_seconds else float("nan"),
        "wall": totals["scored"] / wall,
        "busy": totals["scored"] / totals["busy"] if totals["busy"] else float("nan"),
    }
    print(
        f"| **all** | {individuals} | {totals['scored']} | {totals['skipped']} | {totals['pruned']} | | "
        f"{run.cache_hits / lookups if lookups else 0:.1%} | {totals['scoring']:.2f} | **{overall['scoring']:.1f}** "
        f"| {totals['busy']:.2f} | {totals['busy'] / (n_jobs * totals['scoring']):.0%} | "
        f"{generations_s - totals['scoring']:.2f} | | |"
    )
    print()
    print("| our Miner, overall | value |\n|---|---:|")
    print(f"| candidates scored | {totals['scored']} (mean size {np.mean(run.scored_sizes):.1f} nodes) |")
    print(f"| **scored / total scoring time** | **{overall['scoring']:.1f} /s** |")
    print(f"| scored / scoring time of generations 1.. (workers warm) | {overall['steady']:.1f} /s |")
    print(f"| **scored / Miner.run() wall time** (worker start-up, memmaps, survivors included) "
          f"| **{overall['wall']:.1f} /s** |")  # fmt: skip
    print(f"| scored / summed worker busy time (per busy process) | {overall['busy']:.1f} /s |")
    print(f"| Miner.run() wall time | {wall:.2f} s |")
    print(f"| of which: before generation 0 (population, memmap write) | {before_first:.2f} s |")
    print(f"| of which: generations (scoring + variation + bookkeeping) | {generations_s:.2f} s |")
    print(
        f"| of which: after the last generation (survivor selection on valid, shutdown) | {after_last:.2f} s |"
    )
    print(f"| gen 0: first batch started after (worker spawn + import) | {first_batch_latency:.2f} s |")
    print(
        f"| worker processes that ran batches | {len(by_pid)} for n_jobs={n_jobs}"
        + (f" (**{len(by_pid) - n_jobs} replaced during the run**)" if len(by_pid) > n_jobs else "")
        + f"; busy {', '.join(f'{t:.1f}' for t in sorted(by_pid.values(), reverse=True))} s |"
    )
    print(f"| subexpression-cache hit rate (all lookups) | {run.cache_hits / lookups if lookups else 0:.1%} "
          f"({run.cache_hits} of {lookups}) |")  # fmt: skip
    print(f"| memo-skipped duplicates | {totals['skipped']} of {individuals} individuals "
          f"({totals['skipped'] / individuals:.1%}) |")  # fmt: skip
    print(f"| pruned as trivial (never scored) | {totals['pruned']} |")
    print(f"| survivors admitted on valid | {run.survivors} |")
    if len(by_pid) > n_jobs:
        print(
            "\nWorkers were replaced: joblib's loky backend restarts a worker whose memory grew by more "
            "than 300 MB after its first task (its memory-leak guard), and each worker's subexpression "
            "cache may hold `parallel.worker_cache_mb` of panels. A replaced worker re-imports the "
            "package, reloads the panel and starts with an empty cache."
        )
    return overall


# --- (b) the plain DEAP + pandas loop --------------------------------------------------------


def _div(x: Frame, y: Frame) -> Frame:
    return (x / y).replace([np.inf, -np.inf], np.nan)


def _ts_mean(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).mean()


def _ts_std(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=2).std()


def _ts_sum(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).sum()


def _ts_max(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).max()


def _ts_min(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).min()


def _ts_rank(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).rank(pct=True)


def _ts_corr(x: Frame, y: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=2).corr(y).replace([np.inf, -np.inf], np.nan)


def _delay(x: Frame, d: int) -> Frame:
    return x.shift(d)


def _delta(x: Frame, d: int) -> Frame:
    return x.diff(d)


def _rank(x: Frame) -> Frame:
    return x.rank(axis=1, pct=True)


def _window(d: int) -> int:
    """Identity on windows: DEAP's typed generators need a primitive for every type."""
    return d


def pandas_pset() -> gp.PrimitiveSetTyped:
    pset = gp.PrimitiveSetTyped("MAIN", [Frame] * len(FIELDS), Frame)
    pset.renameArguments(**{f"ARG{i}": name for i, name in enumerate(FIELDS)})
    for name, fn in (
        ("add", pd.DataFrame.add),
        ("sub", pd.DataFrame.sub),
        ("mul", pd.DataFrame.mul),
        ("div", _div),
    ):
        pset.addPrimitive(fn, [Frame, Frame], Frame, name=name)
    pset.addPrimitive(_ts_corr, [Frame, Frame, int], Frame, name="ts_corr")
    pset.addPrimitive(pd.DataFrame.__neg__, [Frame], Frame, name="neg")
    pset.addPrimitive(pd.DataFrame.abs, [Frame], Frame, name="abs")
    pset.addPrimitive(_rank, [Frame], Frame, name="rank")
    for name, fn in (("ts_mean", _ts_mean), ("ts_std", _ts_std), ("ts_sum", _ts_sum), ("ts_max", _ts_max),
                     ("ts_min", _ts_min), ("ts_rank", _ts_rank), ("delay", _delay), ("delta", _delta)):  # fmt: skip
        pset.addPrimitive(fn, [Frame, int], Frame, name=name)
    pset.addPrimitive(_window, [int], int, name="window")
    for w in WINDOWS:
        pset.addTerminal(w, int)
    names = {p.name for prims in pset.primitives.values() for p in prims} - {"window"}
    assert names == set(PANDAS_PRIMITIVES), names ^ set(PANDAS_PRIMITIVES)
    return pset


def pandas_fitness(factor: Frame, label: Frame, rows: slice, size: int, parsimony: float) -> tuple[float]:
    """|rank-IC ICIR| on the train rows (names valid in both, >= 10 per date) minus parsimony."""
    if not isinstance(factor, Frame):
        return (-1e9,)
    f = factor.iloc[rows].replace([np.inf, -np.inf], np.nan)
    y = label.iloc[rows]
    both = f.notna() & y.notna()
    ic = f.where(both).rank(axis=1).corrwith(y.where(both).rank(axis=1), axis=1)
    ic = ic[both.sum(axis=1) >= 10].dropna()
    if len(ic) < 20 or not ic.std() > 0:
        return (-1e9,)
    return (abs(ic.mean() / ic.std()) - parsimony * size,)


def tree_size(individual: gp.PrimitiveTree) -> int:
    return sum(node.name != "window" for node in individual)


@dataclass
class PandasGeneration:
    generation: int
    evaluated: int
    seconds: float
    failed: int
    mean_size: float
    load1: float


def pandas_evaluator(
    pset: gp.PrimitiveSetTyped, wide: dict[str, Frame], label: Frame, rows: slice, parsimony: float
) -> Callable[[gp.PrimitiveTree], tuple[float]]:
    """A user's fitness function: compile the tree, call it on the fields, rank IC ICIR on `rows`."""
    fields = [wide[name] for name in FIELDS]

    def evaluate(individual: gp.PrimitiveTree) -> tuple[float]:
        try:
            with np.errstate(all="ignore"):
                factor = gp.compile(individual, pset)(*fields)
                return pandas_fitness(factor, label, rows, tree_size(individual), parsimony)
        except Exception:  # noqa: BLE001 - a user's loop gives a failing tree the worst fitness
            return (-1e9,)

    return evaluate


def run_pandas_loop(
    wide: dict[str, Frame], label: Frame, rows: slice, budget: Budget, config: ExperimentConfig
) -> tuple[list[PandasGeneration], float, list[gp.PrimitiveTree], gp.PrimitiveSetTyped]:
    """eaSimple's loop (select, varAnd, evaluate the invalid), stopped after the evaluation budget."""
    gp_cfg = config.gp
    if not hasattr(creator, "PandasFitness"):
        creator.create("PandasFitness", base.Fitness, weights=(1.0,))
        creator.create("PandasIndividual", gp.PrimitiveTree, fitness=creator.PandasFitness)
    pset = pandas_pset()
    toolbox = base.Toolbox()
    low, high = gp_cfg.init_depth
    toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=low - 1, max_=high - 1)
    toolbox.register("individual", tools.initIterate, creator.PandasIndividual, toolbox.expr)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("select", tools.selTournament, tournsize=gp_cfg.tournament_size)
    toolbox.register("mate", gp.cxOnePoint)
    toolbox.register("expr_mut", gp.genFull, min_=0, max_=2)
    toolbox.register("mutate", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
    for name in ("mate", "mutate"):
        toolbox.decorate(name, gp.staticLimit(key=lambda ind: ind.height, max_value=gp_cfg.max_depth - 1))
        toolbox.decorate(name, gp.staticLimit(key=len, max_value=gp_cfg.max_size))
    evaluate = pandas_evaluator(pset, wide, label, rows, config.fitness.parsimony)
    mutation = gp_cfg.mutation.subtree + gp_cfg.mutation.point + gp_cfg.mutation.shrink
    evaluated: list[gp.PrimitiveTree] = []
    random.seed(config.seed)
    started = time.perf_counter()
    population = toolbox.population(n=budget.pandas_population)
    done = 0
    generations = []
    generation = 0
    while done < budget.pandas_evaluations:
        if generation > 0:
            population = algorithms.varAnd(toolbox.select(population, len(population)), toolbox, gp_cfg.crossover,
                                           mutation)  # fmt: skip
        invalid = [ind for ind in population if not ind.fitness.valid][: budget.pandas_evaluations - done]
        t0 = time.perf_counter()
        for individual in invalid:
            individual.fitness.values = evaluate(individual)
        evaluated.extend(invalid)
        seconds = time.perf_counter() - t0
        done += len(invalid)
        failed = sum(ind.fitness.values[0] <= -1e9 for ind in invalid)
        sizes = [tree_size(ind) for ind in invalid]
        generations.append(
            PandasGeneration(generation, len(invalid), seconds, failed, float(np.mean(sizes)), load()[0])
        )
        if any(not ind.fitness.valid for ind in population):
            break  # the budget ran out inside this generation
        generation += 1
    return generations, time.perf_counter() - started, evaluated, pset


def replay(trees: list[gp.PrimitiveTree], evaluate: Callable[[gp.PrimitiveTree], tuple[float]]) -> float:
    """Candidates/s of the same trees through another fitness function."""
    started = time.perf_counter()
    for tree in trees:
        evaluate(tree)
    return len(trees) / (time.perf_counter() - started)


def pandas_rate(generations: list[PandasGeneration]) -> float:
    return sum(g.evaluated for g in generations) / sum(g.seconds for g in generations)


def report_pandas(generations: list[PandasGeneration], wall: float, budget: Budget) -> float:
    print("| gen | evaluated | failed | mean size | eval s | **candidates/s** | load 1m |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for g in generations:
        rate = g.evaluated / g.seconds if g.seconds else float("nan")
        print(
            f"| {g.generation} | {g.evaluated} | {g.failed} | {g.mean_size:.1f} | {g.seconds:.2f} | **{rate:.2f}** | {g.load1:.2f} |"
        )
    evaluated = sum(g.evaluated for g in generations)
    seconds = sum(g.seconds for g in generations)
    mean_size = sum(g.mean_size * g.evaluated for g in generations) / evaluated
    rate = pandas_rate(generations)
    print(
        f"| **all** | {evaluated} | {sum(g.failed for g in generations)} | {mean_size:.1f} | {seconds:.2f} | **{rate:.2f}** | |"
    )
    print(f"\npopulation {budget.pandas_population} (scaled down from 500 so that {budget.pandas_evaluations} "
          f"evaluations span several generations: at this speed 5 generations of 500 would take "
          f"~{5 * 500 / rate / 60:.0f} min); loop wall time {wall:.1f} s including variation.")  # fmt: skip
    return rate


# --- profile ---------------------------------------------------------------------------------

PROFILE_STAGES = [
    ("Miner.run (everything)", "miner/search/evolution.py", "run"),
    ("scoring (score_batch, in process)", "miner/search/scoring.py", "score_batch"),
    ("  evaluate formulas (Evaluator.evaluate)", "miner/lang/evaluator.py", "evaluate"),
    ("    numba compile at run time", "numba/core/dispatcher.py", "_compile_for_args"),
    ("  rank IC (rank_ic_fast)", "evaluation/metrics.py", "rank_ic_fast"),
    ("  turnover (factor_turnover)", "evaluation/metrics.py", "factor_turnover"),
    ("  coverage", "evaluation/metrics.py", "coverage"),
    ("  ic_stats", "evaluation/metrics.py", "ic_stats"),
    ("to_formula (DEAP tree -> formula)", "miner/search/language.py", "to_formula"),
    ("canonicalize (cache misses)", "miner/lang/printer.py", "canonicalize"),
    ("DEAP variation (Miner._vary)", "miner/search/evolution.py", "_vary"),
    ("duplicate immigrants", "miner/search/evolution.py", "_immigrants_for_duplicates"),
    ("triviality check", "miner/search/language.py", "triviality"),
    ("hall of fame update", "deap/tools/support.py", "update"),
    ("survivor selection on valid", "miner/search/evolution.py", "select_survivors"),
]


def profile_miner(config: ExperimentConfig, market: MarketData) -> None:
    """Our loop in one process under cProfile: where the time goes."""
    sequential = config.model_copy(update={"parallel": config.parallel.model_copy(update={"n_jobs": 1})})
    mining = Miner(sequential, market)
    profiler = cProfile.Profile()
    profiler.enable()
    mining.run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    table = stats.stats  # type: ignore[attr-defined]
    total = next(
        ct
        for (f, _, fn), (_, _, _, ct, _) in table.items()
        if f.endswith("miner/search/evolution.py") and fn == "run"
    )
    scored = sum(
        1 for s in mining.memo.values() if s.reason is None or not s.reason.endswith(TRIVIAL_REASONS)
    )
    print(f"sequential (n_jobs=1), population {config.gp.population}, {config.gp.generations} generations, "
          f"{scored} candidates scored, load {load_text()}\n")  # fmt: skip
    print(
        "| stage | calls | cumulative s | share of run | ms per scored candidate |\n|---|---:|---:|---:|---:|"
    )
    for label, file_suffix, function in PROFILE_STAGES:
        hits = [
            (nc, ct)
            for (f, _, fn), (_, nc, _, ct, _) in table.items()
            if f.endswith(file_suffix) and fn == function
        ]
        calls, seconds = sum(h[0] for h in hits), sum(h[1] for h in hits)
        print(f"| {label} | {calls} | {seconds:.2f} | {seconds / total:.0%} | {seconds / scored * 1e3:.2f} |")
    print("\ntop functions by own time:\n")
    print("| function | calls | own s | share |\n|---|---:|---:|---:|")
    rows = sorted(table.items(), key=lambda kv: -kv[1][2])[:15]
    for (file, line, function), (_, calls, own, _, _) in rows:
        where = "/".join(Path(file).parts[-2:])
        print(f"| `{where}:{line} {function}` | {calls} | {own:.2f} | {own / total:.0%} |")


# --- main ------------------------------------------------------------------------------------


def fresh_import_seconds() -> float:
    """Wall time of `import miner.search.scoring` in a new interpreter (a loky worker's start-up)."""
    code = "import time; t = time.perf_counter(); import miner.search.scoring; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def load_market(path: Path) -> tuple[MarketData, float]:
    started = time.perf_counter()
    market = MarketData.from_frame(pd.read_parquet(path), source=str(path))
    return market, time.perf_counter() - started


def report_repeats(pairs: list[tuple[float, float, float]]) -> float:
    """The interleaved (ours, pandas) runs of the same-language comparison; returns the median ratio."""
    print(f"\n## {len(pairs)} interleaved runs, same language (our Miner, then the pandas loop)\n")
    print(
        "| run | ours, candidates/s | pandas loop, candidates/s | ratio | load 1m after |\n|---:|---:|---:|---:|---:|"
    )
    for i, (ours, theirs, load1) in enumerate(pairs, 1):
        print(f"| {i} | {ours:.1f} | {theirs:.2f} | {ours / theirs:.1f}x | {load1:.2f} |")
    ratios = sorted(ours / theirs for ours, theirs, _ in pairs)
    print(f"\nmedian ratio {np.median(ratios):.1f}x (min {ratios[0]:.1f}x, max {ratios[-1]:.1f}x)")
    return float(np.median(ratios))


def report_comparison(
    ours: dict[str, dict[str, float]],
    theirs: float,
    full_panel: float,
    n_jobs: int,
    median_ratio: float | None,
) -> None:
    print("\n## comparison\n")
    print("| loop | candidates/s | vs the pandas loop |\n|---|---:|---:|")
    print(f"| plain DEAP + pandas, 1 process (measured) | {theirs:.2f} | 1.0x |")
    print(
        f"| plain DEAP + pandas, same trees on the whole panel | {full_panel:.2f} | {full_panel / theirs:.1f}x |"
    )
    print(
        f"| plain DEAP + pandas (issue's figure) | {ISSUE_PANDAS_PER_S:.1f} | {ISSUE_PANDAS_PER_S / theirs:.1f}x |"
    )
    print(f"| gplearn, no time-series operators (issue's figure, not run) | {GPLEARN_PER_S:.0f} "
          f"| {GPLEARN_PER_S / theirs:.1f}x |")  # fmt: skip
    for key, language in (("shared", "same language"), ("full", "full language")):
        rates = ours[key]
        bold = "**" if key == "shared" else ""
        print(f"| ours, {language}, {n_jobs} workers, scored / scoring time | {rates['scoring']:.1f} "
              f"| {bold}{rates['scoring'] / theirs:.1f}x{bold} |")  # fmt: skip
        print(f"| ours, {language}, generations 1.. (warm workers) | {rates['steady']:.1f} "
              f"| {rates['steady'] / theirs:.1f}x |")  # fmt: skip
        print(
            f"| ours, {language}, scored / Miner.run() wall | {rates['wall']:.1f} | {rates['wall'] / theirs:.1f}x |"
        )
        print(
            f"| ours, {language}, per busy worker process | {rates['busy']:.1f} | {rates['busy'] / theirs:.1f}x |"
        )
    ratio = ours["shared"]["scoring"] / theirs if median_ratio is None else median_ratio
    met = ratio >= TARGET_RATIO
    which = "" if median_ratio is None else "median of the interleaved runs "
    print(f"\ntarget (issue 5), checked like for like (same primitives): ours >= {TARGET_RATIO:.0f}x the pandas "
          f"loop: **{'met' if met else 'NOT met'}** ({which}{ratio:.1f}x; full language "
          f"{ours['full']['scoring'] / theirs:.1f}x); above gplearn's {GPLEARN_PER_S:.0f}/s: "
          f"**{'yes' if min(r['scoring'] for r in ours.values()) > GPLEARN_PER_S else 'no'}**. "
          f"Load at the end: {load_text()}.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--quick", action="store_true", help="population 100, 2 generations, 40 pandas evaluations"
    )
    parser.add_argument("--profile", action="store_true", help="also profile our loop in one process")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the same-language comparison this many times, ours and pandas in turn, "
                        "and check the target on the median ratio (a noisy machine moves single runs)")  # fmt: skip
    parser.add_argument("--worker-cache-mb", type=int, default=None,
                        help="parallel.worker_cache_mb for our Miner (default: the config's default)")  # fmt: skip
    parser.add_argument("--niche-correlation", type=float, default=None,
                        help="gp.niche_correlation for our Miner (default: off, as the config's default)")  # fmt: skip
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(
            f"{args.data}: not found (the real S&P panel lives in ../shared/data; see its README)"
        )
    budget = QUICK if args.quick else FULL
    started = time.perf_counter()

    print("# Mining loop: our Miner vs a plain DEAP loop over pandas\n")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_text()} (1/5/15 min) at start; "
          f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"numba {numba.__version__}, deap {deap.__version__}; git {git_state()}")  # fmt: skip
    market, load_s = load_market(args.data)
    niche = args.niche_correlation
    shared = mining_config(budget, args.data, args.seed, SHARED_LANGUAGE, args.worker_cache_mb, niche)
    full = mining_config(budget, args.data, args.seed, FULL_LANGUAGE, args.worker_cache_mb, niche)
    label = forward_returns(market.field("close"), shared.label.horizon, shared.label.delay)
    segments = make_segments(market.dates, shared.splits, shared.embargo, shared.source)
    rows = segments.train
    print(f"\npanel: `{args.data.name}`, {len(market.dates)} dates x {len(market.instruments)} instruments "
          f"(loaded in {load_s:.1f} s). Every loop evaluates rows 0..{rows.stop - 1} "
          f"({market.dates[0]}..{market.dates[rows.stop - 1]}, the train segment after its {segments.embargo}-row "
          f"embargo) and scores them against the next-day return (delay 1); windows {WINDOWS}; fitness "
          f"|rank-IC ICIR| - {shared.fitness.parsimony} x size.\n")  # fmt: skip

    warm = warm_up(full, market, label)
    imports = fresh_import_seconds()
    print(f"numba warm-up in this process before timing (compile, or load from the on-disk cache, every "
          f"enabled kernel): {warm:.1f} s. `import miner.search.scoring` in a fresh interpreter (what every "
          f"worker pays on start-up): {imports:.1f} s.\n")  # fmt: skip
    ours: dict[str, dict[str, float]] = {}
    for key, title, config in (
        ("shared", f"(a) our Miner, the pandas loop's language ({', '.join(PANDAS_PRIMITIVES)})", shared),
        ("full", "(b) our Miner, the full language (elementwise, timeseries, cross_section without "
                 "and_/or_/not_/eq/ne)", full),
    ):  # fmt: skip
        print(f"## {title}: population {budget.population}, {budget.generations} generations, "
              f"loky n_jobs={budget.n_jobs}, worker cache {config.parallel.worker_cache_mb} MB\n")  # fmt: skip
        print(f"load before the run: {load_text()}\n")
        ours[key] = report_miner(run_miner(config, market), budget.n_jobs)
        print()

    print(
        f"## (c) plain DEAP loop over pandas DataFrames: {budget.pandas_evaluations} evaluations, 1 process\n"
    )
    print(f"load before the loop: {load_text()}\n")
    wide = {
        name: pd.DataFrame(np.array(market.fields[name]), index=market.dates, columns=market.instruments)
        for name in FIELDS
    }
    wide_label = pd.DataFrame(label, index=market.dates, columns=market.instruments)
    train_wide = {name: frame.iloc[: rows.stop] for name, frame in wide.items()}
    train_rows = slice(rows.start, rows.stop)
    pandas_generations, pandas_wall, trees, pset = run_pandas_loop(
        train_wide, wide_label.iloc[: rows.stop], train_rows, budget, shared
    )
    theirs = report_pandas(pandas_generations, pandas_wall, budget)
    full_panel = replay(trees, pandas_evaluator(pset, wide, wide_label, train_rows, shared.fitness.parsimony))
    print(f"\nthe same {len(trees)} trees evaluated on the whole {len(market.dates)}-row panel (IC still on the "
          f"train rows, as in the issue's 500 x 1250 setting): **{full_panel:.2f} candidates/s** "
          f"(load {load_text()}).")  # fmt: skip
    median_ratio = None
    if args.repeats > 1:
        pairs = [(ours["shared"]["scoring"], theirs, load()[0])]
        for _ in range(args.repeats - 1):
            mine = scoring_rate(run_miner(shared, market))
            generations = run_pandas_loop(
                train_wide, wide_label.iloc[: rows.stop], train_rows, budget, shared
            )[0]
            pairs.append((mine, pandas_rate(generations), load()[0]))
        median_ratio = report_repeats(pairs)
    report_comparison(ours, theirs, full_panel, budget.n_jobs, median_ratio)

    if args.profile:
        print("\n## where our loop's time goes (cProfile, full language)\n")
        profile_miner(full, market)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

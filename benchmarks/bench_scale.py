"""Scale: loky vs a local Dask cluster, peak memory of a large mining run, float32 storage.

Prints Markdown tables for
(a) candidates scored per second on the real 1,501 x 2,485 stooq panel (rows flagged `suspect`
    dropped: they are mostly decimal-shift errors that fake 100x returns), the same seeded run
    with loky (2 workers) and with a 2-worker local Dask cluster (`parallel.backend: dask,
    address: local`), the Dask overhead against loky (target: within 25%), and whether the two
    runs found the same hall of fame (they must);
(b) peak memory of a full mining run (evolution + survivor selection) on the 3000 x 2500
    synthetic panel (`synthetic_market(n_instruments=3000, n_days=2500)`), target < 8 GiB;
(c) what `parallel.float32` changes: stored panel bytes, speed, and the rank IC / ICIR of a few
    formulas and of the mined hall of fame, float32 against float64.

Every mining run is a fresh child process (`--child`), so each backend starts cold and the
memory figures belong to that run alone. Peak memory is reported three ways: the driver's and the
largest worker's `ru_maxrss` (`resource.getrusage`, RUSAGE_SELF / RUSAGE_CHILDREN: the kernel's
peak RSS, the peak left by building the market reset through /proc/self/clear_refs), and the peak
of the summed RSS of the driver and all its worker processes, sampled every 0.2 s (an upper
bound: memory-mapped pages shared by the workers count once per process).

    python benchmarks/bench_scale.py [--quick] [--data PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from evaluation import forward_returns
from miner.config import ExperimentConfig, config_from_dict
from miner.market import MarketData
from miner.market.synthetic import synthetic_market
from miner.search.evolution import Miner
from miner.search.panels import Panel
from miner.search.scoring import ScoringSpec, score_batch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_stooq_daily_2008_2017.parquet"
GIB = 2**30
IC_FORMULAS = [
    "rank(delta(close, 5))",
    "ts_corr(close, volume, 10)",
    "rank(volume / ts_mean(volume, 20))",
    "ts_rank(vwap, 10)",
    "zscore(returns)",
    "ts_std(returns, 20)",
    "decay_linear(delta(log(close), 1), 5)",
    "(close - ts_min(low, 10)) / (ts_max(high, 10) - ts_min(low, 10))",
]


# --- markets and configs ------------------------------------------------------------------------


def stooq_market(path: Path, instruments: int | None) -> MarketData:
    bars = pd.read_parquet(path)
    bars = bars[~bars["suspect"]]
    if instruments is not None:
        bars = bars[bars["instrument"].isin(sorted(bars["instrument"].unique())[:instruments])]
    return MarketData.from_frame(bars, source=str(path))


def market_of(spec: dict) -> MarketData:
    if spec["market"] == "stooq":
        return stooq_market(Path(spec["data"]), spec.get("instruments"))
    return synthetic_market(n_instruments=spec["n_instruments"], n_days=spec["n_days"], seed=0)


def splits_for(dates: np.ndarray) -> dict:
    """Train on the first 60% of the dates, valid on the next 20%, test on the rest."""
    cut1, cut2 = int(len(dates) * 0.6), int(len(dates) * 0.8)
    day = [str(d) for d in dates]
    return {
        "train": {"start": day[0], "end": day[cut1 - 1]},
        "valid": {"start": day[cut1], "end": day[cut2 - 1]},
        "test": {"start": day[cut2], "end": day[-1]},
    }


def config_for(spec: dict, market: MarketData) -> ExperimentConfig:
    raw = {
        "name": "bench_scale",
        "seed": 11,
        "splits": splits_for(market.dates),
        "operators": {
            "families": ["elementwise", "timeseries", "cross_section"],
            "exclude": ["and_", "or_", "not_", "eq", "ne"],
        },
        "gp": {
            "population": spec["population"], "generations": spec["generations"], "max_depth": 5,
            "max_size": 20, "windows": [1, 2, 3, 5, 10, 20],
        },
        "fitness": {"objective": "icir", "parsimony": 0.01},
        "parallel": spec["parallel"],
        "tracking": {"enabled": False},
    }  # fmt: skip
    return config_from_dict(raw, "bench_scale")


# --- one mining run, in a child process ---------------------------------------------------------


class TreeRss:
    """The peak of the summed RSS of this process and all its descendants, sampled."""

    def __init__(self, every: float = 0.2) -> None:
        self.peak = 0
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self._every):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)


def reset_peak_rss() -> None:
    """Forget this process's peak RSS so far (Linux); getrusage then reports the peak from here."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def child(spec: dict) -> dict:
    started = time.perf_counter()
    market = market_of(spec)
    build_seconds = time.perf_counter() - started
    build_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    config = config_for(spec, market)
    reset_peak_rss()
    with TreeRss() as tree:
        started = time.perf_counter()
        result = Miner(config, market).run()
        run_seconds = time.perf_counter() - started
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)  # reap loky's workers: their rusage counts
    scored = [g.scored for g in result.logbook]
    scoring = [g.scored / g.candidates_per_s if g.candidates_per_s else 0.0 for g in result.logbook]
    hall = [(s.formula, s.fitness) for s in result.hall_of_fame]
    return {
        "T": market.T, "N": market.N, "build_seconds": build_seconds, "build_peak": build_peak,
        "run_seconds": run_seconds, "scored": sum(scored), "scoring_seconds": sum(scoring),
        "warm_scored": sum(scored[1:]), "warm_seconds": sum(scoring[1:]),
        "hit_rate": float(np.mean([g.cache_hit_rate for g in result.logbook])),
        "hall": hall, "hall_digest": hashlib.sha256(repr(hall).encode()).hexdigest()[:12],
        "survivors": len(result.survivors),
        "driver_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "worker_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "tree_peak": tree.peak,
    }  # fmt: skip


def run_child(spec: dict) -> dict:
    """One run in a fresh process; the spec goes in on stdin, the result comes out on stdout.

    Every child starts identically (same command line, environment and hash seed), so that the
    runs differ only in the spec they read: the loky and Dask runs must find the same hall of fame.
    """
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = [sys.executable, __file__, "--child"]
    done = subprocess.run(
        command, input=json.dumps(spec), capture_output=True, text=True, check=False, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"child run failed: {spec}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- float32 against float64, in this process ---------------------------------------------------


def ic_comparison(market: MarketData, formulas: list[str]) -> tuple[list[dict], dict]:
    """Train-segment rank IC and ICIR of each formula with the panel stored float64 and float32."""
    cut = int(market.T * 0.6)
    label = forward_returns(market.field("close"), 1, 1)[:cut].copy()
    label.setflags(write=False)
    wide = Panel(market.slice_rows(0, cut), label, slice(0, cut))
    narrow = wide.with_float32_fields()
    spec = ScoringSpec(objective="icir", parsimony=0.0)
    batch = [(f, 1) for f in formulas]
    warm_up = Panel(market.slice_rows(0, 100), label[:100], slice(0, 100))
    score_batch(warm_up, batch, spec)  # numba loads every kernel once, outside the timings
    timings = {}
    scores = {}
    for name, panel in (("float64", wide), ("float32", narrow)):
        started = time.perf_counter()
        scores[name], _, _ = score_batch(panel, batch, spec)
        timings[name] = time.perf_counter() - started
    rows = [
        {"formula": f, "ric64": a.rank_ic, "ric32": b.rank_ic, "ir64": a.icir, "ir32": b.icir}
        for f, a, b in zip(formulas, scores["float64"], scores["float32"])
    ]
    stored = {
        "float64": sum(a.nbytes for a in wide.data.fields.values()),
        "float32": sum(a.nbytes for a in narrow.data.fields.values())
        + sum(a.nbytes for a in narrow.float32_fields.values()),
    }
    return rows, {"seconds": timings, "stored": stored}


# --- reporting --------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def rate(run: dict, warm: bool = False) -> float:
    scored, seconds = (
        (run["warm_scored"], run["warm_seconds"]) if warm else (run["scored"], run["scoring_seconds"])
    )
    return scored / seconds if seconds else float("nan")


def gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def hall_overlap(a: dict, b: dict, top: int = 10) -> str:
    first = [f for f, _ in a["hall"][:top]]
    second = {f for f, _ in b["hall"][:top]}
    return f"{sum(f in second for f in first)}/{min(top, len(first))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small panels and populations (a smoke run)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(sys.stdin.read()))))
        return
    if not args.data.exists():
        raise SystemExit(f"{args.data}: the stooq panel is missing (see ../shared/data/README.md)")

    quick = args.quick
    stooq = {"market": "stooq", "data": str(args.data), "instruments": 300 if quick else None,
             "population": 60 if quick else 300, "generations": 2 if quick else 4}  # fmt: skip
    big = {"market": "synthetic", "n_instruments": 600 if quick else 3000, "n_days": 800 if quick else 2500,
           "population": 40 if quick else 150, "generations": 2 if quick else 3}  # fmt: skip
    loky = {"backend": "loky", "n_jobs": 2}
    dask = {"backend": "dask", "address": "local", "n_jobs": 2}

    print(f"# bench_scale{' --quick' if quick else ''}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {psutil.virtual_memory().total / GIB:.0f} GiB, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")  # fmt: skip

    rounds = 1 if quick else 2  # loky and Dask alternate; the best round of each counts (shared cores)
    throughput = []
    for round_ in range(1, rounds + 1):
        for name, parallel in (("loky", loky), ("dask (local cluster)", dask)):
            throughput.append((name, round_, run_child({**stooq, "parallel": parallel})))
    throughput.append(("loky, float32", 1, run_child({**stooq, "parallel": {**loky, "float32": True}})))
    first = throughput[0][2]
    print(f"## (a) candidates/s on the stooq panel ({first['N']} x {first['T']}, suspect rows dropped), "
          f"population {stooq['population']}, {stooq['generations']} generations, 2 workers\n")  # fmt: skip
    rows = [
        [name, round_, run["scored"], f"{run['scoring_seconds']:.1f}", f"{rate(run):.1f}",
         f"{rate(run, warm=True):.1f}", f"{run['run_seconds']:.1f}", f"{run['hit_rate']:.2f}", run["hall_digest"]]
        for name, round_, run in throughput
    ]  # fmt: skip
    print(table(["backend", "round", "scored", "scoring s", "cand/s", "cand/s gen>=1", "run s (setup incl.)",
                 "cache hit", "hall of fame"], rows))  # fmt: skip
    best = {
        name: max(rate(run, warm=True) for n, _, run in throughput if n == name)
        for name in ("loky", "dask (local cluster)")
    }
    overhead = 1 - best["dask (local cluster)"] / best["loky"]
    same = len({run["hall_digest"] for name, _, run in throughput if "float32" not in name}) == 1
    print(f"\nDask overhead against loky (best round, generations >= 1): {overhead:+.1%} (target within 25%: "
          f"{'met' if overhead <= 0.25 else 'NOT met'}); every loky and Dask run found the same hall of fame: "
          f"{'yes' if same else 'NO'}\n")  # fmt: skip

    memory = {
        name: run_child({**big, "parallel": parallel})
        for name, parallel in (
            ("loky", loky), ("loky, float32", {**loky, "float32": True}), ("dask (local cluster)", dask),
        )
    }  # fmt: skip
    first = memory["loky"]
    print(f"## (b) peak memory (GiB) of a full mining run on the {first['N']} x {first['T']} synthetic panel, "
          f"population {big['population']}, {big['generations']} generations, 2 workers\n")  # fmt: skip
    rows = [
        [name, f"{run['build_seconds']:.0f}", gib(run["build_peak"]), f"{run['run_seconds']:.0f}",
         run["scored"], run["survivors"], gib(run["driver_peak"]), gib(run["worker_peak"]), gib(run["tree_peak"]),
         "yes" if run["tree_peak"] < 8 * GIB else "NO"]
        for name, run in memory.items()
    ]  # fmt: skip
    print(table(["backend", "market build s", "build peak", "run s", "scored", "survivors",
                 "driver ru_maxrss", "largest worker ru_maxrss", "driver + workers (sampled sum)",
                 "< 8 GiB"], rows))  # fmt: skip

    market = stooq_market(args.data, stooq["instruments"])
    ic_rows, extra = ic_comparison(market, IC_FORMULAS)
    print(f"\n## (c) float32 storage of the scored panel (stooq train segment, {market.N} names)\n")
    print(table(
        ["stored fields", "bytes", "8 formulas scored in-process, s"],
        [[k, f"{extra['stored'][k] / 2**20:.0f} MiB", f"{extra['seconds'][k]:.2f}"] for k in ("float64", "float32")],
    ))  # fmt: skip
    print()
    print(table(
        ["formula", "rank IC float64", "rank IC float32", "|diff|", "ICIR float64", "ICIR float32", "|diff|"],
        [[f"`{r['formula']}`", f"{r['ric64']:+.6f}", f"{r['ric32']:+.6f}", f"{abs(r['ric64'] - r['ric32']):.1e}",
          f"{r['ir64']:+.5f}", f"{r['ir32']:+.5f}", f"{abs(r['ir64'] - r['ir32']):.1e}"] for r in ic_rows],
    ))  # fmt: skip
    wide, narrow = throughput[0][2], throughput[-1][2]
    print(f"\nMined with float32 vs float64 (stooq, loky): hall of fame top-10 overlap {hall_overlap(wide, narrow)}, "
          f"best fitness {wide['hall'][0][1][0]:.5f} vs {narrow['hall'][0][1][0]:.5f}; "
          f"synthetic run peak (sampled sum) {gib(memory['loky']['tree_peak'])} vs "
          f"{gib(memory['loky, float32']['tree_peak'])} GiB.")  # fmt: skip
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

"""What a run's budgets cost in memory, against the estimates `miner.search.budget` checks them with.

    python benchmarks/bench_budget.py

Measures (tracemalloc) the bytes of a population of the quickstart's language at its initial depth
and of one grown to depth 5 (trees of some 20 nodes, as runs grow them), the bytes of one memo
entry (a Score and its formula text), and the resident memory of a fresh worker-like process once it has evaluated formulas from
every family (numpy, the numba kernels and the evaluator loaded). Prints a Markdown table.
"""

from __future__ import annotations

import gc
import random
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import yaml

from miner.app.experiment import market_for
from miner.config import config_from_dict
from miner.lang import canonicalize, to_string
from miner.search import budget
from miner.search.evolution import Miner
from miner.search.language import to_formula
from miner.search.scoring import Score

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
COUNT = 4000

WORKER = textwrap.dedent(
    """
    import re
    from miner.lang import Evaluator
    from miner.market.synthetic import synthetic_market
    import miner.search.scoring, evaluation.metrics
    market = synthetic_market(n_instruments=20, n_days=100)
    evaluator = Evaluator(market)
    for formula in ("rank(delta(close, 5))", "ts_corr(close, volume, 10)", "ts_rank(close, 5)",
                    "decay_linear(returns, 10)", "zscore(ts_std(close, 20))", "ts_skew(returns, 10)",
                    "ts_max(high, 10) - ts_min(low, 5)", "ts_mad_despike(close, 10)",
                    "ts_fft_band(close, 20)", "group_neutralize(close, sector)"):
        evaluator.evaluate(formula)
    print(int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) << 10)
    """
)


def population_bytes(miner: Miner) -> tuple[float, float, float]:
    """Bytes per individual (and per memo entry) of `COUNT` individuals; mean tree size."""
    random.seed(1)
    gc.collect()
    tracemalloc.start()
    population = miner.toolbox.population(n=COUNT)
    texts = [to_string(canonicalize(to_formula(ind, miner.language))) for ind in population]
    for individual, text in zip(population, texts):
        individual.formula = text
        individual.node_count = len(individual)
    trees, _ = tracemalloc.get_traced_memory()
    memo = {text: Score(text, 10, (0.1,), 0.01, 0.5, 0.3, 0.9) for text in texts}
    both, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return trees / COUNT, (both - trees) / len(memo), sum(map(len, population)) / COUNT


def main() -> int:
    raw = yaml.safe_load(QUICKSTART.read_text())
    rows = []
    for depth in (raw["gp"].get("init_depth", [2, 4]), [5, 5]):
        raw["gp"].update(init_depth=depth, max_depth=6, max_size=40)
        config = config_from_dict(raw, "quickstart")
        per_individual, per_entry, nodes = population_bytes(Miner(config, market_for(config)))
        label = f"init_depth {depth}, mean {nodes:.1f} nodes"
        rows.append(
            (
                f"one individual ({label})",
                f"{per_individual / nodes:.0f} B per node",
                f"{budget.NODE_BYTES} B per node",
            )
        )
        rows.append((f"one memo entry ({label})", f"{per_entry:.0f} B", f"{budget.SCORE_BYTES} B"))
    rss = int(
        subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, check=True).stdout
    )
    rows.append(("a worker process after evaluating every family", f"{rss >> 20} MiB",
                 f"{budget.WORKER_PROCESS_BYTES >> 20} MiB"))  # fmt: skip
    print("| what | measured | estimate in miner.search.budget |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

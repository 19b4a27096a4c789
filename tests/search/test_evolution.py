"""The mining loop: typed generation, memo, planted-signal recovery, determinism, resume, honesty."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from deap import gp

from evaluation import metrics
from evaluation.fitness import WORST_FITNESS
from miner import evaluate, parse, to_string
from miner.app.experiment import market_for
from miner.config import ExperimentConfig, config_from_dict
from miner.market.synthetic import PLANTED_DAILY_FORMULA, synthetic_market
from miner.search.evolution import Miner
from miner.search.language import build_language, gen_full, gen_grow, to_formula, triviality
from miner.search.panels import Panel
from miner.search.scoring import ScoringSpec, _state, score_one
from tests.strategies import small_market

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"


def quickstart(**changes: object) -> ExperimentConfig:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["parallel"]["n_jobs"] = 1
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config_from_dict(raw, "test")


def small(**changes: object) -> ExperimentConfig:
    """A fast config on a small synthetic market."""
    base = {
        "data__synthetic__n_instruments": 60,
        "data__synthetic__n_days": 400,
        "splits__train": {"start": "2020-01-01", "end": "2020-09-30"},
        "splits__valid": {"start": "2020-10-01", "end": "2021-01-31"},
        "splits__test": {"start": "2021-02-01", "end": "2021-07-09"},
        "gp__population": 40,
        "gp__generations": 3,
        "gp__elitism": 2,
    }
    return quickstart(**{**base, **changes})


def hall_signature(result) -> list[tuple[str, tuple[float, ...]]]:
    return [(s.formula, s.fitness) for s in result.hall_of_fame]


# --- the typed language ---------------------------------------------------------------------


ALL_FAMILIES = ["elementwise", "timeseries", "cross_section", "robust", "spectral"]


def test_generators_never_hit_a_type_dead_end_and_give_valid_formulas() -> None:
    config = quickstart(
        operators__families=ALL_FAMILIES, operators__exclude=[], gp__fields=["close", "volume"]
    )
    language = build_language(config, small_market())
    random.seed(0)
    for i in range(3000):
        generator = gen_full if i % 2 else gen_grow
        tree = gp.PrimitiveTree(generator(language.pset, 0, 6))
        node = to_formula(tree, language)
        assert parse(to_string(node)) == node


def test_plain_deap_generation_does_hit_the_dead_end_we_avoid() -> None:
    config = quickstart(operators__families=ALL_FAMILIES, operators__exclude=[])
    language = build_language(config, small_market())
    random.seed(0)
    with pytest.raises(IndexError, match="none available"):
        for _ in range(200):
            gp.genFull(language.pset, 3, 5)


@pytest.mark.parametrize(
    ("formula", "reason"),
    [
        ("1 + 2", "constant formula"),
        ("ts_mean(close, 1)", "1-row window"),
        ("close - close", "with itself"),
        ("ts_corr(volume, volume, 5)", "with itself"),
        ("rank(close - open)", None),
        ("delay(close, 1)", None),
    ],
)
def test_trivial_forms_are_recognized(formula: str, reason: str | None) -> None:
    found = triviality(parse(formula))
    assert (found is None) if reason is None else (reason in found)


# --- scoring --------------------------------------------------------------------------------


def test_a_failing_or_all_nan_candidate_gets_the_worst_fitness_with_a_reason() -> None:
    market = small_market()
    label = np.full((market.T, market.N), 0.01)
    state = _state(Panel(market, label, slice(0, market.T)), ScoringSpec())
    broken = score_one(state, "ts_mean(no_such_field, 5)", 3, ScoringSpec())
    empty = score_one(state, "log(-abs(close) - 1)", 5, ScoringSpec())
    assert broken.fitness == (WORST_FITNESS,) and "unknown field" in broken.reason
    assert empty.fitness == (WORST_FITNESS,) and "all NaN" in empty.reason


def test_a_run_survives_candidates_that_fail() -> None:
    config = small(gp__terminals=["log(-abs(close) - 1)"], gp__generations=2)
    miner = Miner(config, market_for(config))
    result = miner.run()
    reasons = [s.reason for s in miner.memo.values() if s.reason]
    assert any("all NaN" in r for r in reasons) and result.hall_of_fame


# --- the loop -------------------------------------------------------------------------------


def planted_recovery(config: ExperimentConfig) -> tuple[float, list[str]]:
    """A run's best |correlation| of a survivor with the synthetic market's planted formula, and
    its survivors."""
    market = market_for(config)
    survivors = [s.formula for s in Miner(config, market).run().survivors]
    planted = evaluate(PLANTED_DAILY_FORMULA, market)
    return max(abs(metrics.factor_correlation(evaluate(f, market), planted)) for f in survivors), survivors


def run_signature(result) -> tuple:
    """What a run decided: its hall of fame, survivors and per-generation figures (NaN as text)."""
    return (
        [(s.formula, s.fitness) for s in result.hall_of_fame],
        [s.formula for s in result.survivors],
        [(g.best, g.median, g.scored, g.pool_size, f"{g.pool_valid_rank_ic!r}") for g in result.logbook],
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quickstart_budget_recovers_the_planted_formula(seed: int) -> None:
    best, survivors = planted_recovery(quickstart(seed=seed))
    assert best >= 0.9, survivors


def test_same_seed_same_hall_of_fame_whatever_n_jobs() -> None:
    config = small()
    market = market_for(config)
    first = hall_signature(Miner(config, market).run())
    again = hall_signature(Miner(config, market).run())
    parallel = small(parallel__n_jobs=2)
    in_workers = hall_signature(Miner(parallel, market).run())
    assert first == again == in_workers and len(first) > 10


def test_different_seeds_explore_differently() -> None:
    market = market_for(small())
    assert hall_signature(Miner(small(seed=1), market).run()) != hall_signature(
        Miner(small(seed=2), market).run()
    )


class Interrupted(Exception):
    pass


def resumed_after_an_interruption(config: ExperimentConfig, market, checkpoints: Path):
    """A run stopped after generation 2 (its checkpoint written after generation 1), then resumed."""

    def stop_at_two(stats) -> None:
        if stats.generation == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        Miner(config, market, on_generation=stop_at_two, checkpoint_dir=checkpoints).run()
    return Miner(config, market, checkpoint_dir=checkpoints).run(resume=True)


@pytest.mark.parametrize("search", ["gp", "random"])
def test_resume_after_an_interruption_ends_like_an_uninterrupted_run(tmp_path: Path, search: str) -> None:
    config = small(gp__generations=4, gp__search=search)
    market = market_for(config)
    uninterrupted = Miner(config, market).run()
    resumed = resumed_after_an_interruption(config, market, tmp_path)
    assert hall_signature(resumed) == hall_signature(uninterrupted)
    assert [s.formula for s in resumed.survivors] == [s.formula for s in uninterrupted.survivors]
    assert [g.generation for g in resumed.logbook] == [0, 1, 2, 3]


def test_test_segment_data_never_influences_selection() -> None:
    config = small(gp__generations=2)
    market = market_for(config)
    honest = Miner(config, market)
    baseline = honest.run()
    start = honest.segments.test.start
    rng = np.random.default_rng(0)

    def scrambled(array: np.ndarray, name: str) -> np.ndarray:
        out = np.array(array)
        if not market.is_group(name):
            out[start:] *= rng.lognormal(0, 0.2, out[start:].shape)
        out.setflags(write=False)
        return out

    perturbed = dataclasses.replace(market, fields={k: scrambled(v, k) for k, v in market.fields.items()})
    result = Miner(config, perturbed).run()
    assert [s.formula for s in result.survivors] == [s.formula for s in baseline.survivors]
    for a, b in zip(result.survivors, baseline.survivors, strict=True):
        assert a.segments["valid"] == b.segments["valid"] and a.segments["train"] == b.segments["train"]
    assert any(a.segments["test"] != b.segments["test"] for a, b in zip(result.survivors, baseline.survivors))


def test_survivors_pass_the_admission_rules_on_valid() -> None:
    config = small(survivors__min_abs_rank_ic=0.005, survivors__max_correlation=0.6)
    market = market_for(config)
    miner = Miner(config, market)
    result = miner.run()
    assert result.survivors
    values = {s.name: evaluate(s.formula, market) for s in result.survivors}
    for s in result.survivors:
        train, valid = s.segments["train"], s.segments["valid"]
        assert np.sign(train.rank_ic) == np.sign(valid.rank_ic) and abs(valid.rank_ic) >= 0.005
    names = list(values)
    for i, a in enumerate(names):
        for b in names[:i]:
            rho = metrics.factor_correlation(values[a], values[b], rows=result.segments.valid)
            assert abs(rho) < 0.6


def test_nsga2_and_islands_run() -> None:
    pareto = Miner(small(fitness__objective="nsga2"), market_for(small())).run()
    assert pareto.hall_of_fame and all(len(s.fitness) == 3 for s in pareto.hall_of_fame)
    islands = Miner(small(gp__islands=2, gp__migration_interval=1), market_for(small())).run()
    assert islands.hall_of_fame


def test_library_factors_count_against_novelty() -> None:
    config = small()
    market = market_for(config)
    baseline = Miner(config, market).run()
    top = baseline.survivors[0]
    blocked = Miner(config, market, library_factors={"lib_top": evaluate(top.formula, market)}).run()
    assert top.formula not in [s.formula for s in blocked.survivors]


def test_synthetic_market_is_the_quickstart_data() -> None:
    config = quickstart()
    market = market_for(config)
    assert (market.T, market.N) == (750, 200)
    assert market.fingerprint == synthetic_market(n_instruments=200, n_days=750, seed=0).fingerprint


SEPARATE_PROCESS_RUN = """
import json, sys
from tests.search.test_evolution import small, hall_signature
from miner.search.evolution import Miner
from miner.app.experiment import market_for
config = small(gp__generations=4)
print(json.dumps(hall_signature(Miner(config, market_for(config)).run())))
"""


def test_same_seed_same_hall_of_fame_in_separate_processes() -> None:
    """Nothing may depend on memory addresses or hash seeds (DEAP's own crossover does)."""
    root = Path(__file__).resolve().parents[2]
    outputs = [
        subprocess.run(
            [sys.executable, "-c", SEPARATE_PROCESS_RUN],
            capture_output=True,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            timeout=600,
            check=True,
        ).stdout
        for seed in (1, 2)
    ]
    assert outputs[0] == outputs[1] and len(json.loads(outputs[0])) > 10


FREE_AND_REALLOCATE = """
import resource, sys
import numpy as np
from miner.search.scoring import _keep_freed_memory

if sys.argv[1] == "keep":
    _keep_freed_memory()

def rounds():
    for _ in range(5):
        panels = [np.ones((512, 1024)) for _ in range(10)]  # 10 x 4 MB, every page written
        del panels

rounds()  # the first round faults its pages in, whatever the allocator does
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_a_loky_worker_reuses_the_memory_it_frees_instead_of_faulting_it_in_again() -> None:
    """What `_keep_freed_memory` is for: once the heap holds freed panels, new ones fault no page."""

    def page_faults(mode: str) -> int:
        command = [sys.executable, "-c", FREE_AND_REALLOCATE, mode]
        return int(subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout)

    assert page_faults("default") > 5 * 1024  # glibc's default: trimmed, faulted in again
    assert page_faults("keep") < 100

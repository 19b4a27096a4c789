"""Issue 15 in the search: degeneracy gates in scoring, the factor pool, admission with a
multiple-testing hurdle, determinism and resume with a pool (and with novelty by behaviour)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from deap import gp
from scipy import stats

from evaluation import combine, forward_returns, metrics
from evaluation.gates import Gates
from miner import evaluate
from miner.app.experiment import market_for
from miner.config import PoolSpec
from miner.lang import canonicalize, parse, to_string, walk
from miner.market.synthetic import PLANTED_DAILY_FORMULA
from miner.search.evolution import Miner
from miner.search.language import build_language, expressible_subtrees, to_formula
from miner.search.members import Context
from miner.search.panels import Panel
from miner.search.pool import FactorPool
from miner.search.scoring import ScoringSpec, _state, score_one
from miner.search.splits import make_segments
from miner.zoo import load_zoo
from tests.search.test_evolution import (
    planted_recovery,
    quickstart,
    resumed_after_an_interruption,
    run_signature,
    small,
)

GATES = Gates(min_coverage=0.8, min_distinct=0.01, min_dated_share=0.8)


@pytest.fixture(scope="module")
def setting():
    config = small(data__synthetic__n_instruments=300)  # as wide as the panel issue 15 measured
    market = market_for(config)
    segments = make_segments(market.dates, config.splits, config.embargo, config.source)
    label = forward_returns(market.field("close"), 1, 1)
    return config, market, segments, label


def scored(setting, formula: str, gates: Gates | None = GATES):
    _, market, segments, label = setting
    stop = segments.train.stop
    panel = Panel(market.slice_rows(0, stop), np.ascontiguousarray(label[:stop]), segments.train)
    return score_one(_state(panel, ScoringSpec(gates=gates)), formula, 3, ScoringSpec(gates=gates))


@pytest.mark.parametrize(
    ("formula", "gate"),
    [
        ("high >= low", "distinct"),  # 1 almost everywhere: the degenerate winner of issue 15
        ("log(returns)", "coverage"),  # NaN wherever the return is not positive: half the cells
    ],
)
def test_degenerate_candidates_are_gated_with_the_reason_counted(setting, formula: str, gate: str) -> None:
    score = scored(setting, formula)
    assert not score.valid and score.gate == gate and score.reason.startswith(f"gate: {gate}")
    assert scored(setting, formula, gates=None).gate is None


def test_the_planted_signal_passes_the_gates(setting) -> None:
    assert scored(setting, PLANTED_DAILY_FORMULA).valid


def test_a_run_counts_gated_candidates_per_generation() -> None:
    result = Miner(small(), market_for(small())).run()
    gated = [g.gated for g in result.logbook]
    assert any(gated) and all(set(g) <= {"coverage", "distinct", "dated"} for g in gated)
    assert sum(sum(g.values()) for g in gated) <= sum(g.failed for g in result.logbook)


# --- the pool ---------------------------------------------------------------------------------


def pool_of(setting, **spec) -> tuple[FactorPool, Context]:
    config, market, segments, label = setting
    context = Context(market, label, segments, config.fitness.min_names)
    return FactorPool(PoolSpec(enabled=True, **spec), context), context


def test_the_residual_label_is_the_label_less_its_least_squares_fit_on_the_composite(setting) -> None:
    pool, context = pool_of(setting)
    market = context.market
    for formula in ("-rank(delta(close, 5))", "ts_std(returns, 10)"):
        assert pool.offer(formula, formula, evaluate(formula, market), 0.2) == "added"
    assert pool.refit() and pool.version == 1
    stop = context.segments.train.stop
    residual = pool.residual_label(stop)
    target = combine.standardize(context.label)[:stop]
    composite = np.nan_to_num(pool.composite()[:stop])
    train = context.segments.train
    cells = np.isfinite(target[train])
    x, y = composite[train][cells][:, None], target[train][cells]
    slope = np.linalg.lstsq(x, y, rcond=None)[0][0]
    np.testing.assert_allclose(residual, target - slope * composite, rtol=1e-9, atol=1e-12)
    assert np.array_equal(np.isnan(residual), np.isnan(target))
    weights = combine.fit(
        "ridge", [e.standardized for e in pool.entries], context.label, train, context.segments.valid
    )
    np.testing.assert_array_equal(pool.weights, weights.weights)


def test_offers_follow_the_duplicate_replace_and_capacity_rules(setting) -> None:
    pool, context = pool_of(setting, capacity=2, max_correlation=0.7, replace_ratio=1.3)
    market = context.market
    first = "-rank(delta(close, 5))"
    twin = "-rank(delta(close, 5)) - 0.01 * rank(volume)"  # nearly the same ranks
    assert pool.offer(first, first, evaluate(first, market), 0.20) == "added"
    assert pool.offer(twin, twin, evaluate(twin, market), 0.25).startswith(f"duplicate of {first}")
    assert pool.offer(twin, twin, evaluate(twin, market), 0.30) == f"replaced {first}"
    other = "ts_std(returns, 10)"
    assert pool.offer(other, other, evaluate(other, market), 0.10) == "added"
    third = "rank(volume)"
    assert pool.offer(third, third, evaluate(third, market), 0.12) == "full"  # 0.12 < 1.3 * 0.10
    assert pool.offer(third, third, evaluate(third, market), 0.14) == f"replaced {other}"
    assert [e.name for e in pool.entries] == [twin, third]


# --- admission --------------------------------------------------------------------------------


def test_the_holm_hurdle_grows_with_the_formulas_tested() -> None:
    config = small(survivors__hurdle="holm", survivors__alpha=0.05, survivors__tests="scored")
    result = Miner(config, market_for(config)).run()
    admission = result.admission
    scored = sum(g.scored for g in result.logbook)
    assert admission.scored == admission.tests == scored and admission.method == "holm"
    assert admission.hurdle == pytest.approx(stats.norm.isf(0.05 / scored))
    examined = Miner(small(), market_for(config)).run().admission
    assert examined.tests == examined.examined < scored
    assert examined.hurdle == pytest.approx(stats.norm.isf(0.05 / examined.examined))
    for survivor in result.survivors:
        assert math.isfinite(survivor.segments["valid"].rank_ic)
    assert any("hurdle" in reason for reason in result.rejected.values()) or result.survivors


def test_a_strict_fixed_hurdle_admits_nothing_and_says_why() -> None:
    config = small(survivors__hurdle="fixed", survivors__t_min=1e6)
    result = Miner(config, market_for(config)).run()
    assert result.survivors == [] and result.admission.hurdle == 1e6
    assert all("hurdle" in r or "valid segment" in r or "correlation" in r for r in result.rejected.values())


# --- the pool in a run ------------------------------------------------------------------------

POOLED = {
    "pool__enabled": True,
    "pool__zoo": "classic",
    "pool__zoo_top_k": 3,
    "survivors__require_gain": True,
}


SEARCHES = {"pooled": POOLED, "pooled and niched": {**POOLED, "gp__niche_correlation": 0.7}}


@pytest.mark.parametrize("changes", SEARCHES.values(), ids=SEARCHES.keys())
def test_a_pooled_run_is_the_same_whatever_n_jobs(changes: dict) -> None:
    one = Miner(small(**changes), market_for(small())).run()
    two = Miner(small(**changes, parallel__n_jobs=2), market_for(small())).run()
    assert run_signature(one) == run_signature(two)
    assert one.logbook[-1].pool_size > 3  # the zoo pick and mined factors


@pytest.mark.parametrize("changes", SEARCHES.values(), ids=SEARCHES.keys())
def test_a_pooled_run_resumes_exactly(tmp_path: Path, changes: dict) -> None:
    config = small(**changes, gp__generations=4)
    market = market_for(config)
    uninterrupted = Miner(config, market).run()
    resumed = resumed_after_an_interruption(config, market, tmp_path)
    assert run_signature(resumed) == run_signature(uninterrupted)


def test_patience_stops_a_run_whose_pool_stalls() -> None:
    config = small(**POOLED, pool__patience=1, gp__generations=8)
    result = Miner(config, market_for(config)).run()
    figures = [g.pool_valid_rank_ic for g in result.logbook]
    assert len(result.logbook) < 8 and figures[-1] <= max(figures[:-1])


def test_the_planted_signal_is_recovered_with_a_pool() -> None:
    best, survivors = planted_recovery(quickstart(pool__enabled=True, survivors__require_gain=True))
    assert best >= 0.9, survivors


def test_on_top_of_a_zoo_that_holds_the_planted_signal_survivors_must_add_to_it() -> None:
    config = quickstart(**POOLED)  # the classic set's rev_5d is the planted reversal
    market = market_for(config)
    miner = Miner(config, market)
    result = miner.run()
    assert "rev_5d" in [m.name for m in miner.zoo_pick.members]
    reversal = evaluate("-pct_change(close, 5)", market)
    for survivor in result.survivors:
        values = evaluate(survivor.formula, market)
        rho = metrics.factor_correlation(values, reversal, rows=miner.segments.valid)
        assert abs(rho) < config.survivors.max_correlation


# --- seeding from a zoo -----------------------------------------------------------------------


def test_zoo_formulas_the_language_can_write_become_trees_that_print_back_the_same() -> None:
    config = quickstart(operators__families=["elementwise", "timeseries", "cross_section", "robust"])
    language = build_language(config, market_for(config))
    formulas = [factor.formula for factor in load_zoo("classic")]
    expressions = expressible_subtrees(formulas, language, max_size=40)
    texts = [to_string(to_formula(gp.PrimitiveTree(e), language)) for e in expressions]
    assert "ts_std(returns, 20)" in texts and "pct_change(close, 5)" in texts
    assert "ts_max(close, 252)" not in texts  # 252 is not among the language's windows
    everything = {to_string(n) for f in formulas for n in walk(canonicalize(parse(f)))}
    assert set(texts) <= everything and len(texts) == len(set(texts))


def test_a_seeded_run_starts_from_the_zoo() -> None:
    config = small(gp__seed_zoo="classic", gp__seed_share=0.25, gp__generations=1)
    miner = Miner(config, market_for(config))
    random.seed(config.seed)
    population = miner._initial_population()
    texts = [to_string(canonicalize(to_formula(ind, miner.language))) for ind in population]
    seeds = {to_string(to_formula(gp.PrimitiveTree(e), miner.language)) for e in miner._zoo_seeds()}
    assert len(population) == config.gp.population
    assert sum(t in seeds for t in texts) >= round(0.25 * config.gp.population)

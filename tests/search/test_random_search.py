"""Random search, the GP's baseline: exactly its budget of distinct new formulas from the GP's
generator, the same pruning and admission, deterministic for a seed whatever n_jobs (resuming is
tested with the GP's in test_evolution.py)."""

from __future__ import annotations

import random

import pytest
from deap import gp

from miner.app.experiment import market_for
from miner.config import config_from_dict
from miner.errors import ConfigError
from miner.lang import canonicalize, parse, to_string
from miner.search.evolution import Miner
from miner.search.language import to_formula, triviality
from tests.search.test_evolution import hall_signature, small


def random_config(**changes: object):
    return small(gp__search="random", **changes)


def test_random_search_scores_exactly_its_budget_of_distinct_non_trivial_formulas() -> None:
    config = random_config(gp__budget=97)
    miner = Miner(config, market_for(config))
    result = miner.run()
    assert sum(g.scored for g in result.logbook) == 97
    assert [g.scored for g in result.logbook] == [40, 40, 17] and miner.rounds == 3
    assert all(g.memo_skipped == 0 and g.unique_share == 1.0 for g in result.logbook)
    scored = [text for text in miner.memo if triviality(canonicalize(parse(text))) is None]
    assert len(scored) == 97  # the memo also holds the trivial forms drawn, recorded unscored
    assert result.hall_of_fame and len({s.formula for s in result.hall_of_fame}) == len(result.hall_of_fame)


def test_the_default_budget_is_population_times_generations() -> None:
    config = random_config()
    result = Miner(config, market_for(config)).run()
    assert sum(g.scored for g in result.logbook) == config.gp.population * config.gp.generations == 120


def test_random_candidates_come_from_the_gp_generator() -> None:
    """A round draws the GP's initial-population trees, skipping repeats and trivial forms."""
    config = random_config(gp__budget=30)
    market = market_for(config)
    miner = Miner(config, market)
    random.seed(config.seed)
    drawn = miner._random_candidates(30)
    random.seed(config.seed)
    reference = Miner(config, market)
    expected: list[str] = []
    while len(expected) < 30:
        tree = reference.toolbox.individual()
        node = canonicalize(to_formula(tree, reference.language))
        text = to_string(node)
        if text not in expected and triviality(node) is None:
            expected.append(text)
    assert [to_string(canonicalize(to_formula(t, miner.language))) for t in drawn] == expected
    assert all(isinstance(t, gp.PrimitiveTree) for t in drawn)


def test_same_seed_same_result_whatever_n_jobs_and_seeds_differ() -> None:
    config = random_config(gp__budget=90)
    market = market_for(config)
    first = Miner(config, market).run()
    again = Miner(config, market).run()
    parallel = Miner(random_config(gp__budget=90, parallel__n_jobs=2), market).run()
    assert hall_signature(first) == hall_signature(again) == hall_signature(parallel)
    assert [s.formula for s in first.survivors] == [s.formula for s in parallel.survivors]
    other = Miner(random_config(gp__budget=90, seed=99), market).run()
    assert hall_signature(other) != hall_signature(first)


def test_a_language_with_few_formulas_ends_the_search_early() -> None:
    config = random_config(
        gp__budget=500,
        gp__fields=["close"],
        gp__windows=[2, 3],
        gp__init_depth=[2, 2],
        operators__families=[],
        operators__include=["ts_mean", "ts_max"],
    )
    result = Miner(config, market_for(config)).run()
    assert sum(g.scored for g in result.logbook) == 4  # ts_mean / ts_max of close over 2 or 3 rows


def test_a_budget_needs_random_search() -> None:
    raw = random_config().model_dump(mode="json")
    raw["gp"]["search"] = "gp"
    raw["gp"]["budget"] = 100
    with pytest.raises(ConfigError, match="gp: budget is the number of candidates of a random search"):
        config_from_dict(raw, "x.yaml")

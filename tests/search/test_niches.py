"""Novelty by behaviour (`gp.niche_correlation`): behaviours against pandas, clearing and the
one-place-per-idea hall of fame by hand, and the planted signal found by a niched run (its
determinism and resume: `test_pool_and_admission`)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from deap import base, creator

from evaluation.fitness import WORST_FITNESS
from miner.app.experiment import market_for
from miner.search.evolution import IdeaHallOfFame, Miner
from miner.search.niches import WEEK, behaviour, distinct_ideas
from tests.search.test_evolution import (
    planted_recovery,
    quickstart,
    small,
)

NICHED = {"gp__niche_correlation": 0.7}


def weekly_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """pandas: the correlation of the weekly means, weeks missing in either counted as their mean."""
    weeks = np.arange(a.size) // WEEK
    frame = pd.DataFrame({"a": a, "b": b, "week": weeks})
    full = frame[frame["week"] < a.size // WEEK].groupby("week").mean()
    centred = full - full.mean()
    return float(
        (centred["a"].fillna(0) * centred["b"].fillna(0)).sum()
        / np.sqrt((centred["a"].fillna(0) ** 2).sum() * (centred["b"].fillna(0) ** 2).sum())
    )


def test_two_behaviours_correlate_as_their_weekly_ic_means() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=503)
    b = 0.6 * a + rng.normal(size=503)
    a[[7, 40, 41, 42, 43, 44]] = np.nan  # week 8 is missing whole
    expected = weekly_correlation(a, b)
    assert abs(float(behaviour(a) @ behaviour(b)) - expected) < 1e-6
    assert abs(float(behaviour(-a) @ behaviour(b)) + expected) < 1e-6  # a negated factor: one idea


def test_a_flat_or_empty_series_has_no_behaviour() -> None:
    assert behaviour(np.full(50, 0.02)) is None
    assert behaviour(np.full(50, np.nan)) is None


def test_distinct_ideas_keeps_the_first_of_each_idea_in_order() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 400))
    ideas = [behaviour(x), behaviour(x + 0.1 * rng.normal(size=400)), behaviour(y), None, behaviour(-x)]
    assert distinct_ideas(ideas, 0.9) == [True, False, True, False, False]
    assert distinct_ideas(ideas[:4], 0.999) == [True, True, True, False]


creator.create("NicheFitness", base.Fitness, weights=(1.0,))
creator.create("NicheIndividual", list, fitness=creator.NicheFitness)


def individual(formula: str, fitness: float, shape: np.ndarray):
    out = creator.NicheIndividual([formula])
    out.formula, out.behaviour = formula, shape
    out.fitness.values = (fitness,)
    return out


def test_the_hall_of_fame_keeps_the_best_of_each_idea_and_a_better_copy_replaces_it() -> None:
    rng = np.random.default_rng(1)
    x, y, z = rng.normal(size=(3, 300))
    copy = x + 0.05 * rng.normal(size=300)
    hall = IdeaHallOfFame(2, 0.9)
    hall.update([individual("x", 0.5, behaviour(x)), individual("copy", 0.4, behaviour(copy))])
    hall.update([individual("y", 0.3, behaviour(y)), individual("z", 0.2, behaviour(z))])
    assert [ind.formula for ind in hall] == ["x", "y"]
    hall.update([individual("better copy", 0.6, behaviour(copy))])
    assert [ind.formula for ind in hall] == ["better copy", "y"]


def test_clearing_leaves_selection_one_individual_per_idea() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2, 300))
    island = [
        individual("copy", 0.4, behaviour(x + 0.05 * rng.normal(size=300))),
        individual("y", 0.3, behaviour(y)),
        individual("x", 0.5, behaviour(x)),
    ]
    Miner._clear_copies(island, 0.9)
    assert [ind.fitness.values[0] for ind in island] == [WORST_FITNESS, 0.3, 0.5]


def hall_behaviours(result) -> list[np.ndarray]:
    return [s.behaviour for s in result.hall_of_fame]


def test_a_niched_hall_of_fame_holds_one_candidate_per_idea() -> None:
    result = Miner(small(**NICHED), market_for(small())).run()
    shapes = hall_behaviours(result)
    assert len(shapes) > 10
    assert max(abs(float(a @ b)) for a, b in itertools.combinations(shapes, 2)) < 0.7


def test_the_planted_signal_is_recovered_with_niching() -> None:
    best, survivors = planted_recovery(quickstart(**NICHED))
    assert best >= 0.9, survivors

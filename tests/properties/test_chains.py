"""Elementwise chains (`operators.elementwise.run_chain`) give the bits of step-by-step evaluation.

The evaluator runs chains only on large panels; here they are forced on a small random market for
random trees, mostly elementwise, and compared byte for byte (NaN bits included) with the same
trees evaluated one operator at a time.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, reject, settings

import miner.lang.evaluator as evaluator_module
from miner import FormulaError
from miner.lang import Evaluator, Node, to_string
from tests.strategies import formulas, small_market

BASE = small_market(seed=11, t=40, n=13, m=8)


def values(tree: Node, chain_from_cells: int) -> np.ndarray:
    chosen = evaluator_module.CHAIN_FROM_CELLS
    evaluator_module.CHAIN_FROM_CELLS = chain_from_cells
    try:
        return Evaluator(BASE).evaluate(tree)
    except FormulaError:
        reject()
    finally:
        evaluator_module.CHAIN_FROM_CELLS = chosen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=formulas(max_leaves=12, families=("elementwise",)))
def test_chains_give_the_bits_of_step_by_step_evaluation(tree: Node) -> None:
    chained, stepwise = values(tree, 0), values(tree, 1 << 62)
    assert np.shape(chained) == np.shape(stepwise)
    assert np.asarray(chained).tobytes() == np.asarray(stepwise).tobytes(), to_string(tree)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=formulas(max_leaves=8))
def test_chains_inside_any_formula_give_the_same_bits(tree: Node) -> None:
    chained, stepwise = values(tree, 0), values(tree, 1 << 62)
    assert np.asarray(chained).tobytes() == np.asarray(stepwise).tobytes(), to_string(tree)

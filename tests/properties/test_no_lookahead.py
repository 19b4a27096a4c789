"""DESIGN rule 1: changing data after row t never changes any output at rows <= t.

Checked for every registered operator and for random formulas, and the incremental-recomputation
property of rule 6: evaluating on the rows from t - lookback on gives bit-identical values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from miner import FormulaError, lookback
from miner.lang import Call, Evaluator, Name, Node, Num, to_string
from miner.market import MarketData
from operators import Kind
from tests.strategies import WINDOWS, distinct_operators, formulas, small_market

BASE = small_market(seed=7, t=48, n=14, m=24)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def perturbed_after(data: MarketData, t: int, seed: int) -> MarketData:
    """The same market with every value after row t replaced by noise (and some NaN)."""
    rng = np.random.default_rng(seed)

    def scramble(array: np.ndarray, codes: bool) -> np.ndarray:
        out = np.array(array)
        tail = out[t + 1 :]
        noise = rng.integers(0, 3, tail.shape).astype(float) if codes else rng.lognormal(3, 1, tail.shape)
        noise[rng.random(tail.shape) < 0.2] = np.nan
        tail[...] = noise
        out.setflags(write=False)
        return out

    return dataclasses.replace(
        data,
        fields={k: scramble(v, data.is_group(k)) for k, v in data.fields.items()},
        intraday={k: scramble(v, False) for k, v in data.intraday.items()},
    )


def evaluate_or_reject(data: MarketData, tree: Node) -> np.ndarray:
    """Values of a generated tree; trees the language rejects (e.g. an empty band) are skipped."""
    try:
        return Evaluator(data).evaluate(tree)
    except FormulaError:
        reject()


def assert_no_lookahead(tree: Node, t: int, seed: int) -> None:
    before = evaluate_or_reject(BASE, tree)
    after = Evaluator(perturbed_after(BASE, t, seed)).evaluate(tree)
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1], err_msg=to_string(tree))


def simple_call(spec, window: int) -> Call:
    series = iter([Name("close"), Name("volume"), Name("open")])
    args = []
    for arg in spec.args:
        if arg.kind is Kind.SERIES:
            args.append(next(series))
        elif arg.kind is Kind.GROUP:
            args.append(Name("sector"))
        elif arg.kind is Kind.INTRADAY:
            args.append(Name("volume"))
        elif arg.kind in (Kind.WINDOW, Kind.LAG):
            args.append(_num(window))
        else:
            args.append(_num(arg.default if arg.default is not None else _const_in_bounds(arg)))
    return Call(spec.name, tuple(args))


def _num(value: float) -> Num:
    return Num(float(value))


def _const_in_bounds(arg) -> float:
    low = arg.lower if arg.lower is not None else 0.5
    return max(low, 2.0) if arg.upper is None else min(max(low, 2.0), arg.upper)


OPERATORS = distinct_operators()


@pytest.mark.parametrize("spec", OPERATORS, ids=[s.name for s in OPERATORS])
@SLOW
@given(t=st.integers(0, 46), window=st.sampled_from(WINDOWS), seed=st.integers(0, 1000))
def test_every_operator_has_no_lookahead(spec, t: int, window: int, seed: int) -> None:
    assert_no_lookahead(simple_call(spec, window), t, seed)


@SLOW
@given(tree=formulas(max_leaves=8), t=st.integers(0, 46), seed=st.integers(0, 1000))
def test_random_formulas_have_no_lookahead(tree: Node, t: int, seed: int) -> None:
    assert_no_lookahead(tree, t, seed)


@SLOW
@given(tree=formulas(max_leaves=8), start=st.integers(1, 40))
def test_values_from_a_lookback_window_equal_the_full_history(tree: Node, start: int) -> None:
    need = lookback(tree)
    first = max(0, start - need)
    full = evaluate_or_reject(BASE, tree)
    partial = Evaluator(BASE.slice_rows(first, len(BASE.dates))).evaluate(tree)
    np.testing.assert_array_equal(full[start:], partial[start - first :], err_msg=to_string(tree))

"""Holm and Benjamini-Hochberg on hand-worked p-values, against plain-loop references, and the
first hurdle against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from evaluation.multiple_testing import first_hurdle, one_sided_pvalues, significant


def t_of(*pvalues: float) -> list[float]:
    """The one-sided t-statistics whose p-values are these."""
    return [float(norm.isf(p)) for p in pvalues]


def reference_holm(pvalues: list[float], alpha: float, tests: int) -> list[bool]:
    """Holm, step by step over the sorted p's (the untested hypotheses sort last with p = 1)."""
    ranked = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out = [False] * len(pvalues)
    for step, i in enumerate(ranked):
        if pvalues[i] > alpha / (tests - step):
            break
        out[i] = True
    return out


def reference_bh(pvalues: list[float], alpha: float, tests: int) -> list[bool]:
    """Benjamini-Hochberg: the largest k with p_(k) <= k alpha / tests, all of the k smallest rejected."""
    ordered = sorted(pvalues)
    k = max((j + 1 for j, p in enumerate(ordered) if p <= (j + 1) * alpha / tests), default=0)
    cutoff = ordered[k - 1] if k else -1.0
    return [p <= cutoff for p in pvalues]


def test_one_sided_pvalues() -> None:
    np.testing.assert_allclose(
        one_sided_pvalues(np.array([0.0, 1.96, -1.0])), [0.5, 0.0249979, 0.8413447], rtol=1e-6
    )
    assert one_sided_pvalues(np.array([np.nan]))[0] == 1.0


def test_holm_by_hand() -> None:
    t = [3.0, 2.5, 1.0]  # p = 0.00135, 0.00621, 0.159
    # tests 3: thresholds 0.05/3, 0.05/2, 0.05 -> the first two pass, 0.159 > 0.05
    np.testing.assert_array_equal(significant(t, "holm", 0.05, 3, 0.0), [True, True, False])
    # tests 10: thresholds 0.005, 0.00556 -> 0.00135 passes, 0.00621 does not, and the rest stop
    np.testing.assert_array_equal(significant(t, "holm", 0.05, 10, 0.0), [True, False, False])
    # tests 100: the first threshold 0.0005 already fails
    np.testing.assert_array_equal(significant(t, "holm", 0.05, 100, 0.0), [False, False, False])


def test_holm_steps_down_and_stops_at_the_first_failure() -> None:
    # p 0.04 and 0.03 over 2 tests: 0.03 > 0.025 stops Holm, though 0.04 <= 0.05
    np.testing.assert_array_equal(significant(t_of(0.04, 0.03), "holm", 0.05, 2, 0.0), [False, False])
    np.testing.assert_array_equal(significant(t_of(0.04, 0.02), "holm", 0.05, 2, 0.0), [True, True])


def test_bh_by_hand() -> None:
    t = t_of(0.036, 0.02, 0.03, 0.5)
    # tests 4: k alpha / 4 = 0.0125, 0.025, 0.0375, 0.05; the third smallest (0.036) passes, so the
    # three smallest are rejected though 0.02 and 0.03 miss their own thresholds (step-up)
    np.testing.assert_array_equal(significant(t, "bh", 0.05, 4, 0.0), [True, True, True, False])
    # Holm on the same p's stops at once: 0.02 > 0.05 / 4
    np.testing.assert_array_equal(significant(t, "holm", 0.05, 4, 0.0), [False] * 4)
    # tests 8: 0.00625, 0.0125, 0.01875, 0.025 -> none passes
    np.testing.assert_array_equal(significant(t, "bh", 0.05, 8, 0.0), [False] * 4)
    # tests 5: 0.01, 0.02, 0.03, 0.04 -> 0.036 > 0.03 and 0.5 > 0.04; 0.03 > 0.02, 0.02 > 0.01
    np.testing.assert_array_equal(significant(t, "bh", 0.05, 5, 0.0), [False] * 4)
    np.testing.assert_array_equal(significant(t, "bh", 0.1, 5, 0.0), [True, True, True, False])


def test_fixed_is_a_one_sided_hurdle() -> None:
    np.testing.assert_array_equal(
        significant([3.0, 2.0, -3.0, np.nan, 2.5], "fixed", 0.05, 50, 2.5), [True, False, False, False, True]
    )


def test_nan_t_is_never_significant() -> None:
    for method in ("holm", "bh"):
        np.testing.assert_array_equal(significant([8.0, np.nan], method, 0.05, 2, 0.0), [True, False])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(-3, 6, allow_nan=False) | st.just(math.nan), max_size=12),
    st.integers(0, 20),
    st.sampled_from([0.01, 0.05, 0.2]),
)
def test_matches_plain_loop_references(tstats: list[float], extra: int, alpha: float) -> None:
    tests = max(1, len(tstats) + extra)
    pvalues = [1.0 if math.isnan(t) else float(norm.sf(t)) for t in tstats]
    holm = significant(tstats, "holm", alpha, tests, 0.0)
    bh = significant(tstats, "bh", alpha, tests, 0.0)
    assert holm.tolist() == reference_holm(pvalues, alpha, tests)
    assert bh.tolist() == reference_bh(pvalues, alpha, tests)
    assert not (holm & ~bh).any()  # BH rejects whatever Holm does


def test_first_hurdle() -> None:
    for alpha, tests in [(0.05, 1), (0.05, 200), (0.01, 5000)]:
        assert first_hurdle("holm", alpha, tests, 9.0) == pytest.approx(norm.isf(alpha / tests), rel=1e-12)
        assert first_hurdle("bh", alpha, tests, 9.0) == pytest.approx(norm.isf(alpha / tests), rel=1e-12)
    assert first_hurdle("fixed", 0.05, 200, 3.0) == 3.0
    t = first_hurdle("holm", 0.05, 200, 0.0)  # the best of 200 is significant exactly from here
    assert significant([t + 1e-9], "holm", 0.05, 200, 0.0)[0]
    assert not significant([t - 1e-6], "holm", 0.05, 200, 0.0)[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.0, 2.0, 3.0], "holm", 0.05, 2, 0.0), "tests"),
        (([1.0], "bh", 0.0, 5, 0.0), "alpha"),
        (([1.0], "bh", 1.0, 5, 0.0), "alpha"),
        (([1.0], "bonferroni", 0.05, 5, 0.0), "method"),
    ],
)
def test_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        significant(*args)


def test_first_hurdle_bad_arguments() -> None:
    with pytest.raises(ValueError, match="tests"):
        first_hurdle("holm", 0.05, 0, 0.0)
    with pytest.raises(ValueError, match="method"):
        first_hurdle("sidak", 0.05, 10, 0.0)  # type: ignore[arg-type]

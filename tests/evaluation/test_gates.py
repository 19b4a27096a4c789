"""Degeneracy gates: planted degenerate factors fail the gate named in the reason; a real signal passes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evaluation import metrics
from evaluation.gates import Gates, distinct_share, gate_failure

T, N = 240, 300
ROWS = slice(20, 200)
GATES = Gates(min_coverage=0.8, min_distinct=0.01, min_dated_share=0.8)
MIN_NAMES = 10


@pytest.fixture()
def panels() -> tuple[np.ndarray, np.ndarray]:
    """(a continuous factor, the universe: a label valid everywhere but on a few random cells)."""
    rng = np.random.default_rng(7)
    universe = rng.random((T, N)) > 0.05
    return rng.standard_normal((T, N)), universe


def test_a_continuous_signal_passes(panels) -> None:
    factor, universe = panels
    assert gate_failure(factor, universe, ROWS, GATES, MIN_NAMES) is None


def test_a_flag_that_is_one_almost_everywhere_fails_distinct(panels) -> None:
    _, universe = panels
    flag = np.ones((T, N))
    for t in range(T):
        flag[t, (np.arange(3) + 7 * t) % N] = 0.0  # 3 zeros per date among 300 names
    reason = gate_failure(flag, universe, ROWS, GATES, MIN_NAMES)
    assert reason is not None and reason.split()[0] == "distinct"
    assert reason.startswith(f"distinct {2 / N:.3g} < 0.01")


def test_a_mostly_nan_factor_fails_coverage(panels) -> None:
    factor, universe = panels
    sparse = np.where(np.arange(N) % 3 == 0, factor, np.nan)  # a third of the names
    reason = gate_failure(sparse, universe, ROWS, GATES, MIN_NAMES)
    assert reason is not None and reason.split()[0] == "coverage"
    expected = (np.isfinite(sparse) & universe)[ROWS].sum() / universe[ROWS].sum()  # by hand
    assert reason.startswith(f"coverage {expected:.3g} < 0.8")


def test_a_factor_defined_on_too_few_dates_fails_dated(panels) -> None:
    factor, universe = panels
    few_dates = factor.copy()
    few_dates[np.arange(T) % 2 == 0, MIN_NAMES - 2 :] = np.nan  # half the dates keep 8 names
    gates = Gates(min_coverage=0.4, min_distinct=0.01, min_dated_share=0.8)
    reason = gate_failure(few_dates, universe, ROWS, gates, MIN_NAMES)
    assert reason is not None and reason.split()[0] == "dated"
    assert reason.startswith("dated 0.5 < 0.8 (90 of 180 dates)")


def test_dated_counts_only_dates_the_label_can_score(panels) -> None:
    factor, universe = panels
    universe = universe.copy()
    universe[150:] = False  # the label's tail (e.g. the last h rows) is never scorable
    gates = Gates(min_coverage=0.8, min_distinct=0.01, min_dated_share=1.0)
    assert gate_failure(factor, universe, ROWS, gates, MIN_NAMES) is None


def test_coverage_matches_the_metric() -> None:
    rng = np.random.default_rng(3)
    factor = np.where(rng.random((50, 40)) < 0.3, np.nan, rng.standard_normal((50, 40)))
    universe = rng.random((50, 40)) < 0.9
    rows = slice(5, 45)
    share = metrics.coverage(factor, universe, rows=rows)
    gates = Gates(min_coverage=share + 1e-9, min_distinct=0.0, min_dated_share=0.0)
    assert gate_failure(factor, universe, rows, gates, 2) == f"coverage {share:.3g} < {share + 1e-9:g}"
    assert gate_failure(factor, universe, rows, Gates(share, 0.0, 0.0), 2) is None


def test_distinct_share_by_hand() -> None:
    values = np.array(
        [
            [1.0, 1.0, 2.0, np.nan],  # 2 distinct of 3
            [5.0, np.nan, np.nan, np.nan],  # fewer than 2 finite: 0
            [0.0, -0.0, 3.0, np.inf],  # -0.0 == 0.0, inf is not finite: 2 of 3
            [4.0, 3.0, 2.0, 1.0],  # 4 of 4
            [7.0, 7.0, 7.0, 7.0],  # 1 of 4
        ]
    )
    assert distinct_share(values, slice(0, 5)) == pytest.approx(np.median([2 / 3, 0, 2 / 3, 1, 1 / 4]))
    assert distinct_share(values, slice(3, 5)) == pytest.approx(np.median([1, 1 / 4]))
    assert distinct_share(values, slice(0, 5), dates=2) == pytest.approx(np.median([2 / 3, 1 / 4]))  # 0, 4
    assert np.isnan(distinct_share(values, slice(2, 2)))


def test_distinct_share_samples_evenly_spaced_dates() -> None:
    values = np.tile(np.arange(10.0), (100, 1))
    values[::2] = 1.0  # even rows are constant
    assert distinct_share(values, slice(0, 100), dates=100) == pytest.approx(0.55)  # median of 0.1 / 1
    odd = np.linspace(1, 99, 50).astype(int)
    assert (odd % 2 == 1).all()  # the 50 dates sampled from rows 1..99 are the odd ones
    assert distinct_share(values, slice(1, 100), dates=50) == 1.0


def test_gate_failure_rejects_a_stepped_slice(panels) -> None:
    factor, universe = panels
    with pytest.raises(ValueError, match="step"):
        gate_failure(factor, universe, slice(0, 100, 2), GATES, MIN_NAMES)


@settings(max_examples=40, deadline=None)
@given(
    junk=hnp.arrays(np.float64, (30, 12), elements=st.sampled_from([np.nan, 0.0, 1.0, -2.5, 1e300])),
    start=st.integers(0, 15),
    length=st.integers(0, 15),
)
def test_gates_never_read_rows_outside_their_slice(junk, start, length) -> None:
    rng = np.random.default_rng(start * 31 + length)
    factor = np.where(rng.random((30, 12)) < 0.2, np.nan, rng.integers(0, 4, (30, 12)).astype(float))
    universe = rng.random((30, 12)) < 0.8
    rows = slice(start, start + length)
    inside = np.zeros(30, dtype=bool)
    inside[rows] = True
    changed = np.where(inside[:, None], factor, junk)
    changed_universe = np.where(inside[:, None], universe, junk > 0)
    gates = Gates(min_coverage=0.7, min_distinct=0.3, min_dated_share=0.6)
    before = gate_failure(factor, universe, rows, gates, 3)
    assert gate_failure(changed, changed_universe, rows, gates, 3) == before
    share = distinct_share(factor, rows, dates=5)
    assert distinct_share(changed, rows, dates=5) == pytest.approx(share, nan_ok=True)

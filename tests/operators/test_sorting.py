"""The shared sorting helpers against numpy's stable argsort, scipy's rankdata and sorted lists."""

from __future__ import annotations

import bisect

import numpy as np
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from operators import cross_section as cs
from operators import sorting

# few distinct values, so that runs have ties; -0.0 and 0.0 are equal keys
KEYS = st.lists(st.sampled_from([-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, 1e300]), min_size=0, max_size=40)


@st.composite
def runs(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    """Keys and a slice [lo, hi) of them to sort."""
    keys = np.array(draw(KEYS), dtype=np.float64)
    lo = draw(st.integers(0, keys.size))
    hi = draw(st.integers(lo, keys.size))
    return keys, lo, hi


def sorted_slice(keys: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy's stable sort of keys[lo:hi], and where each key came from."""
    order = np.argsort(keys[lo:hi], kind="stable")
    return keys[lo:hi][order], np.arange(lo, hi)[order]


@settings(max_examples=300, deadline=None)
@given(runs())
def test_insertion_sort_is_numpys_stable_sort(run):
    keys, lo, hi = run
    sorted_keys, origin = sorted_slice(keys, lo, hi)
    got, payload = keys.copy(), np.arange(keys.size)
    sorting.insertion_sort(got, payload, lo, hi)
    assert_array_equal(got[lo:hi], sorted_keys)
    assert_array_equal(payload[lo:hi], origin)
    assert_array_equal(got[:lo], keys[:lo])
    assert_array_equal(got[hi:], keys[hi:])


@settings(max_examples=300, deadline=None)
@given(runs())
def test_sort_run_and_heapsort_sort_the_slice_and_carry_the_payload(run):
    keys, lo, hi = run
    for sort in (sorting.sort_run, sorting.heapsort):
        got, payload = keys.copy(), np.arange(keys.size)
        sort(got, payload, lo, hi)
        assert_array_equal(got[lo:hi], np.sort(keys[lo:hi]))
        assert_array_equal(np.sort(payload[lo:hi]), np.arange(lo, hi))
        assert_array_equal(keys[payload[lo:hi]], got[lo:hi])  # each key still beside its origin
        assert_array_equal(got[hi:], keys[hi:])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60))
def test_sort_run_on_integer_keys_longer_than_a_short_run(values):
    keys = np.array(values * 3, dtype=np.uint64)  # often longer than SHORT_RUN: the heapsort path
    payload = np.arange(keys.size)
    sorting.sort_run(keys, payload, 0, keys.size)
    assert_array_equal(keys, np.sort(np.array(values * 3, dtype=np.uint64)))
    assert_array_equal(np.array(values * 3, dtype=np.uint64)[payload], keys)


def test_move_back_counts_the_keys_it_passes():
    keys = np.array([1.0, 2.0, 2.0, 3.0, 2.0])
    payload = np.arange(5)
    assert sorting.move_back(keys, payload, 0, 4) == 1  # passes the 3, stops after its equals
    assert_array_equal(keys, [1.0, 2.0, 2.0, 2.0, 3.0])
    assert_array_equal(payload, [0, 1, 2, 4, 3])
    assert sorting.move_back(keys, payload, 0, 4) == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([-1.0, 0.0, 2.0, 7.0]), min_size=1, max_size=40).map(sorted))
def test_tie_runs_give_scipys_average_ranks(values):
    keys = np.array(values)
    ranks = np.empty(keys.size)
    first = 0
    while first < keys.size:
        end = sorting.equal_run_end(keys, first, keys.size)
        assert (keys[first:end] == keys[first]).all()
        assert end == keys.size or keys[end] != keys[first]
        ranks[first:end] = 0.5 * (first + end - 1) + 1.0
        first = end
    assert_array_equal(ranks, scipy.stats.rankdata(keys))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40).map(sorted), st.integers(0, 31))
def test_prefix_run_end_finds_the_keys_sharing_the_high_bits(values, shift):
    keys = np.array(values, dtype=np.uint32)
    first = 0
    while first < keys.size:
        end = sorting.prefix_run_end(keys, first, keys.size, np.uint32(shift))
        high = keys >> np.uint32(shift)
        assert (high[first:end] == high[first]).all()
        assert end == keys.size or high[end] != high[first]
        first = end


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([-0.0, 0.0, 1.0, -3.0, 2.5])), max_size=60))
def test_sorted_window_after_inserts_and_removals(steps):
    """insert_sorted puts a value after its equals and remove_sorted drops the first of them, as
    bisect.insort_right and list.remove do (-0.0 == 0.0, so the signs of zeros tell them apart)."""
    values = np.empty(len(steps) + 1)
    m = 0
    window: list[float] = []
    for insert, v in steps:
        if insert or v not in window:
            m = sorting.insert_sorted(values, m, v)
            bisect.insort_right(window, v)
        else:
            m = sorting.remove_sorted(values, m, v)
            window.remove(v)
        assert_array_equal(values[:m], window)
        assert_array_equal(np.signbit(values[:m]), np.signbit(window))


def test_rank_of_a_bucket_holding_many_close_values_is_scipys():
    """Values 1e-15 apart beside +-1e300 share one bucket of the rank keys: it is sorted on the
    values themselves (heapsort, longer than a short run)."""
    rng = np.random.default_rng(1)
    row = np.concatenate([1.0 + rng.integers(0, 40, 60) * 1e-15, [1e300, -1e300, 0.0, -0.0]])
    x = np.stack([row, rng.permutation(row), row[::-1]])
    keys, counts, index_bits = cs._sorted_rank_keys(x)
    assert np.unique(keys[0][: counts[0]] >> index_bits, return_counts=True)[1].max() > sorting.SHORT_RUN
    expected = scipy.stats.rankdata(x, axis=1) / x.shape[1]
    assert_array_equal(cs.rank(x), expected)
    assert_array_equal(cs.group_rank(x, np.zeros_like(x)), expected)

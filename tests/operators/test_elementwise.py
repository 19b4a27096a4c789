"""Elementwise operators against hand-worked values and an independent numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

from operators import REGISTRY, Kind
from operators import elementwise as ew
from tests.conftest import random_panel

NAN = np.nan

INFIX = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "power": "**", "neg": "-",
    "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
    "and_": "&", "or_": "|", "not_": "~",
}  # fmt: skip
COMMUTATIVE = {"add", "mul", "eq", "ne", "and_", "or_", "max", "min"}
PLAIN = {"abs", "sign", "log", "slog", "sqrt", "signed_power", "inv", "max", "min", "where"}
ELEMENTWISE = sorted(INFIX.keys() | PLAIN)


def kernel(name: str):
    return REGISTRY[name].kernel


def row(*values: float) -> np.ndarray:
    """A read-only (1, k) panel."""
    out = np.array([values], dtype=np.float64)
    out.flags.writeable = False
    return out


def _with_nan_inputs(result: np.ndarray, *inputs) -> np.ndarray:
    mask = np.zeros(np.shape(result), dtype=bool)
    for value in inputs:
        mask |= np.isnan(value)
    return np.where(mask, NAN, result)


def _truth(flags) -> np.ndarray:
    return np.asarray(flags, dtype=np.float64)


def _power_reference(x, e):
    undefined = ((x == 0) & (e < 0)) | ((x < 0) & (e != np.floor(e)))
    return np.where(undefined, NAN, np.power(x, e))


# The contract written again with plain numpy (masks and np.where, no shared code).
REFERENCE = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: np.where(np.abs(y) < 1e-12, NAN, x / np.where(y == 0, 1.0, y)),
    "power": _power_reference,
    "neg": lambda x: -x,
    "lt": lambda x, y: _truth(x < y),
    "le": lambda x, y: _truth(x <= y),
    "gt": lambda x, y: _truth(x > y),
    "ge": lambda x, y: _truth(x >= y),
    "eq": lambda x, y: _truth(x == y),
    "ne": lambda x, y: _truth(x != y),
    "and_": lambda x, y: _truth((x != 0) & (y != 0)),
    "or_": lambda x, y: _truth((x != 0) | (y != 0)),
    "not_": lambda x: _truth(x == 0),
    "abs": np.abs,
    "sign": np.sign,
    "log": lambda x: np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), NAN),
    "slog": lambda x: np.sign(x) * np.log1p(np.abs(x)),
    "sqrt": lambda x: np.where(x >= 0, np.sqrt(np.abs(x)), NAN),
    "signed_power": lambda x, e: np.sign(x) * np.abs(x) ** e,
    "inv": lambda x: np.where(np.abs(x) < 1e-12, NAN, 1.0 / np.where(x == 0, 1.0, x)),
    "max": np.maximum,
    "min": np.minimum,
}


def reference(name: str, *args):
    """Expected result: the numpy formula, NaN for any NaN input, inf turned into NaN."""
    with np.errstate(all="ignore"):
        if name == "where":
            c, a, b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in args))
            result = np.where(np.isnan(c), NAN, np.where(c != 0, a, b))
        else:
            result = _with_nan_inputs(REFERENCE[name](*args), *args)
    result = np.asarray(result, dtype=np.float64)
    return np.where(np.isinf(result), NAN, result)


# --- the registry ------------------------------------------------------------------------


def test_the_family_declares_exactly_the_listed_operators():
    declared = {spec.name for spec in REGISTRY.values() if spec.family == "elementwise"}
    assert declared == set(ELEMENTWISE)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_declaration_infix_commutativity_and_lookback(name):
    spec = REGISTRY[name]
    assert spec.infix == INFIX.get(name)
    assert spec.commutative == (name in COMMUTATIVE)
    assert spec.lookback({"e": 2.0}) == 0
    assert all(a.scalar_ok for a in spec.args if a.kind is Kind.SERIES)


def test_signed_power_takes_a_constant_exponent():
    assert [a.kind for a in REGISTRY["signed_power"].args] == [Kind.SERIES, Kind.CONST]


# --- hand-worked values ------------------------------------------------------------------


def test_arithmetic_propagates_nan_and_broadcasts_numbers():
    x = row(1.0, -2.0, NAN, 4.0)
    assert_array_equal(ew.add(x, 1.0), [[2.0, -1.0, NAN, 5.0]])
    assert_array_equal(ew.sub(1.0, x), [[0.0, 3.0, NAN, -3.0]])
    assert_array_equal(ew.mul(x, x), [[1.0, 4.0, NAN, 16.0]])
    assert_array_equal(ew.neg(x), [[-1.0, 2.0, NAN, -4.0]])


def test_div_is_nan_for_zero_and_near_zero_denominators():
    x = row(1.0, 1.0, 1.0, -1.0, NAN, 0.0, 6.0)
    got = ew.div(x, row(0.0, 1e-13, -1e-13, 1e-12, 1.0, 0.0, 3.0))
    assert_array_equal(got, [[NAN, NAN, NAN, -1.0 / 1e-12, NAN, NAN, 2.0]])
    assert np.isnan(ew.div(row(1.0, 2.0), 0.0)).all()
    assert math.isnan(ew.div(1.0, -0.0))


def test_power_edge_cases():
    x = row(-8.0, -2.0, 0.0, 0.0, 4.0, NAN, 1.0, 1e200, 0.0, 2.0)
    e = row(1 / 3, 3.0, -1.0, 0.0, 0.5, 0.0, NAN, 2.0, 2.0, -1.0)
    assert_array_equal(ew.power(x, e), [[NAN, -8.0, NAN, 1.0, 2.0, NAN, NAN, NAN, 0.0, 0.5]])


def test_log_sqrt_slog_inv_abs_sign():
    x = row(-1.0, 0.0, 1.0, math.e, NAN)
    assert_allclose(ew.log(x), [[NAN, NAN, 0.0, 1.0, NAN]], rtol=1e-15)
    assert_array_equal(ew.sqrt(row(-1.0, 0.0, 4.0, NAN)), [[NAN, 0.0, 2.0, NAN]])
    assert_allclose(ew.slog(row(-(math.e - 1), 0.0, math.e - 1, NAN)), [[-1.0, 0.0, 1.0, NAN]])
    assert_array_equal(ew.inv(row(0.0, 1e-13, 2.0, -4.0, NAN)), [[NAN, NAN, 0.5, -0.25, NAN]])
    assert_array_equal(ew.absolute(row(-3.0, 0.0, 2.0, NAN)), [[3.0, 0.0, 2.0, NAN]])
    assert_array_equal(ew.sign(row(-3.0, 0.0, 2.0, NAN)), [[-1.0, 0.0, 1.0, NAN]])


def test_signed_power_keeps_the_sign():
    got = ew.signed_power(row(-4.0, 4.0, 0.0, NAN, -8.0), 0.5)
    assert_allclose(got, [[-2.0, 2.0, 0.0, NAN, -np.sqrt(8.0)]])
    assert_array_equal(ew.signed_power(row(0.0, -2.0), -1.0), [[NAN, -0.5]])


def test_comparisons_are_one_zero_or_nan():
    x = row(1.0, 2.0, 3.0, NAN, 1.0)
    y = row(2.0, 2.0, 2.0, 1.0, NAN)
    assert_array_equal(ew.lt(x, y), [[1.0, 0.0, 0.0, NAN, NAN]])
    assert_array_equal(ew.le(x, y), [[1.0, 1.0, 0.0, NAN, NAN]])
    assert_array_equal(ew.gt(x, y), [[0.0, 0.0, 1.0, NAN, NAN]])
    assert_array_equal(ew.ge(x, y), [[0.0, 1.0, 1.0, NAN, NAN]])
    assert_array_equal(ew.eq(x, y), [[0.0, 1.0, 0.0, NAN, NAN]])
    assert_array_equal(ew.ne(x, y), [[1.0, 0.0, 1.0, NAN, NAN]])


def test_logic_treats_non_zero_as_true():
    x = row(0.0, 0.0, -2.5, 3.0, NAN, 1.0)
    y = row(0.0, 7.0, 0.0, 0.1, 1.0, NAN)
    assert_array_equal(ew.and_(x, y), [[0.0, 0.0, 0.0, 1.0, NAN, NAN]])
    assert_array_equal(ew.or_(x, y), [[0.0, 1.0, 1.0, 1.0, NAN, NAN]])
    assert_array_equal(ew.not_(x), [[1.0, 1.0, 0.0, 0.0, NAN, 0.0]])


def test_max_min_of_two_are_nan_when_either_is_nan():
    x = row(1.0, 5.0, NAN, 2.0)
    y = row(3.0, -1.0, 0.0, NAN)
    assert_array_equal(ew.maximum(x, y), [[3.0, 5.0, NAN, NAN]])
    assert_array_equal(ew.minimum(x, y), [[1.0, -1.0, NAN, NAN]])


def test_where_picks_by_condition_and_is_nan_for_nan_condition():
    got = ew.where(row(1.0, 0.0, NAN, -2.0, 0.0), row(10.0, 10.0, 10.0, NAN, 10.0), 20.0)
    assert_array_equal(got, [[10.0, 20.0, NAN, NAN, 20.0]])


def test_overflow_and_infinite_inputs_give_nan():
    assert_array_equal(ew.mul(row(1e200, -1e200), 1e200), [[NAN, NAN]])
    assert_array_equal(ew.add(row(1.7e308), row(1.7e308)), [[NAN]])
    assert_array_equal(ew.neg(row(np.inf, -np.inf)), [[NAN, NAN]])
    assert_array_equal(ew.div(row(1e300), 1e-11), [[NAN]])


def test_numbers_alone_give_a_python_float():
    assert ew.add(1.0, 2.0) == 3.0 and type(ew.add(1.0, 2.0)) is float
    assert type(ew.lt(1.0, 2.0)) is float and ew.lt(1.0, 2.0) == 1.0
    assert math.isnan(ew.log(-1.0))
    assert type(ew.where(0.0, 1.0, 2.0)) is float and ew.where(0.0, 1.0, 2.0) == 2.0


def test_mixed_calls_broadcast_to_the_panel_and_leave_inputs_alone(rng):
    panel = random_panel(rng, t=30, n=7)
    panel.flags.writeable = False
    before = panel.copy()
    for out in (ew.sub(panel, 1.0), ew.sub(1.0, panel), ew.where(panel, 1.0, panel), ew.neg(panel)):
        assert out.shape == panel.shape and out.dtype == np.float64
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.shares_memory(out, panel)
    assert_array_equal(panel, before)


def test_panel_matches_reference_on_a_realistic_panel(rng):
    x = random_panel(rng, t=40, n=9)
    y = random_panel(rng, t=40, n=9) - 50.0
    for name in ELEMENTWISE:
        args = {1: (y,), 2: (x, y), 3: (y, x, y)}[REGISTRY[name].arity]
        if name == "signed_power":
            args = (y, 0.7)
        assert_allclose(kernel(name)(*args), reference(name, *args), rtol=1e-14, err_msg=name)


# --- properties over any floats, huge and infinite ones included -------------------------

SPECIAL = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-12, -1e-13, 1e308, -1e308, NAN])
ANY_FLOAT = st.one_of(st.floats(width=64), SPECIAL)
PANEL = hnp.arrays(np.float64, (3, 4), elements=ANY_FLOAT)
OPERAND = st.one_of(PANEL, ANY_FLOAT)


def _read_only(value):
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    return value


@pytest.mark.parametrize("name", ELEMENTWISE)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matches_reference_never_inf_and_keeps_inputs(name, data):
    spec = REGISTRY[name]
    args = [
        _read_only(data.draw(OPERAND if a.kind is Kind.SERIES else ANY_FLOAT, label=a.name))
        for a in spec.args
    ]
    copies = [np.copy(a) for a in args]
    got = spec.kernel(*args)
    want = reference(name, *args)
    if all(not isinstance(a, np.ndarray) for a in args):
        assert type(got) is float
    else:
        assert isinstance(got, np.ndarray) and got.shape == (3, 4)
    assert not np.isinf(got).any()
    assert_allclose(got, want, rtol=1e-14, atol=0, equal_nan=True)
    for arg, copy in zip(args, copies, strict=True):
        assert_array_equal(arg, copy)


# --- chains: several steps run block by block --------------------------------------------


def _chain_panel(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Random values with NaN, +-inf, zeros and huge numbers sprinkled in."""
    x = rng.standard_normal(shape) * 10.0
    for value, share in ((NAN, 0.1), (np.inf, 0.02), (-np.inf, 0.02), (0.0, 0.05), (1e300, 0.02)):
        x[rng.random(shape) < share] = value
    return x


def test_a_chain_matches_numpy_step_by_step_on_nan_and_inf(rng):
    """(c - o) / (h - l + 0.001) and a where / sqrt / max chain, across several blocks and a part
    block, against the numpy reference of each step applied in turn."""
    shape = (7, ew.CHAIN_BLOCK // 3)
    c, o, h, lo = (_chain_panel(rng, shape) for _ in range(4))
    steps = [
        (ew.CHAIN_BINARY, ew._SUB, ew.CHAIN_LEAVES + 1, 0, 1, 0),
        (ew.CHAIN_BINARY, ew._SUB, ew.CHAIN_LEAVES + 2, 2, 3, 0),
        (ew.CHAIN_BINARY, ew._ADD, ew.CHAIN_LEAVES + 3, ew.CHAIN_LEAVES + 2, ew.CHAIN_LEAVES, 0),
        (ew.CHAIN_BINARY, ew._DIV, -1, ew.CHAIN_LEAVES + 1, ew.CHAIN_LEAVES + 3, 0),
    ]
    got = ew.run_chain(steps, [c, o, h, lo], [0.001], 4)
    expected = reference("div", reference("sub", c, o), reference("add", reference("sub", h, lo), 0.001))
    assert_array_equal(got, expected)

    steps = [
        (ew.CHAIN_BINARY, ew._GT, ew.CHAIN_LEAVES + 1, 0, 1, 0),
        (ew.CHAIN_UNARY, ew._SQRT, ew.CHAIN_LEAVES + 2, 2, 0, 0),
        (ew.CHAIN_BINARY, ew._MAX, ew.CHAIN_LEAVES + 3, 1, ew.CHAIN_LEAVES, 0),
        (ew.CHAIN_WHERE, 0, -1, ew.CHAIN_LEAVES + 1, ew.CHAIN_LEAVES + 2, ew.CHAIN_LEAVES + 3),
    ]
    got = ew.run_chain(steps, [c, o, h], [2.5], 4)
    expected = reference("where", reference("gt", c, o), reference("sqrt", h), reference("max", o, 2.5))
    assert_array_equal(got, expected)


def test_power_by_a_number_is_the_same_in_blocks_as_whole(rng):
    x = _chain_panel(rng, (3, ew.POWER_CHUNK))
    for e in (5.0, 0.5, -1.5, 3.0):
        assert_array_equal(ew.power(x, e), reference("power", x, e))
        assert_array_equal(ew.signed_power(x, e), reference("signed_power", x, e))

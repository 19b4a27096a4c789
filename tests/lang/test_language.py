"""The formula language: parsing, printing, canonical form, lookback, errors, evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from miner import FormulaError, canonical, evaluate, lookback, parse
from miner.lang import Call, Evaluator, Name, Num, canonicalize, to_string
from miner.market import MarketData
from tests.strategies import SERIES_FIELDS, applied, distinct_operators, formulas, small_market

ALPHAS = [
    "rank(decay_linear(ts_corr(vwap, volume, 4), 2)) * -1",
    "-1 * ts_corr(rank(delta(log(volume), 2)), rank((close - open) / open), 6)",
    "(rank(ts_max(vwap - close, 3)) + rank(ts_min(vwap - close, 3))) * rank(delta(volume, 3))",
    "where(ts_sum(close, 8) / 8 < ts_mean(close, 2), -1, 1)",
    "sign(delta(volume, 1)) * -delta(close, 1)",
    "(close - open) / (high - low + 0.001)",
    "group_neutralize(rank(returns), sector) ** 2",
    "~(close > open) | (volume >= ts_mean(volume, 20)) & (returns != 0)",
]


@pytest.mark.parametrize("text", ALPHAS)
def test_print_parses_back_to_the_same_tree(text: str) -> None:
    tree = parse(text)
    assert parse(to_string(tree)) == tree


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas(max_leaves=10))
def test_roundtrip_for_random_trees(tree) -> None:
    assert parse(to_string(tree)) == tree
    canon = canonicalize(tree)
    assert parse(to_string(canon)) == canon
    assert canonical(to_string(canon)) == to_string(canon)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("close+open", "open + close"),
        ("(((close)))", "close"),
        ("rank(close) * -1", "-1 * rank(close)"),
        ("-rank(close)", "rank(close) * -1"),
        ("--close", "close"),
        ("ts_corr(volume, close, 5)", "ts_corr(close, volume, 5.0)"),
        ("max(high, low)", "max(low, high)"),
        ("scale(close)", "scale(close, 1)"),
        ("(open == close) & (high | low)", "(low | high) & (close == open)"),
        ("add(close, 1)", "1 + close"),
        ("close ** 2.0", "power(close, 2)"),
    ],
)
def test_equivalent_spellings_share_one_canonical_form(a: str, b: str) -> None:
    assert canonical(a) == canonical(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("close - open", "open - close"), ("close / open", "open / close"), ("delay(close, 1)", "close")],
)
def test_different_formulas_keep_different_canonical_forms(a: str, b: str) -> None:
    assert canonical(a) != canonical(b)


def test_printer_spells_numbers_once_and_parenthesizes_by_precedence() -> None:
    assert canonical("close * (1.0 + 2.50)") == "(1 + 2.5) * close"
    assert to_string(parse("(close - open) - (high - low)")) == "close - open - (high - low)"
    assert to_string(parse("(-close) ** 2")) == "(-close) ** 2"
    assert to_string(parse("-close ** 2")) == "-close ** 2"
    assert to_string(parse("(close > open) > 0")) == "(close > open) > 0"
    assert parse("-close ** 2") == Call("neg", (Call("power", (Name("close"), Num(2.0))),))


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("close", 0),
        ("rank(close)", 0),
        ("delay(close, 3)", 3),
        ("ts_mean(close, 5)", 4),
        ("ts_mean(delay(close, 2), 5)", 6),
        ("ts_corr(ts_mean(close, 10), delta(volume, 3), 6)", 14),
        ("rank(decay_linear(ts_corr(vwap, volume, 4), 2)) * -1", 4),
        ("ts_std(close, 20) / ts_mean(close, 20) + delay(volume, 30)", 30),
    ],
)
def test_lookback_by_hand(formula: str, expected: int) -> None:
    assert lookback(formula) == expected


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("foo(close)", "unknown operator 'foo'"),
        ("ts_mean(close)", "takes 2 arguments, got 1"),
        ("ts_mean(close, 2.5)", "must be a positive integer"),
        ("ts_mean(close, 0)", "must be a positive integer"),
        ("ts_mean(close, volume)", "must be a number, not a series"),
        ("delay(close, -1)", "looks into the future"),
        ("ts_mean(5, close)", "must be a series"),
        ("rank(5)", "must be a series"),
        ("close.attr", "Attribute"),
        ("close[0]", "Subscript"),
        ("lambda: 1", "Lambda"),
        ("'abc'", "only numbers"),
        ("True", "only numbers"),
        ("close < open < high", "chained comparison"),
        ("ts_mean(close, d=3)", "keyword"),
        ("close +", "cannot parse"),
        ("", "empty formula"),
        ("close and open", "BoolOp"),
        ("__import__('os').system('true')", "only plain operator names"),
        ("__import__('os')", "unknown operator '__import__'"),
        ("abs(" * 80 + "close" + ")" * 80, "nests deeper than"),
        ("(" * 300 + "close" + ")" * 300, "cannot parse"),
        ("close + " * 1000 + "close", "longer than"),
        ("ts_mean(close, 10**9)", "window argument 'd' of ts_mean is 1000000000: too large"),
        ("ts_mean(close, 100001)", "too large (at most 100000 rows)"),
        ("delay(close, 1e300)", "lag argument 'd' of delay is 1e+300: too large"),
        ("ts_mean(close, 1 / 0)", "not a finite number"),
        ("ts_mean(close, 2 ** 0.5)", "must be a positive integer, got 1.4142135623730951"),
        ("ts_mean(close, 2 * volume)", "must be a number, not a series"),
        ("close * " + "7" * 400, "number is too large"),
    ],
)
def test_bad_formulas_raise_formula_error_naming_the_text(formula: str, fragment: str) -> None:
    with pytest.raises(FormulaError, match=None) as info:
        parse(formula)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ("ts_mean(close, 2 * 5)", "ts_mean(close, 10)"),
        ("delay(close, 10**2 - 1)", "delay(close, 99)"),
        ("signed_power(close, -(-6) / 2)", "signed_power(close, 3)"),
        ("ts_mean(close, 100000)", "ts_mean(close, 100000)"),
    ],
)
def test_arithmetic_of_numbers_where_a_number_is_expected_is_that_number(written: str, number: str) -> None:
    assert parse(written) == parse(number)
    assert to_string(parse(written)) == number


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abcdelmnorstvxyz_()[]{}.,+-*/%<>=!&|~^0123456789 'e:;@", max_size=60))
def test_fuzzed_strings_only_raise_formula_error(text: str) -> None:
    try:
        tree = parse(text)
    except FormulaError:
        return
    assert parse(to_string(tree)) == tree


def test_evaluate_matches_pandas_for_a_101_style_alpha() -> None:
    data = small_market(seed=3, t=50, n=15)
    got = evaluate("rank(ts_mean(close, 5) - delay(close, 2)) * -1", data)
    close = pd.DataFrame(np.asarray(data.fields["close"]))
    expected = -(close.rolling(5, min_periods=1).mean() - close.shift(2)).rank(axis=1, pct=True)
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-12, equal_nan=True)


def listed_later(data: MarketData, column: int, rows: int) -> MarketData:
    """`data` with every daily field of one instrument missing on the first rows (listed later)."""
    fields = {}
    for name, array in data.fields.items():
        array = np.array(array)
        if not data.is_group(name):
            array[:rows, column] = np.nan
        fields[name] = array
    return MarketData(data.dates, data.instruments, fields, data.intraday, data.groups)


def test_evaluate_broadcasts_constants_where_the_market_has_data_and_names_unknown_fields() -> None:
    data = listed_later(small_market(), column=2, rows=5)
    listed = np.zeros((len(data.dates), len(data.instruments)), dtype=bool)
    for name, array in data.fields.items():
        listed |= np.isfinite(array) & (not data.is_group(name))
    value = evaluate("1 + 2", data)
    assert value.shape == listed.shape and not listed[:5, 2].any() and listed.mean() > 0.8
    assert np.all(value[listed] == 3.0) and np.isnan(value[~listed]).all()
    with pytest.raises(FormulaError, match="unknown field 'nope'"):
        evaluate("rank(nope)", data)
    with pytest.raises(FormulaError, match="is a group label"):
        evaluate("rank(sector)", data)
    with pytest.raises(FormulaError, match="is not a group label"):
        evaluate("group_neutralize(close, volume)", data)


def test_a_cross_section_of_a_constant_ignores_instruments_not_yet_listed() -> None:
    """rank(1) on a date is the same whether or not the panel also holds instruments listed later
    (the library's incremental updates see fewer of them than a full recomputation)."""
    data = small_market()
    later = listed_later(data, column=2, rows=5)
    without = MarketData(
        data.dates,
        np.delete(data.instruments, 2),
        {name: np.delete(array, 2, axis=1) for name, array in data.fields.items()},
        groups=data.groups,
    )
    for formula in ("rank(not_(0.5))", "close * rank(not_(0.5))", "group_rank(abs(1 - 3), sector)"):
        expected = evaluate(formula, without)[:5]
        np.testing.assert_array_equal(np.delete(evaluate(formula, later)[:5], 2, axis=1), expected)


def test_evaluator_computes_each_shared_subtree_once() -> None:
    data = small_market()
    evaluator = Evaluator(data)
    evaluator.evaluate("rank(ts_mean(close, 5)) + rank(ts_mean(close, 5))")
    first = (evaluator.cache.hits, evaluator.cache.misses)
    assert first == (1, 3)  # misses: ts_mean, rank, add; the second rank(ts_mean) is a hit
    evaluator.evaluate("zscore(ts_mean(close, 5))")
    assert evaluator.cache.hits == 2  # ts_mean reused across formulas
    again = evaluator.evaluate("rank(ts_mean(close,5))+rank(ts_mean(close,5))")
    assert evaluator.cache.hits == 3 and not again.flags.writeable


def test_cache_respects_its_byte_budget() -> None:
    data = small_market()
    panel_bytes = len(data.dates) * len(data.instruments) * 8
    evaluator = Evaluator(data, cache_bytes=3 * panel_bytes)
    for w in range(2, 12):
        evaluator.evaluate(f"ts_mean(close, {w})")
    assert evaluator.cache.bytes <= 3 * panel_bytes and len(evaluator.cache) == 3


def test_evaluate_output_is_finite_or_nan() -> None:
    data = small_market()
    out = evaluate("close ** 400 * volume ** 50 - inv(close - close)", data)
    assert not np.isinf(out).any()


def extreme_market() -> MarketData:
    """small_market with each value multiplied by 1e300, -1e300, 1e-300, 0 or 1 (NaN stays)."""
    data = small_market(seed=3)
    rng = np.random.default_rng(3)

    def extreme(array: np.ndarray) -> np.ndarray:
        out = array * rng.choice([1e300, -1e300, 1e-300, 0.0, 1.0], size=array.shape)
        out.setflags(write=False)
        return out

    fields = {k: v if data.is_group(k) else extreme(v) for k, v in data.fields.items()}
    intraday = {k: extreme(v) for k, v in data.intraday.items()}
    return MarketData(data.dates, data.instruments, fields, intraday, data.groups)


EXTREME = extreme_market()
OPERATORS = distinct_operators()
EXTREME_SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_no_inf_on_extreme_values(tree) -> None:
    """The evaluator does not rescan kernel results for inf, so every kernel must keep the rule."""
    try:
        out = Evaluator(EXTREME).evaluate(tree)
    except FormulaError:
        reject()
    assert not np.isinf(out).any(), to_string(tree)


@pytest.mark.parametrize("spec", OPERATORS, ids=[s.name for s in OPERATORS])
@EXTREME_SETTINGS
@given(data=st.data())
def test_no_operator_gives_inf_on_extreme_values(spec, data) -> None:
    assert_no_inf_on_extreme_values(data.draw(applied(spec, st.sampled_from(SERIES_FIELDS).map(Name))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas(max_leaves=6))
def test_no_formula_gives_inf_on_extreme_values(tree) -> None:
    assert_no_inf_on_extreme_values(tree)


@pytest.mark.parametrize(
    "formula",
    [
        "(close - open) / (high - low + 0.001)",
        "where(close > open, log(volume), -1 * abs(close - open))",
        "max(rank(close), 0.5) * (close - open) - (close - open) / volume",
    ],
)
def test_elementwise_chains_match_numpy(formula: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With chains forced on a small panel, values equal plain numpy's (NaN where undefined)."""
    import miner.lang.evaluator as evaluator_module

    data = small_market(seed=5, t=80, n=20)
    f = {name: np.asarray(data.fields[name]) for name in ("open", "high", "low", "close", "volume")}
    rank = pd.DataFrame(f["close"]).rank(axis=1, pct=True).to_numpy()
    spread = f["high"] - f["low"] + 0.001
    with np.errstate(all="ignore"):
        expected = {
            "(close - open) / (high - low + 0.001)": (f["close"] - f["open"]) / spread,
            "where(close > open, log(volume), -1 * abs(close - open))": np.where(
                f["close"] > f["open"], np.log(f["volume"]), -np.abs(f["close"] - f["open"])
            ),
            "max(rank(close), 0.5) * (close - open) - (close - open) / volume": np.maximum(rank, 0.5)
            * (f["close"] - f["open"])
            - (f["close"] - f["open"]) / f["volume"],
        }[formula]
    expected = np.where(np.isfinite(expected), expected, np.nan)
    monkeypatch.setattr(evaluator_module, "CHAIN_FROM_CELLS", 0)
    evaluator = Evaluator(data)
    got = evaluator.evaluate(formula)
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    assert not got.flags.writeable
    assert len(evaluator.cache) <= 3  # the chain's steps are not cached one by one


def test_evaluate_hands_over_its_own_result_and_copies_fields() -> None:
    data = small_market()
    for formula in ("close - open", "delay(close, 1)", "rank(close)"):
        out = evaluate(formula, data)
        assert out.flags.writeable and not np.may_share_memory(out, data.fields["close"])
        out[:] = 0.0
    field = evaluate("close", data)
    assert field.flags.writeable and not np.may_share_memory(field, data.fields["close"])
    evaluator = Evaluator(data)
    shared = evaluate("rank(close)", data, evaluator)
    shared[:] = 0.0
    assert not np.array_equal(evaluator.evaluate("rank(close)"), shared, equal_nan=True)

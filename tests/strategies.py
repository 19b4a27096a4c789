"""Hypothesis strategies: random well-typed formula trees drawn from the operator registry."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from miner.lang import Call, Name, Node, Num
from miner.market import MarketData
from operators import REGISTRY, Kind, Operator

SERIES_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "returns")
GROUP_FIELDS = ("sector",)
INTRADAY_FIELDS = ("volume",)
WINDOWS = (1, 2, 3, 5, 10)
LAGS = (0, 1, 2, 5)


def distinct_operators(families: tuple[str, ...] | None = None) -> list[Operator]:
    specs = {spec.name: spec for spec in REGISTRY.values()}
    return [s for s in specs.values() if families is None or s.family in families]


def constant_for(arg) -> st.SearchStrategy[Num]:
    low = arg.lower if arg.lower is not None else -3.0
    high = arg.upper if arg.upper is not None else max(low + 1.0, 3.0)
    choices = [v for v in (0.5, 1.0, 2.0, 3.0, -1.0) if low <= v <= high]
    if arg.default is not None:
        choices.append(arg.default)
    return st.sampled_from(sorted(set(choices))).map(Num)


def argument(arg, series: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    if arg.kind is Kind.SERIES:
        return st.one_of(series, st.sampled_from([0.5, 1.0, -2.0]).map(Num)) if arg.scalar_ok else series
    if arg.kind is Kind.WINDOW:
        return st.sampled_from(WINDOWS).map(lambda w: Num(float(w)))
    if arg.kind is Kind.LAG:
        return st.sampled_from(LAGS).map(lambda d: Num(float(d)))
    if arg.kind is Kind.CONST:
        return constant_for(arg)
    if arg.kind is Kind.GROUP:
        return st.sampled_from(GROUP_FIELDS).map(Name)
    return st.sampled_from(INTRADAY_FIELDS).map(Name)


def applied(spec: Operator, series: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.tuples(*(argument(a, series) for a in spec.args)).map(
        lambda args, name=spec.name: Call(name, tuple(args))
    )


def formulas(max_leaves: int = 8, families: tuple[str, ...] | None = None) -> st.SearchStrategy[Node]:
    """Random typed trees over the registry (optionally a subset of families)."""
    specs = distinct_operators(families)
    leaves = st.sampled_from(SERIES_FIELDS).map(Name)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(*(applied(s, inner) for s in specs)),
        max_leaves=max_leaves,
    )


def small_market(seed: int = 0, t: int = 40, n: int = 12, m: int = 30) -> MarketData:
    """A small random market with NaN holes, a late listing, a sector label and minute volume."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (t, n)), axis=0))
    close[: t // 3, 0] = np.nan
    close[rng.random((t, n)) < 0.05] = np.nan
    open_ = close * np.exp(rng.normal(0, 0.01, (t, n)))
    high = np.fmax(open_, close) * 1.01
    low = np.fmin(open_, close) * 0.99
    volume = rng.lognormal(10, 1, (t, n))
    volume[np.isnan(close)] = np.nan
    returns = np.full((t, n), np.nan)
    returns[1:] = close[1:] / close[:-1] - 1
    vwap = (high + low + close) / 3
    sector = rng.integers(0, 3, n).astype(float)[None, :].repeat(t, axis=0)
    fields = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": vwap,
        "returns": returns,
        "sector": sector,
    }
    minute_volume = rng.lognormal(5, 1, (t, n, m))
    minute_volume[rng.random((t, n, m)) < 0.05] = np.nan
    for array in (*fields.values(), minute_volume):
        array.setflags(write=False)
    return MarketData(
        dates=np.datetime64("2021-01-04", "D") + np.arange(t),
        instruments=np.array([f"S{i:03d}" for i in range(n)], dtype=object),
        fields=fields,
        intraday={"volume": minute_volume},
        groups={"sector": ("A", "B", "C")},
    )

"""Formula engine vs idiomatic pandas, in one process.

Default mode, on the real S&P 500 panel (505 x 1259): three Markdown tables, the 18-formula suite
(ours vs pandas, checked equal), the suite again with a warm subexpression cache, and every
operator the suite uses, one by one.

    python benchmarks/bench_formulas.py [--data ../shared/data/us_sp500_5yr_daily.parquet]

Held-out mode (issue 18), on the stooq panel cut as `common.heldout_frame` (319 x 2425): the
formulas of FILE, each timed as a new user runs it (`miner.evaluate`, a fresh evaluator per
call, JIT warm) against pandas running the same tree (`pandas_eval`: one idiomatic pandas
expression per operator; `ts_argmax` by numpy's sliding windows, not a Python
`rolling().apply`); then single operators against numpy (elementwise, shifts) or pandas
(windows, ranks), each beside its memory bound: the bytes it must move (its input panels read
once, its output written once) over the copy bandwidth measured in the same process.

    python benchmarks/bench_formulas.py --suite benchmarks/heldout_formulas.txt \
        --data ../shared/data/us_stooq_daily_2008_2017.parquet
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from common import STOOQ_DAILY, heldout_frame, read_formulas, timed

from miner.lang import Call, Evaluator, Name, Node, Num, evaluate, parse
from miner.market import MarketData
from operators import REGISTRY

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_sp500_5yr_daily.parquet"
Frame = pd.DataFrame
FIELDS = ("open", "high", "low", "close", "volume", "vwap", "returns")
_NO_FRAMES = {name: Frame() for name in FIELDS}


# --- the pandas way: wide DataFrames, .rolling(), .rank(axis=1) --------------------------------


def ts_sum(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).sum()


def ts_mean(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).mean()


def ts_std(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=2).std()


def ts_max(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).max()


def ts_rank(x: Frame, d: int) -> Frame:
    return x.rolling(d, min_periods=1).rank(pct=True)


def ts_corr(x: Frame, y: Frame, d: int) -> Frame:
    both = x.notna() & y.notna()
    out = x.where(both).rolling(d, min_periods=2).corr(y.where(both))
    return out.where(np.isfinite(out))


def ts_cov(x: Frame, y: Frame, d: int) -> Frame:
    both = x.notna() & y.notna()
    return x.where(both).rolling(d, min_periods=2).cov(y.where(both))


def ts_argmax(x: Frame, d: int) -> Frame:
    def position(w: np.ndarray) -> float:
        if np.isnan(w).all():
            return np.nan
        latest = len(w) - 1 - int(np.nanargmax(w[::-1]))
        return d - (len(w) - 1 - latest)

    return x.rolling(d, min_periods=1).apply(position, raw=True)


def decay_linear(x: Frame, d: int) -> Frame:
    num = sum((d - k) * x.shift(k).fillna(0.0) for k in range(d))
    den = sum((d - k) * x.shift(k).notna() for k in range(d))
    return num / den.where(den > 0)


def ts_argmax_windows(x: Frame, d: int) -> Frame:
    """`ts_argmax` with numpy's sliding windows: argmax of each window read newest first (ties go
    to the most recent row), NaN never chosen, NaN when the window has no valid value."""
    values = x.to_numpy()
    padded = np.vstack(
        [np.full((d - 1, values.shape[1]), -np.inf), np.where(np.isnan(values), -np.inf, values)]
    )
    newest_first = np.lib.stride_tricks.sliding_window_view(padded, d, axis=0)[..., ::-1]
    slot = d - np.argmax(newest_first, axis=-1)
    valid = x.notna().rolling(d, min_periods=1).sum().to_numpy() > 0
    return Frame(np.where(valid, slot, np.nan), index=x.index, columns=x.columns)


def rank(x: Frame) -> Frame:
    return x.rank(axis=1, pct=True)


def delay(x: Frame, d: int) -> Frame:
    return x.shift(d)


def delta(x: Frame, d: int) -> Frame:
    return x.diff(d)


def where(c: Frame, a: Frame, b: Frame) -> Frame:
    chosen = a.where(c != 0, b) if isinstance(a, Frame) else b.where(c == 0, a)
    return chosen.where(c.notna())


def finite(x: Frame) -> Frame:
    return x.where(np.isfinite(x))


def scale(x: Frame) -> Frame:
    return x.div(x.abs().sum(axis=1), axis=0)


def signed_power(x: Frame, e: float) -> Frame:
    return np.sign(x) * x.abs() ** e


PANDAS_OPS: dict[str, Callable[..., Frame]] = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: finite(x / y),
    "power": lambda x, e: finite(x**e),
    "neg": lambda x: -x,
    "abs": lambda x: x.abs(),
    "sign": np.sign,
    "log": lambda x: np.log(x.where(x > 0)),
    "lt": lambda x, y: (x < y).astype(float).where(x.notna()),
    "gt": lambda x, y: (x > y).astype(float).where(x.notna()),
    "where": where,
    "delay": delay,
    "delta": delta,
    "ts_sum": ts_sum,
    "ts_mean": ts_mean,
    "ts_std": ts_std,
    "ts_max": ts_max,
    "ts_rank": ts_rank,
    "ts_argmax": ts_argmax_windows,
    "ts_corr": ts_corr,
    "ts_cov": ts_cov,
    "decay_linear": decay_linear,
    "rank": rank,
    "scale": scale,
    "signed_power": signed_power,
}


def pandas_eval(node: Node, frames: dict[str, Frame]) -> Frame | float:
    """The formula tree run with `PANDAS_OPS`, one pandas expression per operator."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        return frames[node.name]
    assert isinstance(node, Call)
    args = [a.value if isinstance(a, Num) else pandas_eval(a, frames) for a in node.args]
    window_args = [int(a) if isinstance(a, float) and a.is_integer() else a for a in args]
    return PANDAS_OPS[node.op](*window_args)


def pandas_suite(f: dict[str, Frame]) -> dict[str, Callable[[], Frame]]:
    o, h, l, c, v, vw, r = (f[k] for k in ("open", "high", "low", "close", "volume", "vwap", "returns"))
    return {
        "rank(decay_linear(ts_corr(vwap, volume, 4), 2)) * -1": lambda: (
            -rank(decay_linear(ts_corr(vw, v, 4), 2))
        ),
        "-1 * ts_corr(rank(open), rank(volume), 10)": lambda: -ts_corr(rank(o), rank(v), 10),
        "-1 * ts_rank(rank(low), 9)": lambda: -ts_rank(rank(l), 9),
        "rank(open - ts_sum(vwap, 10) / 10) * (-1 * abs(rank(close - vwap)))": lambda: (
            rank(o - ts_sum(vw, 10) / 10) * -rank(c - vw).abs()
        ),
        "-1 * ts_corr(open, volume, 10)": lambda: -ts_corr(o, v, 10),
        "-1 * rank(ts_sum(open, 5) * ts_sum(returns, 5) - delay(ts_sum(open, 5) * ts_sum(returns, 5), 10))": lambda: (
            -rank(ts_sum(o, 5) * ts_sum(r, 5) - (ts_sum(o, 5) * ts_sum(r, 5)).shift(10))
        ),
        "sign(delta(volume, 1)) * (-1 * delta(close, 1))": lambda: np.sign(v.diff(1)) * -c.diff(1),
        "-1 * rank(ts_cov(rank(close), rank(volume), 5))": lambda: -rank(ts_cov(rank(c), rank(v), 5)),
        "-1 * rank(delta(returns, 3)) * ts_corr(open, volume, 10)": lambda: (
            -rank(r.diff(3)) * ts_corr(o, v, 10)
        ),
        "-1 * rank(ts_std(abs(close - open), 5) + (close - open) + ts_corr(close, open, 10))": lambda: (
            -rank(ts_std((c - o).abs(), 5) + (c - o) + ts_corr(c, o, 10))
        ),
        "-1 * rank(open - delay(high, 1)) * rank(open - delay(close, 1)) * rank(open - delay(low, 1))": lambda: (
            -rank(o - h.shift(1)) * rank(o - c.shift(1)) * rank(o - l.shift(1))
        ),
        "-1 * delta(ts_corr(high, volume, 5), 5) * rank(ts_std(close, 20))": lambda: (
            -ts_corr(h, v, 5).diff(5) * rank(ts_std(c, 20))
        ),
        "-1 * ts_max(ts_corr(ts_rank(volume, 5), ts_rank(high, 5), 5), 3)": lambda: (
            -ts_max(ts_corr(ts_rank(v, 5), ts_rank(h, 5), 5), 3)
        ),
        "scale(ts_corr(ts_mean(volume, 20), low, 5) + (high + low) / 2 - close)": lambda: scale(
            ts_corr(ts_mean(v, 20), l, 5) + (h + l) / 2 - c
        ),
        "rank(-1 * (1 - open / close))": lambda: rank(-(1 - o / c)),
        "-1 * rank(ts_rank(close, 10)) * rank(close / open)": lambda: -rank(ts_rank(c, 10)) * rank(c / o),
        "-1 * ts_corr(high, rank(volume), 5)": lambda: -ts_corr(h, rank(v), 5),
        "rank(ts_argmax(signed_power(where(returns < 0, ts_std(returns, 20), close), 2), 5)) - 0.5": lambda: (
            rank(ts_argmax(signed_power(ts_std(r, 20).where(r < 0, c).where(r.notna()), 2.0), 5)) - 0.5
        ),
    }


# --- single operators, ours vs pandas -----------------------------------------------------------


def operator_pairs(f: dict[str, Frame]) -> list[tuple[str, str, Callable[[], Frame]]]:
    c, v, o, r = f["close"], f["volume"], f["open"], f["returns"]
    return [
        ("delay", "delay(close, 5)", lambda: c.shift(5)),
        ("delta", "delta(close, 5)", lambda: c.diff(5)),
        ("ts_sum", "ts_sum(close, 10)", lambda: ts_sum(c, 10)),
        ("ts_mean", "ts_mean(close, 20)", lambda: ts_mean(c, 20)),
        ("ts_std", "ts_std(close, 20)", lambda: ts_std(c, 20)),
        ("ts_max", "ts_max(close, 10)", lambda: ts_max(c, 10)),
        ("ts_rank", "ts_rank(close, 10)", lambda: ts_rank(c, 10)),
        ("ts_argmax", "ts_argmax(close, 5)", lambda: ts_argmax(c, 5)),
        ("ts_corr", "ts_corr(close, volume, 10)", lambda: ts_corr(c, v, 10)),
        ("ts_cov", "ts_cov(close, volume, 10)", lambda: ts_cov(c, v, 10)),
        ("decay_linear", "decay_linear(close, 10)", lambda: decay_linear(c, 10)),
        ("rank", "rank(close)", lambda: rank(c)),
        ("scale", "scale(close)", lambda: scale(c)),
        ("signed_power", "signed_power(close, 2)", lambda: signed_power(c, 2.0)),
        ("where", "where(close > open, close, volume)", lambda: c.where(c > f["open"], v)),
        ("abs", "abs(close - open)", lambda: (c - f["open"]).abs()),
        ("sign", "sign(delta(close, 1))", lambda: np.sign(c.diff(1))),
        ("add", "high + low", lambda: f["high"] + f["low"]),
        ("sub", "close - open", lambda: c - o),
        ("mul", "close * volume", lambda: c * v),
        ("div", "close / open", lambda: c / o),
        ("div", "close / 10", lambda: c / 10),
        ("neg", "-close", lambda: -c),
        ("lt", "returns < 0", lambda: (r < 0).astype(float).where(r.notna())),
    ]


def suite_formulas() -> list[str]:
    return list(pandas_suite(_NO_FRAMES))


def operator_formulas() -> list[str]:
    return [formula for _, formula, _ in operator_pairs(_NO_FRAMES)]


def agreement(ours: np.ndarray, theirs: Frame) -> float:
    """Share of cells where both are NaN or they agree to 1e-6 (relative) / 1e-9 (absolute)."""
    ref = theirs.to_numpy(dtype=float)
    ok = (np.isnan(ours) & np.isnan(ref)) | np.isclose(ours, ref, rtol=1e-6, atol=1e-9)
    return float(ok.mean())


def load(path: Path) -> tuple[MarketData, dict[str, Frame]]:
    frame = pd.read_parquet(path)
    market = MarketData.from_frame(frame.drop(columns=["sector"]), source=str(path))
    wide = {
        name: pd.DataFrame(np.array(market.fields[name]), index=market.dates, columns=market.instruments)
        for name in FIELDS
    }
    return market, wide


def load_heldout(path: Path) -> tuple[MarketData, dict[str, Frame]]:
    market = MarketData.from_frame(heldout_frame(path), source=str(path))
    wide = {
        name: pd.DataFrame(np.array(market.fields[name]), index=market.dates, columns=market.instruments)
        for name in FIELDS
    }
    return market, wide


def paired(ours: Callable[[], object], theirs: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best times of two actions run alternately, so that a load change hits both alike."""
    best_ours = best_theirs = float("inf")
    for _ in range(repeats):
        best_ours = min(best_ours, timed(ours)[0])
        best_theirs = min(best_theirs, timed(theirs)[0])
    return best_ours, best_theirs


def copy_bandwidth(repeats: int = 20) -> float:
    """Bytes per second of a large numpy copy (read + write), best of `repeats`."""
    source = np.random.default_rng(0).random(1 << 24)
    target = np.empty_like(source)
    best = min(timed(lambda: np.copyto(target, source))[0] for _ in range(repeats))
    return 2 * source.nbytes / best


def numpy_shift(x: np.ndarray, d: int) -> np.ndarray:
    out = np.empty_like(x)
    out[:d] = np.nan
    out[d:] = x[:-d]
    return out


def heldout_operators(
    f: dict[str, np.ndarray], w: dict[str, Frame]
) -> list[tuple[str, str, str, int, Callable[[], object]]]:
    """(operator, formula, reference name, input panels, reference) for the per-operator table."""
    c, o, h, l, v = (f[k] for k in ("close", "open", "high", "low", "volume"))
    return [
        ("sub", "close - open", "numpy", 2, lambda: c - o),
        ("add", "high + low", "numpy", 2, lambda: h + l),
        ("mul", "close * volume", "numpy", 2, lambda: c * v),
        ("div", "close / open", "numpy", 2, lambda: c / o),
        ("div", "close / 10", "numpy", 1, lambda: c / 10),
        ("neg", "-close", "numpy", 1, lambda: -c),
        ("abs", "abs(close - open)", "numpy", 2, lambda: np.abs(c - o)),
        ("log", "log(volume)", "numpy", 1, lambda: np.log(v)),
        ("power", "power(open, 5)", "numpy", 1, lambda: o**5),
        ("lt", "close < open", "numpy", 2, lambda: (c < o).astype(float)),
        ("where", "where(close > open, close, volume)", "numpy", 3, lambda: np.where(c > o, c, v)),
        ("chain", "(close - open) / (high - low + 0.001)", "numpy", 4, lambda: (c - o) / (h - l + 0.001)),
        ("delay", "delay(close, 5)", "numpy", 1, lambda: numpy_shift(c, 5)),
        ("delta", "delta(close, 5)", "numpy", 1, lambda: c - numpy_shift(c, 5)),
        ("ts_sum", "ts_sum(close, 10)", "pandas", 1, lambda: ts_sum(w["close"], 10)),
        ("ts_mean", "ts_mean(close, 20)", "pandas", 1, lambda: ts_mean(w["close"], 20)),
        ("ts_std", "ts_std(close, 20)", "pandas", 1, lambda: ts_std(w["close"], 20)),
        ("ts_max", "ts_max(close, 10)", "pandas", 1, lambda: ts_max(w["close"], 10)),
        ("ts_rank", "ts_rank(close, 10)", "pandas", 1, lambda: ts_rank(w["close"], 10)),
        ("ts_corr", "ts_corr(close, volume, 10)", "pandas", 2, lambda: ts_corr(w["close"], w["volume"], 10)),
        ("decay_linear", "decay_linear(close, 10)", "pandas", 1, lambda: decay_linear(w["close"], 10)),
        ("rank", "rank(close)", "pandas", 1, lambda: rank(w["close"])),
        ("scale", "scale(close)", "pandas", 1, lambda: scale(w["close"])),
    ]


CHAIN_FORMULA = "(close - open) / (high - low + 0.001)"
CHAIN_SIZES = ((2425, 319), (2425, 825), (2425, 1650), (2500, 3000))


def random_market(rows: int, cols: int) -> MarketData:
    """Random positive OHLC panels with 5% NaN (chains need no realistic values, only sizes)."""
    rng = np.random.default_rng(0)
    fields = {}
    for name in ("open", "high", "low", "close"):
        values = rng.random((rows, cols)) + 1.0
        values[rng.random((rows, cols)) < 0.05] = np.nan
        values.setflags(write=False)
        fields[name] = values
    dates = np.arange(rows).astype("datetime64[D]")
    return MarketData(dates, np.array([f"S{i:05d}" for i in range(cols)], dtype=object), fields)


def chain_table(repeats: int) -> None:
    """`CHAIN_FORMULA` with chains (as the evaluator chooses), without (a threshold above every
    panel), and in numpy, at panel sizes below and above `CHAIN_FROM_CELLS`."""
    import miner.lang.evaluator as evaluator_module

    chosen = evaluator_module.CHAIN_FROM_CELLS
    print(f"\n`{CHAIN_FORMULA}`, chains from {chosen:,} cells:\n")
    print("| panel | cells | chain (ms) | step by step (ms) | numpy (ms) | chain vs steps | chain vs numpy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rows, cols in CHAIN_SIZES:
        market = random_market(rows, cols)
        o, h, l, c = (market.fields[k] for k in ("open", "high", "low", "close"))
        times = {"chain": float("inf"), "steps": float("inf"), "numpy": float("inf")}
        for _ in range(repeats):
            for label, threshold in (("chain", 0), ("steps", 1 << 62)):
                evaluator_module.CHAIN_FROM_CELLS = threshold
                times[label] = min(times[label], timed(lambda m=market: evaluate(CHAIN_FORMULA, m))[0])
            plain = timed(lambda c=c, o=o, h=h, l=l: (c - o) / (h - l + 0.001))[0]
            times["numpy"] = min(times["numpy"], plain)
        evaluator_module.CHAIN_FROM_CELLS = chosen
        print(
            f"| {rows} x {cols} | {rows * cols:,} | {times['chain'] * 1e3:.2f} | {times['steps'] * 1e3:.2f} | "
            f"{times['numpy'] * 1e3:.2f} | {times['steps'] / times['chain']:.2f}x | "
            f"{times['numpy'] / times['chain']:.2f}x |"
        )


def heldout_main(args: argparse.Namespace, data: Path) -> None:
    market, wide = load_heldout(data)
    formulas = read_formulas(args.suite)
    cells = len(market.dates) * len(market.instruments)
    print(f"panel: {len(market.dates)} dates x {len(market.instruments)} instruments ({cells:,} cells)")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    for formula in formulas:  # compile every numba kernel before timing
        evaluate(formula, market)

    print("| formula | ours (ms) | pandas (ms) | speed-up | cells equal |")
    print("|---|---:|---:|---:|---:|")
    total_ours = total_pandas = 0.0
    for formula in formulas:
        tree = parse(formula)
        ours, theirs = paired(
            lambda f=formula: evaluate(f, market), lambda t=tree: pandas_eval(t, wide), args.repeats
        )
        total_ours, total_pandas = total_ours + ours, total_pandas + theirs
        share = agreement(evaluate(formula, market), pandas_eval(tree, wide))
        print(f"| `{formula}` | {ours * 1e3:.2f} | {theirs * 1e3:.1f} | {theirs / ours:.1f}x | {share:.4%} |")
    print(
        f"| **suite, fresh evaluator per formula** | {total_ours * 1e3:.1f} | {total_pandas * 1e3:.0f} | "
        f"**{total_pandas / total_ours:.1f}x** | |"
    )

    bandwidth = copy_bandwidth()
    print(f"\ncopy bandwidth measured here: {bandwidth / 1e9:.1f} GB/s\n")
    print(
        "| operator | formula | ours (ms) | reference | reference (ms) | speed-up | memory bound (ms) | ours / bound |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|")
    fields = {name: np.array(market.fields[name]) for name in FIELDS}
    for name, formula, reference, panels, reference_fn in heldout_operators(fields, wide):
        assert name == "chain" or name in REGISTRY
        ours, theirs = paired(lambda f=formula: evaluate(f, market), reference_fn, args.repeats)
        bound = (panels + 1) * cells * 8 / bandwidth
        print(
            f"| {name} | `{formula}` | {ours * 1e3:.2f} | {reference} | {theirs * 1e3:.2f} | "
            f"{theirs / ours:.2f}x | {bound * 1e3:.2f} | {ours / bound:.1f}x |"
        )
    if args.chains:
        chain_table(args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, help=f"default: {DEFAULT_DATA.name}, or {STOOQ_DAILY.name} with --suite"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--suite", type=Path, help="held-out mode: formulas from this file (one per line)")
    parser.add_argument(
        "--chains", action="store_true", help="held-out mode: also time elementwise chains by size"
    )
    args = parser.parse_args()
    if args.suite is not None:
        heldout_main(args, args.data or STOOQ_DAILY)
        return
    market, wide = load(args.data or DEFAULT_DATA)
    suite = pandas_suite(wide)
    print(f"panel: {len(market.dates)} dates x {len(market.instruments)} instruments\n")

    for formula in suite:  # compile every numba kernel before timing
        Evaluator(market, cache_bytes=0).evaluate(formula)

    print("| formula | ours (ms) | pandas (ms) | speed-up | cells equal |")
    print("|---|---:|---:|---:|---:|")
    total_ours = total_pandas = 0.0
    for formula, pandas_fn in suite.items():
        ours = timed(lambda f=formula: Evaluator(market, cache_bytes=0).evaluate(f), args.repeats)[0]
        theirs = timed(pandas_fn, args.repeats)[0]
        total_ours, total_pandas = total_ours + ours, total_pandas + theirs
        share = agreement(Evaluator(market, cache_bytes=0).evaluate(formula), pandas_fn())
        print(f"| `{formula}` | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {theirs / ours:.1f}x | {share:.4%} |")
    print(
        f"| **suite, no cache** | {total_ours * 1e3:.0f} | {total_pandas * 1e3:.0f} | "
        f"**{total_pandas / total_ours:.1f}x** | |"
    )

    shared = Evaluator(market)
    cold = timed(lambda: [shared.evaluate(f) for f in suite], 1)[0]
    warm = timed(lambda: [shared.evaluate(f) for f in suite], args.repeats)[0]
    print("\n| suite with one Evaluator | time (ms) | vs pandas |\n|---|---:|---:|")
    print(f"| cold cache (shared subtrees computed once) | {cold * 1e3:.1f} | {total_pandas / cold:.1f}x |")
    print(f"| warm cache | {warm * 1e3:.3f} | {total_pandas / warm:.0f}x |")
    print(f"| warm vs uncached ours | | {total_ours / warm:.0f}x |")
    print(
        f"\ncache: {shared.cache.hits} hits, {shared.cache.misses} misses, "
        f"{shared.cache.bytes / 2**20:.0f} MiB held\n"
    )

    print("| operator | formula | ours (ms) | pandas (ms) | speed-up |")
    print("|---|---|---:|---:|---:|")
    for name, formula, pandas_fn in operator_pairs(wide):
        assert name in REGISTRY
        ours = timed(lambda f=formula: Evaluator(market, cache_bytes=0).evaluate(f), args.repeats)[0]
        theirs = timed(pandas_fn, args.repeats)[0]
        print(f"| {name} | `{formula}` | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()

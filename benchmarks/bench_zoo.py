"""The factor zoo on the real S&P 500 panel (505 x 1259), in one process.

Prints two Markdown tables: the operators added for Alpha158 against the nearest existing kernel
(and pandas) at d = 60, and each zoo set evaluated with one shared evaluator against a fresh
evaluator per factor (what sharing subformulas saves in `miner zoo report`).

    python benchmarks/bench_zoo.py [--data ../shared/data/us_sp500_5yr_daily.parquet]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pandas as pd
from common import timed

from miner.lang import Evaluator
from miner.market import MarketData
from miner.zoo import load_zoo, zoo_names
from operators.quantile import ts_quantile
from operators.regression import ts_resi, ts_rsquare
from operators.timeseries import ts_median, ts_slope

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_sp500_5yr_daily.parquet"
WINDOW = 60
REPEATS = 3


def operator_table(market: MarketData) -> list[str]:
    close = market.fields["close"]
    frame = pd.DataFrame(close)
    cases = [
        (
            "ts_rsquare(close, 60)",
            lambda: ts_rsquare(close, WINDOW),
            "ts_slope",
            lambda: ts_slope(close, WINDOW),
        ),
        ("ts_resi(close, 60)", lambda: ts_resi(close, WINDOW), "ts_slope", lambda: ts_slope(close, WINDOW)),
        (
            "ts_quantile(close, 60, 0.8)",
            lambda: ts_quantile(close, WINDOW, 0.8),
            "ts_median",
            lambda: ts_median(close, WINDOW),
        ),
        (
            "pandas rolling(60, min_periods=1).quantile(0.8)",
            lambda: frame.rolling(WINDOW, min_periods=1).quantile(0.8),
            "ts_median",
            lambda: ts_median(close, WINDOW),
        ),
    ]
    lines = ["| operator | ms | reference | ms | ratio |", "|---|---:|---|---:|---:|"]
    for name, action, reference, baseline in cases:
        action(), baseline()  # compile
        ours, _ = timed(action, repeat=5)
        theirs, _ = timed(baseline, repeat=5)
        lines.append(
            f"| `{name}` | {ours * 1e3:.0f} | `{reference}` | {theirs * 1e3:.0f} | {ours / theirs:.2f} |"
        )
    return lines


def set_table(market: MarketData) -> list[str]:
    lines = [
        f"| set | factors | one evaluator (s, median of {REPEATS}) | fresh evaluator each (s) | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in zoo_names():
        formulas = [factor.formula for factor in load_zoo(name)]

        def shared(formulas: list[str] = formulas) -> None:
            evaluator = Evaluator(market)
            for formula in formulas:
                evaluator.evaluate(formula)

        def fresh(formulas: list[str] = formulas) -> None:
            for formula in formulas:
                Evaluator(market).evaluate(formula)

        shared()  # compile every kernel the set uses
        runs = [(timed(shared)[0], timed(fresh)[0]) for _ in range(REPEATS)]  # alternated: a noisy machine
        one, each = (statistics.median(column) for column in zip(*runs))
        lines.append(f"| {name} | {len(formulas)} | {one:.2f} | {each:.2f} | {each / one:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    market = MarketData.from_frame(pd.read_parquet(args.data), source=str(args.data))
    print(f"panel: {market.T} dates x {market.N} instruments\n")
    print("\n".join(operator_table(market)))
    print()
    print("\n".join(set_table(market)))


if __name__ == "__main__":
    main()

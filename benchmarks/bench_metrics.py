"""Benchmark: factor metrics against alphalens and pandas on the real S&P 500 panel.

Panel: the first 1250 dates x 500 names of ../shared/data/us_sp500_5yr_daily.parquet (close),
factor = -rank(delta(close, 5)) computed in numpy. Two comparisons, same process, numba warmed
up first, best of N repeats:

1. full metric set (IC, rank IC, ICIR, turnover, decay at 4 horizons, quantile returns):
   `factor_summary` vs alphalens get_clean_factor_and_forward_returns +
   factor_information_coefficient + factor_rank_autocorrelation + mean_return_by_quantile;
2. GP fitness path (rank IC + ICIR on one horizon, prepared label): `rank_ic_fast` +
   `icir_fitness` vs pandas rank(axis=1) + corrwith(axis=1) (also shown with the label's
   pandas ranks precomputed, and our unprepared `rank_ic`).

Run: python benchmarks/bench_metrics.py [--repeats N] [--alphalens-repeats N]. Prints a
markdown table (no assertions on time).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from evaluation import (
    factor_summary,
    forward_returns,
    icir_fitness,
    prepare_label,
    rank_ic,
    rank_ic_fast,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_sp500_5yr_daily.parquet"
N_DATES, N_NAMES = 1250, 500
HORIZONS = (1, 5, 10, 20)


def load_close() -> pd.DataFrame:
    daily = pd.read_parquet(DATA, columns=["date", "instrument", "close"])
    daily["date"] = pd.to_datetime(daily["date"])
    close = daily.pivot(index="date", columns="instrument", values="close")
    return close.iloc[:N_DATES, :N_NAMES]


def reversal_factor(close: np.ndarray) -> np.ndarray:
    """-rank(delta(close, 5)): minus the percentile rank (average ties) of the 5-day change."""
    delta = np.full_like(close, np.nan)
    delta[5:] = close[5:] - close[:-5]
    ranks = rankdata(delta, axis=1, nan_policy="omit")
    return -ranks / np.isfinite(delta).sum(axis=1, keepdims=True)


def best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` rounds, run interleaved so that every
    contender sees the same machine load (the 2 cores are shared)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def alphalens_full(factor: pd.DataFrame, close: pd.DataFrame) -> None:
    from alphalens.performance import (
        factor_information_coefficient,
        factor_rank_autocorrelation,
        mean_return_by_quantile,
    )
    from alphalens.utils import get_clean_factor_and_forward_returns

    # alphalens measures returns from the factor date; shifting prices one row gives delay 1
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = get_clean_factor_and_forward_returns(
            factor.stack().dropna(),
            close.shift(-1),
            periods=HORIZONS,
            quantiles=5,
            filter_zscore=None,
            max_loss=1.0,
        )
        factor_information_coefficient(clean)
        factor_rank_autocorrelation(clean)
        mean_return_by_quantile(clean, by_date=True, demeaned=False)


def pandas_fitness(factor: pd.DataFrame, label: pd.DataFrame) -> float:
    series = factor.rank(axis=1).corrwith(label.rank(axis=1), axis=1)
    return abs(series.mean()) / series.std()


def pandas_fitness_ranked_label(factor: pd.DataFrame, label_ranks: pd.DataFrame) -> float:
    series = factor.rank(axis=1).corrwith(label_ranks, axis=1)
    return abs(series.mean()) / series.std()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="rounds of the fitness paths")
    parser.add_argument("--alphalens-repeats", type=int, default=3, help="rounds of the full set")
    args = parser.parse_args()

    close_frame = load_close()
    close = close_frame.to_numpy()
    factor = reversal_factor(close)
    factor_frame = pd.DataFrame(factor, index=close_frame.index, columns=close_frame.columns)
    label = forward_returns(close, 1, 1)
    label_frame = pd.DataFrame(label, index=close_frame.index, columns=close_frame.columns)
    label_ranks = label_frame.rank(axis=1)

    prepared = prepare_label(label)
    factor_summary(factor, close)  # numba warm-up (compiles or loads the cache)
    rank_ic_fast(factor, prepared)

    full = best_times(
        {
            "ours": lambda: factor_summary(factor, close),
            "alphalens": lambda: alphalens_full(factor_frame, close_frame),
        },
        args.alphalens_repeats,
    )
    fitness = best_times(
        {
            "fast": lambda: icir_fitness(rank_ic_fast(factor, prepared), 1),
            "plain": lambda: icir_fitness(rank_ic(factor, label), 1),
            "pandas": lambda: pandas_fitness(factor_frame, label_frame),
            "pandas_ranked": lambda: pandas_fitness_ranked_label(factor_frame, label_ranks),
            "prepare": lambda: prepare_label(label),
        },
        args.repeats,
    )
    ours_summary, theirs_summary = full["ours"], full["alphalens"]
    ours_fast, ours_plain = fitness["fast"], fitness["plain"]
    theirs_fit, theirs_fit_ranked = fitness["pandas"], fitness["pandas_ranked"]
    ours_prepare = fitness["prepare"]

    rows = [
        ("full metric set: factor_summary vs alphalens", ours_summary, theirs_summary, ">= 40x"),
        ("GP fitness: rank_ic_fast + ICIR vs pandas rank+corrwith", ours_fast, theirs_fit, ">= 8x"),
        (
            "GP fitness: rank_ic_fast + ICIR vs pandas, label ranks precomputed",
            ours_fast,
            theirs_fit_ranked,
            "",
        ),
        ("GP fitness: rank_ic (unprepared) + ICIR vs pandas", ours_plain, theirs_fit, ""),
        ("prepare_label (once per label)", ours_prepare, float("nan"), ""),
    ]
    print(
        f"Panel {close.shape[0]} dates x {close.shape[1]} names; fitness paths best of "
        f"{args.repeats}, full metric set best of {args.alphalens_repeats} (interleaved)\n"
    )
    print("| path | ours (ms) | reference (ms) | speedup | target |")
    print("|---|---:|---:|---:|---|")
    for name, ours, theirs, target in rows:
        speedup = f"{theirs / ours:.1f}x" if np.isfinite(theirs) else "-"
        reference = f"{theirs * 1e3:.1f}" if np.isfinite(theirs) else "-"
        print(f"| {name} | {ours * 1e3:.1f} | {reference} | {speedup} | {target} |")


if __name__ == "__main__":
    main()

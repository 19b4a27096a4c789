"""Plots of factors and runs (matplotlib, Agg): arrays in, figures out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SEGMENT_COLOURS = {"train": "#4C72B0", "valid": "#DD8452", "test": "#55A868"}


def fitness_by_generation(best: Sequence[float], median: Sequence[float]) -> Figure:
    """Best and median train fitness per generation."""
    fig, ax = plt.subplots(figsize=(7, 4))
    generations = np.arange(len(best))
    ax.plot(generations, best, marker="o", label="best")
    ax.plot(generations, median, marker=".", label="median")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (train)")
    ax.set_title("Fitness by generation")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def cumulative_rank_ic(
    dates: np.ndarray, series: Mapping[str, np.ndarray], segments: Mapping[str, slice]
) -> Figure:
    """Cumulative daily rank IC of several factors, with the train / valid / test spans shaded."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, values in series.items():
        ax.plot(dates, np.nancumsum(np.nan_to_num(values, nan=0.0)), label=name, linewidth=1.2)
    for segment, rows in segments.items():
        if rows.stop > rows.start:
            ax.axvspan(
                dates[rows.start],
                dates[rows.stop - 1],
                color=SEGMENT_COLOURS.get(segment, "grey"),
                alpha=0.08,
                label=segment,
            )
    ax.set_title("Cumulative rank IC of the top survivors")
    ax.set_ylabel("cumulative rank IC")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def ic_decay(decays: Mapping[str, Mapping[int, float]]) -> Figure:
    """Mean rank IC by forward-return horizon, one line per factor."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, decay in decays.items():
        horizons = sorted(decay)
        ax.plot(horizons, [decay[h] for h in horizons], marker="o", label=name)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("horizon (rows)")
    ax.set_ylabel("mean rank IC (valid)")
    ax.set_title("IC decay by horizon")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def quantile_returns(mean_by_quantile: np.ndarray, title: str) -> Figure:
    """Mean forward return per factor quantile (1 = lowest)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    quantiles = np.arange(1, len(mean_by_quantile) + 1)
    ax.bar(quantiles, mean_by_quantile * 1e4, color="#4C72B0")
    ax.set_xlabel("quantile")
    ax.set_ylabel("mean forward return (bp)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig

"""Multiple-testing control of one-sided t-statistics: Holm, Benjamini-Hochberg or a fixed hurdle.

Each t-statistic is signed in the direction chosen on the training data, so the test is
one-sided (H0: no IC in that direction) with p = P(Z >= t) under the normal approximation.
``tests`` is the number of hypotheses tried (e.g. every candidate scored), at least the number
of t's given: the ones not given count as p = 1, so they only make the thresholds stricter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Literal

import numpy as np

Method = Literal["holm", "bh", "fixed"]


def _check(method: str, alpha: float, tests: int, given: int) -> None:
    if method not in ("holm", "bh", "fixed"):
        raise ValueError(f"unknown multiple-testing method {method!r} (expected holm, bh or fixed)")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if int(tests) != tests or tests < max(given, 1):
        raise ValueError(f"tests must be an integer >= max(1, the {given} t-statistics given), got {tests!r}")


def one_sided_pvalues(tstats: np.ndarray) -> np.ndarray:
    """P(Z >= t) for each t (normal survival function); NaN t -> p = 1.

    The standard library's erfc, not scipy.stats: importing scipy.stats would double a scoring
    worker's start-up, and these lists are short."""
    t = np.asarray(tstats, dtype=np.float64)
    survival = [1.0 if math.isnan(x) else 0.5 * math.erfc(x / math.sqrt(2.0)) for x in t.reshape(-1)]
    return np.array(survival, dtype=np.float64).reshape(t.shape)


def _holm(pvalues: np.ndarray, alpha: float, tests: int) -> np.ndarray:
    """Holm step-down: the i-th smallest p (0-based) must reach alpha / (tests - i), in turn."""
    order = np.argsort(pvalues, kind="stable")
    passed = pvalues[order] <= alpha / (tests - np.arange(order.size))
    rejected = np.zeros(order.size, dtype=np.bool_)
    rejected[order] = np.cumprod(passed).astype(np.bool_)
    return rejected


def _bh(pvalues: np.ndarray, alpha: float, tests: int) -> np.ndarray:
    """Benjamini-Hochberg step-up: reject the k smallest p's, k the largest with p_(k) <= k alpha / tests."""
    order = np.argsort(pvalues, kind="stable")
    below = np.flatnonzero(pvalues[order] <= alpha * np.arange(1, order.size + 1) / tests)
    rejected = np.zeros(order.size, dtype=np.bool_)
    if below.size:
        rejected[order[: below[-1] + 1]] = True
    return rejected


def significant(
    tstats: Sequence[float], method: Method, alpha: float, tests: int, t_min: float
) -> np.ndarray:
    """Bool per one-sided t: Holm or Benjamini-Hochberg at `alpha` over `tests` tests; t >= t_min (fixed)."""
    t = np.asarray(tstats, dtype=np.float64).reshape(-1)
    _check(method, alpha, tests, t.size)
    if method == "fixed":
        return t >= t_min
    pvalues = one_sided_pvalues(t)
    return _holm(pvalues, alpha, int(tests)) if method == "holm" else _bh(pvalues, alpha, int(tests))


def first_hurdle(method: Method, alpha: float, tests: int, t_min: float) -> float:
    """The t the best candidate must reach: the normal quantile of 1 - alpha / tests (Holm/BH's
    first step); t_min (fixed)."""
    _check(method, alpha, tests, 0)
    return float(t_min) if method == "fixed" else -NormalDist().inv_cdf(alpha / tests)

"""Factor combination: weights for a composite of several factors (arrays in, no miner).

Every method works on the members' cross-sectionally standardised values, `zscore(rank(f))` per
date (`standardize`: robust to outliers, unit variance), and its composite is the weighted sum of
those with a missing member counting as neutral (0): the formula

    nan_add(0.6524 * zscore(rank(f_a)), -0.3476 * zscore(rank(f_b)))

computes exactly what `composite` does (`composite_formula` writes it). A composite is NaN only
where every member is missing.

* ``ew``: equal weights, each member signed by its train mean rank IC (a member with a negative
  train IC enters negated; one with no train IC is left out);
* ``icw``: weights proportional to the members' train mean rank IC (so signed the same way);
* ``ridge`` / ``lasso``: a linear fit, without intercept, of the processed label (`process_label`:
  the forward return ranked, then z-scored, per date) on the standardised members, over the train
  cells where the label and at least one member are valid (missing members 0, as in the formula).
  The penalty is the one of `RIDGE_PENALTIES` / the lasso path whose composite has the highest
  mean rank IC on valid (on ties the stronger penalty); the weights are fitted on train only.

Weights are scaled so that their absolute values sum to 1 (the scale changes no rank) and rounded
to `WEIGHT_DIGITS` significant digits; every figure of a composite uses the rounded weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation import metrics
from operators.cross_section import rank, zscore

METHODS = ("ew", "icw", "ridge", "lasso")
LABEL_PROCESSING = "forward return ranked, then z-scored, per date"
WEIGHT_DIGITS = 4
RIDGE_PENALTIES = (0.0, *np.geomspace(1e-4, 100.0, 13).tolist())
"""Ridge penalties tried: lambda in (X'X / n + lambda I) w = X'y / n; the standardised members have
unit variance, so 100 leaves w nearly proportional to X'y (IC weighting) and 0 is least squares."""
LASSO_STEPS = 12
LASSO_SPAN = 1e-3
"""Lasso penalties tried: `LASSO_STEPS` from lambda_max (where every weight is 0) down to
`LASSO_SPAN` * lambda_max, log-spaced, without lambda_max itself."""
LASSO_MAX_SWEEPS = 10_000
CHUNK_ROWS = 64  # dates stacked at a time when the normal equations are accumulated


def standardize(factor: np.ndarray) -> np.ndarray:
    """`zscore(rank(factor))` per date: what a composite formula computes of each member."""
    return zscore(rank(np.asarray(factor, dtype=np.float64)))


def process_label(label: np.ndarray) -> np.ndarray:
    """The regression target of ``ridge`` and ``lasso``: `LABEL_PROCESSING`."""
    return standardize(label)


@dataclass(frozen=True)
class Combination:
    """A fitted composite: one weight per member (0 leaves it out) and how they were chosen."""

    method: str
    weights: np.ndarray  # (k,) on the standardised members; sum |w| = 1
    penalty: float  # the chosen penalty (NaN for ew and icw)
    train_rank_ic: np.ndarray  # (k,) each member's mean rank IC on train
    valid_rank_ic_by_penalty: dict[float, float]  # the composite's mean valid rank IC per penalty tried

    @property
    def valid_rank_ic(self) -> float:
        """The chosen composite's mean valid rank IC (NaN for ew and icw, which try no penalty)."""
        return self.valid_rank_ic_by_penalty.get(self.penalty, math.nan)


def fit(
    method: str,
    standardized: Sequence[np.ndarray],
    label: np.ndarray,
    train: slice,
    valid: slice,
    min_names: int = 10,
) -> Combination:
    """Weights of a composite of ``standardized`` members (each `standardize`d, (T, N)) for the
    raw forward-return ``label``: fitted on the ``train`` rows, penalty chosen on the ``valid`` rows."""
    if method not in METHODS:
        raise ValueError(f"unknown combination method {method!r} (known: {', '.join(METHODS)})")
    if not standardized:
        raise ValueError("a composite needs at least one member")
    train_ic = np.array([_mean_rank_ic(m, label, train, min_names) for m in standardized])
    if method in ("ew", "icw"):
        signal = np.nan_to_num(train_ic)
        raw = np.sign(signal) if method == "ew" else signal
        return Combination(method, _rounded(raw), math.nan, train_ic, {})
    gram, moment, n = normal_equations(standardized, process_label(label), train)
    if n == 0:
        raise ValueError("no train cell has both a label and a member value")
    path = ridge_path(gram / n, moment / n) if method == "ridge" else lasso_path(gram / n, moment / n)
    valid_members = [m[valid] for m in standardized]
    prepared = metrics.prepare_label(label[valid])
    scores: dict[float, float] = {}
    best: tuple[float, float, np.ndarray] | None = None
    for penalty, raw in path:  # strongest penalty first: on a tie the stronger one stays
        if not np.any(raw):
            continue
        weights = _rounded(raw)
        ic = metrics.ic_stats(metrics.rank_ic_fast(composite(valid_members, weights), prepared, min_names))
        scores[penalty] = ic["mean"]
        if math.isfinite(ic["mean"]) and (best is None or ic["mean"] > best[0]):
            best = (ic["mean"], penalty, weights)
    if best is None:
        raise ValueError(f"no {method} penalty gives a composite with a valid rank IC")
    return Combination(method, best[2], best[1], train_ic, scores)


def composite(standardized: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """sum_i weights[i] * standardized[i], a missing member counting as 0; NaN where all are missing
    (members with weight 0 are left out, as in `composite_formula`)."""
    used = [(w, m) for w, m in zip(weights, standardized) if w != 0.0]
    if not used:
        raise ValueError("a composite needs a member with a non-zero weight")
    total = np.zeros(used[0][1].shape)
    present = np.zeros(total.shape, dtype=bool)
    for weight, member in used:
        valid = np.isfinite(member)
        total += np.where(valid, weight * member, 0.0)
        present |= valid
    total[~present] = np.nan
    return total


def composite_formula(members: Sequence[str], weights: np.ndarray) -> str:
    """The composite as a formula of the language over the members (factor ids or formulas)."""
    terms = [
        f"{float(weight)!r} * zscore(rank({member}))" for member, weight in zip(members, weights) if weight
    ]
    if not terms:
        raise ValueError("a composite needs a member with a non-zero weight")
    return _balanced_sum(terms)


def _balanced_sum(terms: list[str]) -> str:
    """nan_add over the terms as a balanced tree (its depth grows with log2 of their number)."""
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return f"nan_add({_balanced_sum(terms[:middle])}, {_balanced_sum(terms[middle:])})"


def normal_equations(
    standardized: Sequence[np.ndarray], target: np.ndarray, rows: slice
) -> tuple[np.ndarray, np.ndarray, int]:
    """(X'X, X'y, n) over the cells of ``rows`` where the target and at least one member are valid,
    X holding the members with missing values as 0."""
    k = len(standardized)
    gram, moment, n = np.zeros((k, k)), np.zeros(k), 0
    start, stop, _ = rows.indices(target.shape[0])
    for first in range(start, stop, CHUNK_ROWS):
        last = min(first + CHUNK_ROWS, stop)
        stacked = np.stack([m[first:last] for m in standardized], axis=-1)
        y = target[first:last]
        keep = np.isfinite(y) & np.isfinite(stacked).any(axis=-1)
        x = np.nan_to_num(stacked[keep], nan=0.0)
        gram += x.T @ x
        moment += x.T @ y[keep]
        n += int(keep.sum())
    return gram, moment, n


def ridge_path(gram: np.ndarray, moment: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(penalty, w) for each of `RIDGE_PENALTIES`, strongest first: w = argmin ||y - Xw||^2 / 2n +
    penalty ||w||^2 / 2, given X'X / n and X'y / n (least squares of minimum norm at penalty 0)."""
    identity = np.eye(gram.shape[0])
    return [
        (penalty, np.linalg.lstsq(gram + penalty * identity, moment, rcond=None)[0])
        for penalty in sorted(RIDGE_PENALTIES, reverse=True)
    ]


def lasso_path(gram: np.ndarray, moment: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(penalty, w) down the lasso path (see `LASSO_STEPS`), each fit warm-started from the last."""
    top = float(np.max(np.abs(moment)))
    if not top > 0.0:
        return []
    w = np.zeros(moment.size)
    path = []
    for penalty in (top * np.geomspace(1.0, LASSO_SPAN, LASSO_STEPS + 1)[1:]).tolist():
        w = lasso_weights(gram, moment, penalty, w)
        path.append((penalty, w))
    return path


def lasso_weights(
    gram: np.ndarray, moment: np.ndarray, penalty: float, start: np.ndarray, tol: float = 1e-10
) -> np.ndarray:
    """argmin ||y - Xw||^2 / 2n + penalty ||w||_1 by cyclic coordinate descent on X'X / n and
    X'y / n, from ``start``."""
    w = np.array(start, dtype=np.float64)
    diagonal = np.diag(gram)
    for _ in range(LASSO_MAX_SWEEPS):
        largest_step = 0.0
        for j in range(w.size):
            if diagonal[j] <= 0.0:
                w[j] = 0.0
                continue
            partial = moment[j] - gram[j] @ w + diagonal[j] * w[j]
            new = math.copysign(max(abs(partial) - penalty, 0.0), partial) / diagonal[j]
            largest_step = max(largest_step, abs(new - w[j]))
            w[j] = new
        if largest_step < tol:
            break
    return w


def _rounded(raw: np.ndarray) -> np.ndarray:
    """Weights scaled to sum |w| = 1 and rounded to `WEIGHT_DIGITS` significant digits."""
    total = float(np.sum(np.abs(raw)))
    if not total > 0.0:
        raise ValueError("no member has a non-zero weight (no train rank IC)")
    return np.array([float(f"{w / total:.{WEIGHT_DIGITS}g}") + 0.0 for w in raw])  # + 0.0: no -0.0


def _mean_rank_ic(member: np.ndarray, label: np.ndarray, rows: slice, min_names: int) -> float:
    return float(metrics.ic_stats(metrics.rank_ic(member, label, min_names, rows=rows))["mean"])

"""Factor combination: weights against a direct least-squares / ridge / lasso fit built independently
with pandas and numpy on a small panel, IC weights against pandas' Spearman, a planted signal, and
the composite formula against the composite's values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import combine
from miner.lang import Evaluator, canonical, lookback
from operators import REGISTRY
from tests.strategies import small_market

T, N = 80, 40
TRAIN, VALID = slice(0, 50), slice(52, 80)


def cross_sectional_z_of_ranks(panel: np.ndarray) -> np.ndarray:
    """pandas: percentile rank per date (average ties), then (x - mean) / std with ddof 0."""
    ranks = pd.DataFrame(panel).rank(axis=1, pct=True)
    return ranks.sub(ranks.mean(axis=1), axis=0).div(ranks.std(axis=1, ddof=0), axis=0).to_numpy()


def design(members: list[np.ndarray], label: np.ndarray, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """The stacked regression of the train cells where the label and some member are valid."""
    z = [cross_sectional_z_of_ranks(m)[rows].ravel() for m in members]
    y = cross_sectional_z_of_ranks(label)[rows].ravel()
    x = np.column_stack(z)
    keep = np.isfinite(y) & np.isfinite(x).any(axis=1)
    return np.nan_to_num(x[keep]), y[keep]


def spearman_by_date(factor: np.ndarray, label: np.ndarray, rows: slice) -> float:
    """Mean over the rows of pandas' Spearman correlation of factor and label per date."""
    values = [
        pd.Series(factor[t]).corr(pd.Series(label[t]), method="spearman")
        for t in range(*rows.indices(len(factor)))
    ]
    return float(np.nanmean(values))


def independent_composite(members: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    z = np.stack([cross_sectional_z_of_ranks(m) for m in members])
    total = np.nansum(z * weights[:, None, None], axis=0)
    total[np.isnan(z).all(axis=0)] = np.nan
    return total


def normalised(weights: np.ndarray) -> np.ndarray:
    return weights / np.abs(weights).sum()


@pytest.fixture
def panel(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """A label, two members that carry it (one negatively), two noise members; NaN holes."""
    label = rng.standard_normal((T, N))
    members = [
        label + 2.0 * rng.standard_normal((T, N)),
        -label + 3.0 * rng.standard_normal((T, N)),
        rng.standard_normal((T, N)),
        0.5 * rng.standard_normal((T, N)) + 0.3 * rng.standard_normal((T, 1)),
    ]
    for m in members:
        m[rng.random((T, N)) < 0.1] = np.nan
    members[2][:10, :5] = np.nan
    label[rng.random((T, N)) < 0.05] = np.nan
    return members, label


def test_normal_equations_and_ridge_path_equal_a_direct_fit(panel) -> None:
    members, label = panel
    standardized = [combine.standardize(m) for m in members]
    gram, moment, n = combine.normal_equations(standardized, combine.process_label(label), TRAIN)
    x, y = design(members, label, TRAIN)
    assert n == len(y)
    np.testing.assert_allclose(gram, x.T @ x, rtol=1e-10)
    path = combine.ridge_path(gram / n, moment / n)
    assert [p for p, _ in path] == sorted(combine.RIDGE_PENALTIES, reverse=True)
    for penalty, weights in path:  # ridge = least squares on the rows augmented by sqrt(n * penalty) I
        augmented = np.vstack([x, np.sqrt(n * penalty) * np.eye(len(members))])
        target = np.concatenate([y, np.zeros(len(members))])
        direct = np.linalg.lstsq(augmented, target, rcond=None)[0]
        np.testing.assert_allclose(weights, direct, rtol=1e-8, atol=1e-12, err_msg=f"penalty {penalty}")


def test_ridge_picks_the_penalty_with_the_best_valid_rank_ic_and_fits_on_train(panel) -> None:
    members, label = panel
    standardized = [combine.standardize(m) for m in members]
    fitted = combine.fit("ridge", standardized, label, TRAIN, VALID)
    x, y = design(members, label, TRAIN)
    n = len(y)
    by_penalty = {}
    for penalty in combine.RIDGE_PENALTIES:
        direct = np.linalg.solve(x.T @ x / n + penalty * np.eye(len(members)), x.T @ y / n)
        rounded = np.array([float(f"{w:.4g}") for w in normalised(direct)])
        by_penalty[penalty] = (
            spearman_by_date(independent_composite(members, rounded), label, VALID),
            rounded,
        )
    for penalty, score in fitted.valid_rank_ic_by_penalty.items():
        assert score == pytest.approx(by_penalty[penalty][0], abs=1e-10)
    best = max(by_penalty.values(), key=lambda item: item[0])[0]
    assert by_penalty[fitted.penalty][0] == pytest.approx(best, abs=1e-12)
    assert fitted.valid_rank_ic == pytest.approx(best, abs=1e-10)
    np.testing.assert_allclose(fitted.weights, by_penalty[fitted.penalty][1], atol=1e-12)
    assert np.abs(fitted.weights).sum() == pytest.approx(1.0, abs=1e-3)


def test_lasso_weights_meet_the_optimality_conditions_of_a_direct_fit(panel) -> None:
    members, label = panel
    x, y = design(members, label, TRAIN)
    n = len(y)
    gram, moment = x.T @ x / n, x.T @ y / n
    for penalty, w in combine.lasso_path(gram, moment):
        gradient = x.T @ (y - x @ w) / n  # the lasso's KKT conditions, from the stacked data
        active = w != 0
        np.testing.assert_allclose(gradient[active], penalty * np.sign(w[active]), atol=1e-8)
        assert np.all(np.abs(gradient[~active]) <= penalty + 1e-8)
    strongest, _ = combine.lasso_path(gram, moment)[0]
    assert strongest < np.abs(moment).max()
    fitted = combine.fit("lasso", [combine.standardize(m) for m in members], label, TRAIN, VALID)
    assert fitted.penalty in fitted.valid_rank_ic_by_penalty


def test_planted_signals_get_the_weight_with_their_sign(panel) -> None:
    members, label = panel
    standardized = [combine.standardize(m) for m in members]
    for method in combine.METHODS:
        w = combine.fit(method, standardized, label, TRAIN, VALID).weights
        assert w[0] > 0 and w[1] < 0, method
        if method != "ew":
            assert abs(w[0]) + abs(w[1]) > 0.8, (method, w)


def test_equal_and_ic_weights_follow_the_train_rank_ic(panel) -> None:
    members, label = panel
    standardized = [combine.standardize(m) for m in members]
    train_ic = np.array([spearman_by_date(m, label, TRAIN) for m in members])
    ew = combine.fit("ew", standardized, label, TRAIN, VALID)
    icw = combine.fit("icw", standardized, label, TRAIN, VALID)
    np.testing.assert_allclose(ew.train_rank_ic, train_ic, atol=1e-12)
    np.testing.assert_allclose(ew.weights, np.sign(train_ic) / 4, atol=1e-12)
    np.testing.assert_allclose(icw.weights, normalised(train_ic), atol=1e-4)
    assert np.isnan(ew.penalty) and ew.valid_rank_ic_by_penalty == {}


def test_a_member_without_train_ic_is_left_out_and_bad_calls_are_errors(panel) -> None:
    members, label = panel
    standardized = [combine.standardize(m) for m in members]
    standardized[3] = np.full((T, N), np.nan)
    fitted = combine.fit("ew", standardized, label, TRAIN, VALID)
    assert fitted.weights[3] == 0 and "zscore(rank(d))" not in combine.composite_formula(
        "abcd", fitted.weights
    )
    with pytest.raises(ValueError, match="unknown combination method"):
        combine.fit("pca", standardized, label, TRAIN, VALID)
    with pytest.raises(ValueError, match="at least one member"):
        combine.fit("ew", [], label, TRAIN, VALID)


def test_the_composite_formula_computes_the_composite() -> None:
    """Members missing for a name count as 0; where all are missing the composite is NaN."""
    market = small_market(seed=3, t=40, n=12)
    members = {"f_a": "ts_mean(returns, 5)", "f_b": "rank(volume)", "f_c": "delta(close, 3)"}
    evaluator = Evaluator(market)
    panels = {name: np.array(evaluator.evaluate(formula)) for name, formula in members.items()}
    panels["f_b"][5:9, 2:6] = np.nan
    weights = np.array([0.5, -0.3, 0.2])
    formula = combine.composite_formula(list(panels), weights)
    assert canonical(formula) == canonical(
        "nan_add(0.5 * zscore(rank(f_a)), nan_add(-0.3 * zscore(rank(f_b)), 0.2 * zscore(rank(f_c))))"
    )
    expected = independent_composite(list(panels.values()), weights)
    got = Evaluator(market, extra=panels).evaluate(formula)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    standardized = [combine.standardize(p) for p in panels.values()]
    np.testing.assert_allclose(combine.composite(standardized, weights), got, rtol=1e-12, atol=1e-12)
    inline = combine.composite_formula(list(members.values()), weights)
    assert lookback(inline) == 4


def test_nan_add_counts_a_missing_side_as_zero_and_never_returns_inf() -> None:
    spec = REGISTRY["nan_add"]
    assert spec.family == "combination" and spec.commutative
    x = np.array([[1.0, np.nan, np.nan, 2.0, 1e308]])
    y = np.array([[3.0, 4.0, np.nan, -2.0, 1e308]])
    np.testing.assert_array_equal(spec.kernel(x, y), [[4.0, 4.0, np.nan, 0.0, np.nan]])
    np.testing.assert_array_equal(spec.kernel(y, x), spec.kernel(x, y))

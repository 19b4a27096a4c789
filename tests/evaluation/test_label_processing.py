"""Label processing: rank and winsorized z-score transforms and group neutralization against pandas,
NaN handling, and each date depending on that date alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evaluation.labels import cross_sectional_transform, neutralize, process_label

NAN = np.nan


def messy_panel(seed: int, shape: tuple[int, int] = (40, 25)) -> np.ndarray:
    """Returns with ties, NaN, +-inf, a date of one finite value and an all-NaN date."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(shape) * 0.02, 3)  # rounding makes ties
    x[rng.random(shape) < 0.15] = NAN
    x[3, 4], x[5, 6] = np.inf, -np.inf
    x[7] = NAN
    x[7, 2] = 0.01
    x[8] = NAN
    x[9, :3] = [1.0, NAN, 1.0]  # a constant date
    x[9, 3:] = NAN
    return x


def finite_frame(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(np.where(np.isfinite(x), x, NAN))


def pandas_rank(x: np.ndarray) -> np.ndarray:
    frame = finite_frame(x)
    n = frame.count(axis=1)
    out = (frame.rank(axis=1, method="average") - 0.5).div(n, axis=0) - 0.5
    out[n < 2] = NAN
    return out.to_numpy()


def pandas_zscore(x: np.ndarray, winsor: float) -> np.ndarray:
    frame = finite_frame(x)

    def standardize(f: pd.DataFrame) -> pd.DataFrame:
        return f.sub(f.mean(axis=1), axis=0).div(f.std(axis=1, ddof=0), axis=0)

    out = standardize(standardize(frame).clip(-winsor, winsor))
    out[frame.count(axis=1) < 2] = NAN
    return out.replace([np.inf, -np.inf], NAN).to_numpy()


def pandas_neutralize(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    long = pd.DataFrame(
        {
            "date": np.repeat(np.arange(x.shape[0]), x.shape[1]),
            "value": np.where(np.isfinite(x), x, NAN).ravel(),
            "group": groups.ravel(),
        }
    )
    means = long.groupby(["date", "group"])["value"].transform("mean")
    out = (long["value"] - means).where(long["group"].notna())
    return out.to_numpy().reshape(x.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_matches_pandas(seed: int) -> None:
    x = messy_panel(seed)
    out = cross_sectional_transform(x, "rank")
    np.testing.assert_allclose(out, pandas_rank(x), rtol=0, atol=1e-15)
    finite = out[np.isfinite(out)]
    assert (finite > -0.5).all() and (finite < 0.5).all()
    assert np.isnan(out[7]).all() and np.isnan(out[8]).all()  # fewer than 2 finite values
    np.testing.assert_array_equal(out[9, :3], [0.0, NAN, 0.0])  # two ties at the middle
    assert np.isnan(out[3, 4]) and np.isnan(out[5, 6])  # inf is not a value


def test_rank_by_hand() -> None:
    x = np.array([[3.0, 1.0, 2.0, 2.0, NAN]])  # ranks 4, 1, 2.5, 2.5 of n = 4
    expected = [[(4 - 0.5) / 4 - 0.5, (1 - 0.5) / 4 - 0.5, 0.0, 0.0, NAN]]
    np.testing.assert_array_equal(cross_sectional_transform(x, "rank"), expected)


@pytest.mark.parametrize(("seed", "winsor"), [(0, 3.0), (1, 1.0), (2, 0.5), (3, np.inf)])
def test_zscore_matches_pandas(seed: int, winsor: float) -> None:
    x = messy_panel(seed)
    x[11, 0] = 5.0  # an outlier to clip
    out = cross_sectional_transform(x, "zscore", winsor=winsor)
    np.testing.assert_allclose(out, pandas_zscore(x, winsor), rtol=1e-12, atol=1e-12)
    assert np.isnan(out[9]).all()  # no spread


def test_zscore_clips_once_then_restandardizes() -> None:
    x = np.array([[0.0] * 9 + [100.0]])  # z = -1/3 (x9), 3 -> clipped to 2, then standardized again
    out = cross_sectional_transform(x, "zscore", winsor=2.0)
    clipped = np.array([-1 / 3] * 9 + [2.0])
    np.testing.assert_allclose(out[0], (clipped - clipped.mean()) / clipped.std())
    assert out[0].mean() == pytest.approx(0.0, abs=1e-15) and out[0].std() == pytest.approx(1.0)


def test_raw_is_a_copy() -> None:
    x = messy_panel(4)
    out = cross_sectional_transform(x, "raw")
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)


def test_bad_transform_arguments() -> None:
    with pytest.raises(ValueError, match="transform"):
        cross_sectional_transform(np.zeros((2, 2)), "demean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="winsor"):
        cross_sectional_transform(np.zeros((2, 2)), "zscore", winsor=0.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_neutralize_matches_a_pandas_groupby_demean(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = messy_panel(seed)
    groups = rng.integers(0, 5, x.shape).astype(float)
    groups[rng.random(x.shape) < 0.1] = NAN
    groups[:, 0] = 1e6 + 0.5  # a label that is not a small integer code
    np.testing.assert_allclose(neutralize(x, groups), pandas_neutralize(x, groups), rtol=0, atol=1e-15)


def test_neutralize_by_hand() -> None:
    x = np.array([[1.0, 3.0, 10.0, NAN, 7.0, np.inf]])
    groups = np.array([[0.0, 0.0, 1.0, 1.0, NAN, 1.0]])
    np.testing.assert_array_equal(neutralize(x, groups), [[-1.0, 1.0, 0.0, NAN, NAN, NAN]])


def test_process_label_neutralizes_then_transforms() -> None:
    rng = np.random.default_rng(9)
    x = messy_panel(9)
    groups = rng.integers(0, 3, x.shape).astype(float)
    np.testing.assert_allclose(
        process_label(x, "rank", groups), pandas_rank(pandas_neutralize(x, groups)), rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(process_label(x, "zscore"), pandas_zscore(x, 3.0), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(process_label(x, "raw"), x)


TRANSFORMS = [
    lambda x: cross_sectional_transform(x, "rank"),
    lambda x: cross_sectional_transform(x, "zscore", winsor=1.5),
    lambda x: neutralize(x, np.tile(np.arange(8.0) % 3, (x.shape[0], 1))),
]


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(np.float64, (12, 8), elements=st.sampled_from([NAN, -1.0, 0.0, 0.5, 2.0, 3.25])),
    other=hnp.arrays(np.float64, (12, 8), elements=st.floats(-1e6, 1e6) | st.just(NAN)),
    date=st.integers(0, 11),
    which=st.sampled_from(range(len(TRANSFORMS))),
)
def test_each_date_depends_on_that_date_only(x, other, date, which) -> None:
    transform = TRANSFORMS[which]
    changed = other.copy()
    changed[date] = x[date]  # every other date, earlier and later, replaced
    np.testing.assert_array_equal(transform(changed)[date], transform(x)[date])

"""Operators that composite factors are written with (`evaluation.combine`).

A composite is a weighted sum of its members' standardised values. A member that is missing for a
name on a date counts as neutral (0, its cross-sectional mean) rather than hiding the others, so
the sum is taken with `nan_add`. The family is not in the GP's default operator families: it
exists for composites, and a search that wants it lists it in `operators.families`.
"""

from __future__ import annotations

import numpy as np

from operators.registry import Arg, operator

FAMILY = "combination"


@operator(
    "nan_add",
    Arg.series("x"),
    Arg.series("y"),
    family=FAMILY,
    commutative=True,
    doc="x + y with a missing side counting as 0; NaN where both are missing",
)
def nan_add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x_missing, y_missing = np.isnan(x), np.isnan(y)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.where(x_missing, 0.0, x) + np.where(y_missing, 0.0, y)
    total[x_missing & y_missing] = np.nan
    total[np.isinf(total)] = np.nan
    return total

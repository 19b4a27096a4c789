"""No operator emits inf (DESIGN rule 3): the two scalar rules the kernels apply it with.

`nan_if_inf` turns +-inf into NaN and lets every other value through, a NaN with its own bits;
`finite_or_nan` returns numpy's NaN for any value that is not finite, so every NaN out of it is
the same NaN whatever invalid operation made it. The elementwise and cross-sectional kernels use
the first, the time-series kernels the second; swapping one for the other would change the sign
and payload bits of some NaN outputs, never a number.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def nan_if_inf(value: float) -> float:
    """NaN where value is +-inf, else value itself (a NaN included)."""
    return np.nan if math.isinf(value) else value


@njit(cache=True, nogil=True)
def finite_or_nan(value: float) -> float:
    """value where it is finite, else numpy's NaN."""
    return value if math.isfinite(value) else np.nan

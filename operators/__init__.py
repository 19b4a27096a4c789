"""The formula language's vocabulary: numeric kernels and the one operator registry.

Importing this package declares every operator; `REGISTRY` then maps each name to its spec.

Some numba kernels call helpers defined in another file (`operators.sorting`, `robust.is_flat`,
`operators.finite`; `evaluation.ranking` calls `operators.sorting`). numba's on-disk cache
does not notice when such a helper changes: after editing one, delete the `*.nbi` / `*.nbc` files
under `operators/__pycache__` and `evaluation/__pycache__`, or its callers keep their old copy.
"""

from operators import (  # noqa: F401  (declares)
    combination,
    cross_section,
    elementwise,
    quantile,
    regression,
    robust,
    spectral,
    timeseries,
)
from operators.registry import REGISTRY, Arg, Kind, Operator, operators_by_family

__all__ = ["REGISTRY", "Arg", "Kind", "Operator", "operators_by_family"]

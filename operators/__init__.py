"""The formula language's vocabulary: numeric kernels and the one operator registry.

Importing this package declares every operator; `REGISTRY` then maps each name to its spec.
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

"""The formula language's vocabulary: numeric kernels and the one operator registry.

Importing this package declares every operator; `REGISTRY` then maps each name to its spec.
"""

from operators import combination, cross_section, elementwise, robust, spectral, timeseries  # noqa: F401  (declares)
from operators.registry import REGISTRY, Arg, Kind, Operator, operators_by_family

__all__ = ["REGISTRY", "Arg", "Kind", "Operator", "operators_by_family"]

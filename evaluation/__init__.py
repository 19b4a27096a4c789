"""Scoring of factor panels: forward-return labels, metrics and GP fitness (arrays in, no miner).

The metrics' numba kernels call those of `evaluation.ranking`, which call `operators.sorting`:
see the `operators` package docstring on numba's cache after editing one of them.
"""

from evaluation.fitness import (
    WORST_FITNESS,
    Objective,
    SurvivorThresholds,
    admit,
    block_means,
    hac_tstat,
    icir_fitness,
)
from evaluation.gates import Gates, distinct_share, gate_failure
from evaluation.labels import (
    LabelTransform,
    cross_sectional_transform,
    forward_returns,
    forward_returns_multi,
    neutralize,
    process_label,
)
from evaluation.metrics import (
    LabelRanks,
    coverage,
    factor_correlation,
    factor_summary,
    factor_turnover,
    half_life,
    ic,
    ic_decay,
    ic_stats,
    long_short,
    monotonicity,
    prepare_label,
    quantile_returns,
    quantile_turnover,
    rank_autocorrelation,
    rank_ic,
    rank_ic_fast,
)
from evaluation.multiple_testing import Method, first_hurdle, one_sided_pvalues, significant

__all__ = [
    "WORST_FITNESS",
    "Gates",
    "LabelRanks",
    "LabelTransform",
    "Method",
    "Objective",
    "SurvivorThresholds",
    "admit",
    "block_means",
    "coverage",
    "cross_sectional_transform",
    "distinct_share",
    "factor_correlation",
    "factor_summary",
    "factor_turnover",
    "first_hurdle",
    "forward_returns",
    "forward_returns_multi",
    "gate_failure",
    "hac_tstat",
    "half_life",
    "ic",
    "ic_decay",
    "ic_stats",
    "icir_fitness",
    "long_short",
    "monotonicity",
    "neutralize",
    "one_sided_pvalues",
    "prepare_label",
    "process_label",
    "quantile_returns",
    "quantile_turnover",
    "rank_autocorrelation",
    "rank_ic",
    "rank_ic_fast",
    "significant",
]

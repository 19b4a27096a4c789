"""The label an experiment mines and measures against: the forward return of `label.price` at
`label.horizon` after `label.delay`, NaN where the entry bar is not tradable (`label.tradable`),
neutralised against `label.neutralize`'s groups and transformed per date (`label.transform`)."""

from __future__ import annotations

import numpy as np

from evaluation import forward_returns
from evaluation.labels import process_label
from miner.config import LabelSpec
from miner.errors import ConfigError
from miner.market.panel import MarketData
from miner.market.rules import label_mask


def experiment_label(market: MarketData, spec: LabelSpec) -> np.ndarray:
    """(T, N) label of the experiment on `market`."""
    raw = forward_returns(
        market.field(spec.price), spec.horizon, spec.delay, label_mask(market, spec.tradable)
    )
    groups = None if spec.neutralize is None else neutralizing_groups(market, spec.neutralize)
    if groups is None and spec.transform == "raw":
        return raw
    return process_label(raw, spec.transform, groups)


def neutralizing_groups(market: MarketData, name: str) -> np.ndarray:
    """(T, N) codes of the group field `label.neutralize` names; a ConfigError for any other name."""
    if name not in market.groups:
        known = ", ".join(sorted(market.groups)) or "none"
        raise ConfigError(
            f"label.neutralize: {name!r} is not a group field of the market (group fields: {known})"
        )
    return market.fields[name]

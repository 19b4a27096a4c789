"""From a config to a market: the data an experiment mines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from miner.config import ExperimentConfig
from miner.errors import ConfigError
from miner.market import MarketData
from miner.market.ingest import read_bar_file
from miner.market.store import load_market
from miner.market.synthetic import synthetic_market

if TYPE_CHECKING:
    from miner.library import FactorLibrary


def market_for(config: ExperimentConfig) -> MarketData:
    """The market an experiment names: synthetic, a DuckDB market store, or a bar file."""
    spec = config.data
    if spec.source == "synthetic":
        market: MarketData = synthetic_market(**spec.synthetic.model_dump())
    elif spec.source == "store":
        if not spec.location.exists():
            raise ConfigError(f"data.path: market store {spec.location} does not exist")
        return load_market(
            spec.location, start=spec.start, end=spec.end, instruments=spec.instruments, minute=spec.minute
        )
    else:
        market = MarketData.from_frame(read_bar_file(spec.location), source=str(spec.location))
    if spec.start or spec.end or spec.instruments:
        market = market.select(start=spec.start, end=spec.end, instruments=spec.instruments)
    return market


def library_factors_for(config: ExperimentConfig, market: MarketData) -> dict[str, np.ndarray]:
    """Every factor of the configured library on the market's grid (NaN where it has no value),
    so that survivors must be novel against them too."""
    path = config.library.path
    if path is None:
        return {}
    if not path.exists():
        raise ConfigError(f"{config.source}: library.path: factor library {path} does not exist")
    from miner.library import FactorLibrary

    with FactorLibrary(path, read_only=True) as library:
        return library_panels(library, library.list_factors()["factor_id"], market)


def library_panels(
    library: FactorLibrary, factor_ids: Iterable[str], market: MarketData
) -> dict[str, np.ndarray]:
    """Library factors' stored values on the market's grid (NaN where a factor has no value)."""
    dates = pd.DatetimeIndex(market.dates.astype("datetime64[ns]"))
    panels = {}
    for factor_id in factor_ids:
        frame = library.get_factor(factor_id).reindex(index=dates, columns=list(market.instruments))
        panels[factor_id] = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
    return panels

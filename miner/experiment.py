"""From a config to a market: the data an experiment mines."""

from __future__ import annotations

import pandas as pd

from miner.config import ExperimentConfig
from miner.data import MarketData, load_market
from miner.errors import ConfigError, DataError
from miner.synthetic import synthetic_market


def market_for(config: ExperimentConfig) -> MarketData:
    """The market an experiment names: synthetic, a DuckDB market store, or a bar file."""
    spec = config.data
    if spec.source == "synthetic":
        s = spec.synthetic
        market: MarketData = synthetic_market(
            n_instruments=s.n_instruments,
            n_days=s.n_days,
            seed=s.seed,
            signal_strength=s.signal_strength,
            intraday_strength=s.intraday_strength,
            minute_days=s.minute_days,
        )
    elif spec.source == "store":
        if not spec.path.exists():
            raise ConfigError(f"data.path: market store {spec.path} does not exist")
        return load_market(
            spec.path, start=spec.start, end=spec.end, instruments=spec.instruments, minute=spec.minute
        )
    else:
        market = MarketData.from_frame(_read_bars(spec.path), source=str(spec.path))
    if spec.start or spec.end or spec.instruments:
        market = market.select(start=spec.start, end=spec.end, instruments=spec.instruments)
    return market


def _read_bars(path) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError(f"data.path: {path} does not exist")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"instrument": str})
    raise DataError(f"{path}: expected a .parquet or .csv file of daily bars")

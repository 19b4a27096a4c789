"""From a config to a market: the data an experiment mines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from miner.config import ExperimentConfig
from miner.errors import ConfigError, DataError
from miner.market import MarketData, session_grid
from miner.market.ingest import read_bar_file
from miner.market.store import MarketStore
from miner.market.synthetic import RULES_OF_SESSION, synthetic_market

if TYPE_CHECKING:
    from miner.library import FactorLibrary


def market_for(config: ExperimentConfig) -> MarketData:
    """The market an experiment names: synthetic, a DuckDB market store, or a bar file; its
    session and trading rules checked against what the config says (`data.session`,
    `data.rules`, `label.tradable`)."""
    spec = config.data
    if spec.source == "synthetic":
        _check_synthetic(config)
        market: MarketData = synthetic_market(**spec.synthetic.model_dump())
    elif not spec.location.exists():
        what = "market store" if spec.source == "store" else "bar file"
        raise ConfigError(f"data.path: {what} {spec.location} does not exist")
    elif spec.source == "store":
        with MarketStore(spec.location, read_only=True) as store:
            _check_store(config, store)
            market = store.load(spec.start, spec.end, spec.instruments, spec.minute)
    else:
        if spec.session is not None:
            raise ConfigError(
                f"{config.source}: data.session: a bar file has no minute bars; import them into a "
                "market store (miner data import --kind minute --session ...)"
            )
        market = MarketData.from_frame(
            read_bar_file(spec.location), source=str(spec.location), rules=spec.rules
        )
    if spec.source != "store" and (spec.start or spec.end or spec.instruments):
        market = market.select(start=spec.start, end=spec.end, instruments=spec.instruments)
    if config.label.tradable == "entry" and "tradable" not in market.fields:
        raise ConfigError(
            f"{config.source}: label.tradable: entry needs a 'tradable' field, which the data has "
            "not: import the daily bars with --rules (or set data.rules for a bar file)"
        )
    price = config.label.price
    if price not in market.fields or market.is_group(price):
        fields = ", ".join(sorted(name for name in market.fields if not market.is_group(name)))
        raise ConfigError(f"label.price: {price!r} is not a numeric field of the data (fields: {fields})")
    return market


def _check_synthetic(config: ExperimentConfig) -> None:
    """data.session / data.rules, when given, must be what the synthetic market's session implies."""
    session = config.data.synthetic.session
    implied = {"session": session, "rules": RULES_OF_SESSION[session]}
    for key, value in implied.items():
        given = getattr(config.data, key)
        if given is not None and given != value:
            raise ConfigError(
                f"{config.source}: data.{key}: {given!r}, but the synthetic market with "
                f"data.synthetic.session {session!r} has {value!r}"
            )


def _check_store(config: ExperimentConfig, store: MarketStore) -> None:
    """data.session / data.rules, when given, must be what the store recorded at import."""
    spec = config.data
    if spec.session is not None:
        try:
            wanted = session_grid(spec.session)
        except DataError as exc:
            raise ConfigError(f"{config.source}: data.session: {exc}") from None
        recorded = store.minute_session()
        if recorded is not None and wanted != recorded:
            raise ConfigError(
                f"{config.source}: data.session: {spec.session!r}, but the market store "
                f"{spec.location} holds minute bars on the {recorded}"
            )
    if spec.rules is not None:
        rules = store.rules()
        if rules is None or rules.name != spec.rules:
            found = f"records {rules.name!r}" if rules else "records no trading rules"
            raise ConfigError(
                f"{config.source}: data.rules: {spec.rules!r}, but the market store "
                f"{spec.location} {found} (set at import: miner data import --rules)"
            )


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

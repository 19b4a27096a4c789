"""Market data: the panel formulas run on, session grids, ingest and validation, the DuckDB market
store and the synthetic market.

Only the numpy-based panel and session grid are imported here, so that scoring workers stay light;
the pandas/DuckDB parts are in `miner.market.store`, `.ingest`, `.assemble` and `.synthetic`.
"""

from miner.market.panel import MarketData
from miner.market.session import CN_SESSION, US_REGULAR_SESSION, SessionGrid, session_grid

__all__ = ["CN_SESSION", "US_REGULAR_SESSION", "MarketData", "SessionGrid", "session_grid"]

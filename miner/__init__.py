"""factor-miner: genetic-programming factor mining with honest out-of-sample scoring.

The public names are imported on first use, so that `import miner.config` stays light.
"""

from typing import TYPE_CHECKING

from miner.errors import ConfigError, DataError, FormulaError, LibraryError, MinerError
from miner.lazy import lazy_attributes

__version__ = "0.1.0"

if TYPE_CHECKING:
    from miner.lang import Evaluator, canonical, evaluate, lookback, parse, to_string
    from miner.market import MarketData
    from miner.market.store import load_market

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Evaluator": "miner.lang",
        "MarketData": "miner.market",
        "canonical": "miner.lang",
        "evaluate": "miner.lang",
        "load_market": "miner.market.store",
        "lookback": "miner.lang",
        "parse": "miner.lang",
        "to_string": "miner.lang",
    },
)

__all__ = [
    "ConfigError",
    "DataError",
    "Evaluator",
    "FormulaError",
    "LibraryError",
    "MarketData",
    "MinerError",
    "canonical",
    "evaluate",
    "load_market",
    "lookback",
    "parse",
    "to_string",
]

"""factor-miner: genetic-programming factor mining with honest out-of-sample scoring."""

from miner.data import MarketData
from miner.errors import ConfigError, DataError, FormulaError, LibraryError, MinerError
from miner.expression import Evaluator, canonical, evaluate, lookback, parse, to_string

__version__ = "0.1.0"

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
    "lookback",
    "parse",
    "to_string",
]

"""The factor library: registered formulas, their stored values, kept current incrementally.

`FactorLibrary` and the rest are imported on first use, so that the command line can read the
defaults below without loading the kernels.
"""

from typing import TYPE_CHECKING

from miner.lazy import lazy_attributes

DEFAULT_PATH = "factors.duckdb"
DEFAULT_MONITOR_WINDOW = 60

if TYPE_CHECKING:
    from miner.library.graph import chained_history, dependency_order
    from miner.library.library import FactorLibrary
    from miner.library.monitor import monitor_frame
    from miner.library.records import CheckReport, FactorRecord, UpdateResult
    from miner.library.schema import SCHEMA, SCHEMA_VERSION

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "CheckReport": "miner.library.records",
        "FactorLibrary": "miner.library.library",
        "FactorRecord": "miner.library.records",
        "SCHEMA": "miner.library.schema",
        "SCHEMA_VERSION": "miner.library.schema",
        "UpdateResult": "miner.library.records",
        "chained_history": "miner.library.graph",
        "dependency_order": "miner.library.graph",
        "monitor_frame": "miner.library.monitor",
    },
)

__all__ = [
    "DEFAULT_MONITOR_WINDOW",
    "DEFAULT_PATH",
    "SCHEMA",
    "SCHEMA_VERSION",
    "CheckReport",
    "FactorLibrary",
    "FactorRecord",
    "UpdateResult",
    "chained_history",
    "dependency_order",
    "monitor_frame",
]

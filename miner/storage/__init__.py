"""The DuckDB plumbing the market store and the factor library share."""

from miner.storage.database import connect, transaction
from miner.storage.migrations import Migration, Schema, migrate, schema_version

__all__ = ["Migration", "Schema", "connect", "migrate", "schema_version", "transaction"]

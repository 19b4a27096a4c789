"""The DuckDB plumbing the market store and the factor library share."""

from miner.storage.database import (
    DEFAULT_LOCK_TIMEOUT,
    LOCK_TIMEOUT_ENV,
    DatabaseFile,
    HeldConnection,
    connect,
    file_signature,
    lock_timeout,
    transaction,
)
from miner.storage.migrations import Migration, Schema, migrate, schema_version

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "LOCK_TIMEOUT_ENV",
    "DatabaseFile",
    "HeldConnection",
    "Migration",
    "Schema",
    "connect",
    "file_signature",
    "lock_timeout",
    "migrate",
    "schema_version",
    "transaction",
]

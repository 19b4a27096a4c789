"""The factor library's tables and their migrations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb

from miner.errors import LibraryError
from miner.storage import Migration, Schema, transaction

# Uniqueness of factor_values is kept by the write path, not by an index: every write deletes the
# factor's rows from its first written date on and inserts one row per finite cell of a (dates x
# instruments) panel, in one transaction; `check` verifies it. A primary-key index would cost
# several times more on every write and on disk for a guarantee the write path already gives, and
# reads are pruned by zone maps without it (benchmarks/README.md, "Design choices").
_SCHEMA_V1 = """
CREATE TABLE factor_metadata (
    factor_id VARCHAR PRIMARY KEY,
    description TEXT NOT NULL,
    formula TEXT NOT NULL,
    category VARCHAR NOT NULL,
    dependencies JSON NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_updated TIMESTAMP NOT NULL,
    canonical VARCHAR NOT NULL UNIQUE,
    lookback INTEGER NOT NULL,
    source VARCHAR,
    metrics JSON,
    status VARCHAR NOT NULL CHECK (status IN ('ok', 'stale', 'computing')),
    stale_from DATE,
    computed_through DATE
);
CREATE TABLE factor_values (
    factor_id VARCHAR NOT NULL, date DATE NOT NULL, instrument VARCHAR NOT NULL, value DOUBLE NOT NULL
);
CREATE TABLE factor_monitor (
    factor_id VARCHAR NOT NULL, rolling_window INTEGER NOT NULL, date DATE NOT NULL,
    ic DOUBLE, rank_ic DOUBLE, turnover DOUBLE, coverage DOUBLE,
    ic_mean DOUBLE, rank_ic_mean DOUBLE, icir DOUBLE, rank_icir DOUBLE,
    turnover_mean DOUBLE, coverage_mean DOUBLE,
    computed_at TIMESTAMP NOT NULL
);
"""

SCHEMA = Schema(
    "library",
    "factor library",
    (Migration(1, "factor_metadata, factor_values, factor_monitor", _SCHEMA_V1),),
)
SCHEMA_VERSION = SCHEMA.latest


@contextlib.contextmanager
def write_transaction(con: duckdb.DuckDBPyConnection, what: str) -> Iterator[None]:
    """All or nothing; a database error is a LibraryError saying `what` failed and nothing changed."""
    with transaction(con, f"{what} failed, library unchanged", LibraryError):
        yield

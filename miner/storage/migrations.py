"""Schema versions: each store's file records its version and is upgraded step by step on open."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from miner.errors import MinerError
from miner.storage.database import transaction


@dataclass(frozen=True)
class Migration:
    """One schema step: `sql` brings a file at version - 1 to `version`."""

    version: int
    description: str
    sql: str


@dataclass(frozen=True)
class Schema:
    """A store's migrations and where it records its version: ``<prefix>_meta(key, value)`` holds
    ``schema_version``, ``<prefix>_migrations`` logs each applied step."""

    prefix: str
    what: str  # names the store in messages, e.g. "factor library"
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        return self.migrations[-1].version


def schema_version(con: duckdb.DuckDBPyConnection, schema: Schema) -> int:
    """The schema version of a connection's database; 0 when it holds no such store."""
    try:
        rows = con.execute(f"SELECT value FROM {schema.prefix}_meta WHERE key = 'schema_version'").fetchall()
    except duckdb.CatalogException:
        return 0
    return int(rows[0][0]) if rows else 0


def migrate(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    path: Path,
    read_only: bool,
    error: type[MinerError],
) -> int:
    """Apply every migration newer than the file's version, each in its own transaction."""
    found = schema_version(con, schema)
    if found > schema.latest:
        raise error(
            f"{schema.what} {path} has schema version {found}, newer than this miner supports "
            f"({schema.latest})"
        )
    if found == schema.latest:
        return found
    if read_only:
        what = f"holds no {schema.what}" if found == 0 else f"has schema version {found}"
        raise error(
            f"{path} {what}; open it once without read_only to create or upgrade it to version "
            f"{schema.latest}"
        )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {schema.prefix}_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);"
        f"CREATE TABLE IF NOT EXISTS {schema.prefix}_migrations (version INTEGER PRIMARY KEY, "
        "description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL);"
    )
    for step in _after(schema.migrations, found):
        failure = f"migrating {schema.what} {path} to version {step.version} failed, file unchanged"
        with transaction(con, failure, error):
            con.execute(step.sql)
            con.execute(
                f"INSERT INTO {schema.prefix}_migrations VALUES (?, ?, now()::TIMESTAMP)",
                [step.version, step.description],
            )
            con.execute(
                f"INSERT OR REPLACE INTO {schema.prefix}_meta VALUES ('schema_version', ?)",
                [str(step.version)],
            )
    return schema.latest


def _after(migrations: Sequence[Migration], version: int) -> list[Migration]:
    return [step for step in migrations if step.version > version]

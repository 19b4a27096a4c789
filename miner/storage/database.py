"""Opening a DuckDB file and writing to it in transactions, with errors people can act on.

DuckDB lets one process hold a file writable, and then no other process may open it at all;
a process may hold a file either read-only or writable, not both.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

from miner.errors import MinerError


def connect(path: Path, read_only: bool, what: str, error: type[MinerError]) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB file `path` (`what` names it in messages: "market store" ...)."""
    if read_only and not path.exists():
        raise error(f"{what} {path} does not exist")
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            holder = re.search(r"PID (\d+)", str(exc))
            pid = f" (PID {holder.group(1)})" if holder else ""
            raise error(f"{what} {path} is locked by another process{pid}") from None
        raise error(f"cannot open {what} {path}: {exc}") from None
    except duckdb.ConnectionException:
        raise error(f"{what} {path} is already open in this process with another read_only setting") from None


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection, failure: str, error: type[MinerError]) -> Iterator[None]:
    """All or nothing; a database error becomes `error("<failure>: <what DuckDB said>")`, where
    `failure` says what failed and that nothing was written."""
    con.begin()
    try:
        yield
        con.commit()
    except BaseException as exc:
        with contextlib.suppress(duckdb.Error):
            con.rollback()
        if isinstance(exc, duckdb.Error):
            raise error(f"{failure}: {exc}") from exc
        raise

"""Opening a DuckDB file for one operation at a time, and writing to it in transactions.

DuckDB lets one process hold a file writable, and then no other process may open it at all; a
process may hold a file either read-only or writable, not both. So the stores hold no connection
between operations: `DatabaseFile.operation` opens the file (read-only unless the operation writes)
and closes it after, and a long job that must keep it between steps (`HeldConnection`) gives it up
whenever another process waits for it. A process that meets the lock waits its turn
(`miner.storage.turns`) and retries with a growing pause for up to the lock timeout: the
``lock_timeout`` argument of the store, else the environment variable ``MINER_LOCK_TIMEOUT``
(seconds), else `DEFAULT_LOCK_TIMEOUT`; then it gives up with one line naming the process that holds
the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from miner.errors import ConfigError, MinerError
from miner.storage.turns import in_turn, someone_waiting

DEFAULT_LOCK_TIMEOUT = 30.0
LOCK_TIMEOUT_ENV = "MINER_LOCK_TIMEOUT"
FIRST_PAUSE = 0.005  # seconds before the second attempt; doubles up to MAX_PAUSE
MAX_PAUSE = 0.1  # a failed attempt costs DuckDB's start-up (milliseconds of CPU): not more often

_jitter = random.Random()  # its own stream: the driver's `random` drives the evolution


def lock_timeout(seconds: float | None = None) -> float:
    """How long to wait for a locked file: `seconds`, else $MINER_LOCK_TIMEOUT, else the default."""
    if seconds is None:
        text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
        if not text:
            return DEFAULT_LOCK_TIMEOUT
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if not seconds >= 0:
            raise ConfigError(f"{LOCK_TIMEOUT_ENV}={text!r}: expected a number of seconds >= 0")
    if not seconds >= 0:
        raise ConfigError(f"lock_timeout {seconds!r}: expected a number of seconds >= 0")
    return float(seconds)


class _Busy(Exception):
    """The file is locked by another process, or open in this one with the other read_only mode."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def connect(
    path: Path, read_only: bool, what: str, error: type[MinerError], timeout: float | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB file `path` (`what` names it in messages: "market store" ...),
    waiting up to the lock timeout while another process holds the file."""
    if read_only and not path.exists():
        raise error(f"{what} {path} does not exist")
    deadline = time.monotonic() + lock_timeout(timeout)
    pause = FIRST_PAUSE
    with in_turn(path, deadline):
        while True:
            try:
                return _open(path, read_only, what, error)
            except _Busy as busy:
                if time.monotonic() + pause > deadline:
                    raise error(busy.message) from None
            time.sleep(pause * _jitter.uniform(0.8, 1.2))
            pause = min(2 * pause, MAX_PAUSE)


def _open(path: Path, read_only: bool, what: str, error: type[MinerError]) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise error(f"cannot open {what} {path}: {exc}") from None
        holder = re.search(r"PID (\d+)", str(exc))
        pid = f" (PID {holder.group(1)})" if holder else ""
        raise _Busy(f"{what} {path} is locked by another process{pid}") from None
    except duckdb.ConnectionException:
        if read_only:  # this process holds it writable: read through that database
            return _open(path, False, what, error)
        raise _Busy(f"{what} {path} is open read-only in this process") from None
    except duckdb.Error as exc:  # e.g. a Parquet file, which DuckDB would open as a view in memory
        raise error(f"cannot open {what} {path}: {exc}") from None


def file_signature(path: Path) -> tuple:
    """What changes whenever anyone commits to the DuckDB file at `path`: the identity, size and
    times of the file and of its write-ahead log (a commit appends to the log, a checkpoint writes
    the file). Two `stat` calls, no connection."""
    parts: list[tuple[int, int, int, int] | None] = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            status = file.stat()
        except FileNotFoundError:
            parts.append(None)
            continue
        parts.append((status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return tuple(parts)


class DatabaseFile:
    """A DuckDB file opened per operation: `operation` opens it when the outermost operation of the
    calling thread starts (read-only unless it writes) and closes it when that one ends; nested
    operations share the connection. An idle object holds no connection and no lock."""

    def __init__(self, path: Path, what: str, error: type[MinerError], timeout: float | None = None) -> None:
        self.path = path
        self.what = what
        self.error = error
        self.timeout = timeout
        self._local = threading.local()
        self._bound: tuple[duckdb.DuckDBPyConnection, bool] | None = None

    @classmethod
    def bound(
        cls, con: duckdb.DuckDBPyConnection, path: Path, what: str, error: type[MinerError], writable: bool
    ) -> DatabaseFile:
        """Operations on a connection someone else opened and closes."""
        database = cls(path, what, error)
        database._bound = (con, writable)
        return database

    def _active(self) -> tuple[duckdb.DuckDBPyConnection, bool] | None:
        return self._bound or getattr(self._local, "active", None)

    @contextlib.contextmanager
    def operation(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        active = self._active()
        if active is not None:
            con, writable = active
            if write and not writable:
                raise self.error(f"{self.what} {self.path}: cannot write inside a read-only operation")
            yield con
            return
        con = connect(self.path, not write, self.what, self.error, self.timeout)
        self._local.active = (con, write)
        try:
            yield con
        finally:
            self._local.active = None
            con.close()

    @contextlib.contextmanager
    def using(self, con: duckdb.DuckDBPyConnection, writable: bool) -> Iterator[None]:
        """Run this thread's operations on `con` (which the caller keeps and closes)."""
        self._local.active = (con, writable)
        try:
            yield
        finally:
            self._local.active = None

    @property
    def current(self) -> duckdb.DuckDBPyConnection:
        """The connection of the operation in progress."""
        return self._in_progress()[0]

    @property
    def writable(self) -> bool:
        """Whether the operation in progress may write."""
        return self._in_progress()[1]

    def _in_progress(self) -> tuple[duckdb.DuckDBPyConnection, bool]:
        active = self._active()
        if active is None:
            raise self.error(f"{self.what} {self.path}: no operation in progress")
        return active


class HeldConnection:
    """A connection a long job keeps between its steps, given up (`close`) whenever another process
    waits for the file (`wanted`) and opened again, in turn, by the next `connection()`."""

    def __init__(
        self,
        path: Path,
        read_only: bool,
        what: str,
        error: type[MinerError],
        timeout: float | None = None,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self.what = what
        self.error = error
        self.timeout = timeout
        self._con: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> HeldConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self.path, self.read_only, self.what, self.error, self.timeout)
        return self._con

    def wanted(self) -> bool:
        """Whether another process waits for the file this job holds (give it up at the next step)."""
        return self._con is not None and someone_waiting(self.path)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


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

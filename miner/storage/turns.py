"""Taking turns at a DuckDB file: a process that waits for the file queues at a turnstile.

DuckDB tries its file lock once and fails, so a process that meets the lock can only try again
later, and a job that closes the file between its steps and opens it again at once would win nearly
every race against it. The turnstile is ``<file>.queue``, an empty file beside the database (created
on first use): a process stands in it (an exclusive `flock`) from the moment it asks for the file
until DuckDB lets it in, so one process waits at the head of the queue and the others wait behind
it; and a job that keeps the file between its steps gives it up whenever someone stands there
(`someone_waiting`), then queues for it again. The kernel drops a flock when its process dies, so a
crash leaves nothing to clean up. Where the turnstile cannot be created (a read-only folder, or a
system without `flock`), processes simply retry.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

FIRST_LOOK = 0.001  # seconds between looks at the turnstile (a flock attempt costs microseconds),
MAX_LOOK = 0.02  # growing to this while the wait goes on


def turnstile_path(database: Path) -> Path:
    return database.with_name(database.name + ".queue")


def _open_turnstile(database: Path, create: bool) -> int | None:
    if fcntl is None:
        return None
    path = turnstile_path(database)
    try:
        return os.open(path, os.O_RDONLY | (os.O_CREAT if create else 0), 0o666)
    except OSError:
        if not create:
            return None
        with contextlib.suppress(OSError):
            return os.open(path, os.O_RDONLY)
        return None


@contextlib.contextmanager
def in_turn(database: Path, deadline: float) -> Iterator[None]:
    """Stand in the turnstile of `database` (waiting behind others until `deadline`, a
    `time.monotonic()` value) for the duration of the block; past the deadline, go on without it."""
    handle = _open_turnstile(database, create=True)
    if handle is None:
        yield
        return
    try:
        look = FIRST_LOOK
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(look)
                look = min(1.5 * look, MAX_LOOK)
        yield
    finally:
        os.close(handle)  # releases the flock


def someone_waiting(database: Path) -> bool:
    """Whether another process (or thread) stands in the turnstile of `database`."""
    handle = _open_turnstile(database, create=False)
    if handle is None:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False

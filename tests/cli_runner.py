"""Run the `miner` console entry point in this process and capture what it prints."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from miner.app.cli import main


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def miner(*args: str, cwd: Path | None = None) -> Done:
    """Run the console entry point in this process, as `miner ARGS` would in `cwd`."""
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            old_argv = sys.argv
            sys.argv = ["miner", *args]
            try:
                main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            finally:
                sys.argv = old_argv
    finally:
        os.chdir(previous)
    return Done(code, out.getvalue(), err.getvalue())


def assert_one_line_error(done: Done, fragment: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert fragment in lines[0], lines[0]

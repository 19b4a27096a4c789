"""Files the commands write: long (date, instrument, value) tables as Parquet or CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from miner.errors import DataError

TABLE_SUFFIXES = (".parquet", ".csv")


def check_output(output: Path) -> None:
    """A DataError when `output` cannot be written: checked (by opening it for appending, which
    changes nothing) before any work is done."""
    if output.suffix not in TABLE_SUFFIXES:
        raise DataError(f"{output}: --output must end in .parquet or .csv")
    if output.is_dir():
        raise DataError(f"{output}: --output is a folder; name a file in it")
    folder = output.parent
    if not folder.is_dir():
        missing = "does not exist" if not folder.exists() else "is not a folder"
        raise DataError(f"{output}: --output folder {folder} {missing}")
    existed = output.exists()
    try:
        with output.open("ab"):
            pass
    except OSError as exc:
        raise DataError(f"{output}: --output cannot be written: {exc.strerror}") from None
    if not existed:
        output.unlink()


def write_table(frame: pd.DataFrame, output: Path) -> None:
    """Write `frame` to `output` (.parquet or .csv), without its index."""
    check_output(output)
    try:
        if output.suffix == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            frame.to_csv(output, index=False)
    except OSError as exc:
        raise DataError(f"{output}: cannot write it: {exc.strerror or exc}") from None

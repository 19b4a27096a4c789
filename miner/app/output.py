"""Files the commands write: long (date, instrument, value) tables as Parquet or CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from miner.errors import DataError

TABLE_SUFFIXES = (".parquet", ".csv")


def write_table(frame: pd.DataFrame, output: Path) -> None:
    """Write `frame` to `output` (.parquet or .csv), without its index."""
    if output.suffix == ".parquet":
        frame.to_parquet(output, index=False)
    elif output.suffix == ".csv":
        frame.to_csv(output, index=False)
    else:
        raise DataError(f"{output}: --output must end in .parquet or .csv")

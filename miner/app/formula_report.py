"""`miner eval`: one formula on daily bars, its values written long, its metrics summarised."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from evaluation import factor_summary
from evaluation.labels import DEFAULT_HORIZONS
from miner.app.output import check_output, write_table
from miner.errors import DataError
from miner.lang import canonical, evaluate, reads_intraday
from miner.market import MarketData
from miner.market.ingest import read_bar_file
from miner.market.rules import label_mask
from miner.market.store import load_market


@dataclass(frozen=True)
class FormulaReport:
    formula: str  # canonical
    summary: dict
    written: int  # values written to the output file (0 without one)


def evaluate_formula(formula: str, data: Path, output: Path | None, horizons: str | None) -> FormulaReport:
    """Evaluate `formula` on the bars at `data`, write its values to `output` when given and
    summarise it against forward returns at `horizons` ("1,5,10,20"; default `DEFAULT_HORIZONS`),
    NaN where the entry bar is not tradable when the data has trading rules."""
    steps = DEFAULT_HORIZONS if horizons is None else parse_horizons(horizons)
    if output is not None:
        check_output(output)
    market = read_market(data, minute=reads_intraday(formula))
    if max(steps) + 1 >= len(market.dates):
        raise DataError(
            f"--horizons {max(steps)}: {data} has {len(market.dates)} dates, too few for a label "
            "that many dates ahead"
        )
    values = evaluate(formula, market)
    written = 0
    if output is not None:
        written = write_long(values, market, output)
    summary = factor_summary(
        values, market.fields["close"], horizons=steps, tradable=label_mask(market, "auto")
    )
    return FormulaReport(canonical(formula), summary, written)


def parse_horizons(text: str) -> tuple[int, ...]:
    """`"1,5,10"` -> (1, 5, 10); a DataError naming the option otherwise."""
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        steps = ()
    if not steps or min(steps) < 1:
        raise DataError(
            f"--horizons {text!r}: expected positive whole numbers separated by commas, e.g. 1,5,10"
        )
    return steps


def read_market(path: Path, minute: bool = False) -> MarketData:
    """MarketData from a market store (.duckdb; with its minute bars when `minute`) or a long
    daily-bar file (.parquet / .csv)."""
    if path.suffix == ".duckdb":
        if not path.exists():
            raise DataError(f"{path}: no such file")
        return load_market(path, minute=minute)
    return MarketData.from_frame(read_bar_file(path), source=str(path))


def write_long(values: np.ndarray, market: MarketData, output: Path) -> int:
    """Write a (T, N) panel as a long (date, instrument, value) table, dropping NaN."""
    rows, cols = np.nonzero(np.isfinite(values))
    frame = pd.DataFrame(
        {"date": market.dates[rows], "instrument": market.instruments[cols], "value": values[rows, cols]}
    )
    write_table(frame, output)
    return len(frame)


def summary_table(report: FormulaReport) -> Table:
    table = Table(title=report.formula, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.summary.items():
        if isinstance(value, (int, float, np.floating)):
            table.add_row(key, f"{value:.4f}")
    return table

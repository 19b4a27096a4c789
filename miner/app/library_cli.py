"""`miner library ...`: list, show, values, update, check, export and register factors.

Mounted by the main CLI with ``app.add_typer(library_app, name="library")``. Commands raise
`MinerError` subclasses for user errors; the main entry point prints them as one line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from miner.errors import LibraryError
from miner.library import DEFAULT_MONITOR_WINDOW, DEFAULT_PATH

if TYPE_CHECKING:
    import pandas as pd

    from miner.library.library import FactorLibrary

library_app = typer.Typer(
    help="The DuckDB factor library: register factors, read their values, keep them current.",
    no_args_is_help=True,
)

LibraryOption = Annotated[Path, typer.Option("--library", help="The factor library (a DuckDB file).")]
MarketOption = Annotated[
    Path | None,
    typer.Option("--market", help="Read market data from this store instead of the library file."),
]


def open_library(path: Path, read_only: bool, market: Path | None = None) -> FactorLibrary:
    """The library at `path` (imported here: the command line starts without the kernels)."""
    from miner.library.library import FactorLibrary

    return FactorLibrary(path, read_only=read_only, market_store=market)


def _console() -> Console:
    """A console bound to the current stdout and terminal width (created per command); like the
    others it reads no markup (`miner.app.console`)."""
    return Console(markup=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


@library_app.command("list")
def list_command(library: LibraryOption = Path(DEFAULT_PATH), market: MarketOption = None) -> None:
    """List the registered factors with their status and computed range."""
    with open_library(library, read_only=True, market=market) as lib:
        factors = lib.list_factors()
    table = Table(title=f"factors in {library}")
    for column in ("factor_id", "category", "status", "computed_through", "lookback", "formula"):
        table.add_column(column, overflow="fold")
    for row in factors.itertuples(index=False):
        table.add_row(
            row.factor_id,
            row.category,
            row.status,
            _cell(row.computed_through),
            str(row.lookback),
            row.formula,
        )
    _console().print(table)


@library_app.command("show")
def show_command(
    factor_id: Annotated[str, typer.Argument(help="The factor id.")],
    window: Annotated[
        int, typer.Option(help="Rolling window of the monitor, in dates.")
    ] = DEFAULT_MONITOR_WINDOW,
    library: LibraryOption = Path(DEFAULT_PATH),
    market: MarketOption = None,
) -> None:
    """Show a factor's metadata and its monitor (IC, rank IC, ICIR, turnover, coverage)."""
    with open_library(library, read_only=True, market=market) as lib:
        info = lib.info(factor_id)
        frame = lib.monitor(factor_id, window=window)
    console = _console()
    details = Table(title=f"factor {factor_id}", show_header=False)
    details.add_column("key")
    details.add_column("value", overflow="fold")
    for key, value in info.items():
        details.add_row(key, _cell(value))
    console.print(details)
    console.print(monitor_table(frame, window))


def monitor_table(frame: pd.DataFrame, window: int) -> Table:
    """Latest rolling values and whole-period figures of a `FactorLibrary.monitor` frame."""
    table = Table(title=f"monitor (rolling {window} dates)")
    table.add_column("metric")
    table.add_column("latest rolling", justify="right")
    table.add_column("whole period", justify="right")
    rows = {
        "IC": ("ic_mean", _mean(frame["ic"])),
        "rank IC": ("rank_ic_mean", _mean(frame["rank_ic"])),
        "ICIR": ("icir", _ir(frame["ic"])),
        "rank ICIR": ("rank_icir", _ir(frame["rank_ic"])),
        "turnover": ("turnover_mean", _mean(frame["turnover"])),
        "coverage": ("coverage_mean", _mean(frame["coverage"])),
    }
    for name, (column, whole) in rows.items():
        table.add_row(name, _cell(_last_finite(frame[column])), _cell(whole))
    return table


def _last_finite(series: pd.Series) -> float:
    finite = series.dropna()
    return float(finite.iloc[-1]) if len(finite) else math.nan


def _mean(series: pd.Series) -> float:
    finite = series.dropna()
    return float(finite.mean()) if len(finite) else math.nan


def _ir(series: pd.Series) -> float:
    finite = series.dropna()
    if len(finite) < 2:
        return math.nan
    std = float(finite.std())
    return float(finite.mean()) / std if std > 0 else math.nan


@library_app.command("values")
def values_command(
    factor_id: Annotated[str, typer.Argument(help="The factor id.")],
    start: Annotated[str | None, typer.Option(help="First date (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date (inclusive).")] = None,
    instruments: Annotated[str | None, typer.Option(help="Comma-separated instruments.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write (date, instrument, value) to .parquet or .csv.")
    ] = None,
    rows: Annotated[int, typer.Option(help="Dates to print when not writing a file.")] = 10,
    library: LibraryOption = Path(DEFAULT_PATH),
    market: MarketOption = None,
) -> None:
    """Print a factor's latest values, or write them (long form) to a file."""
    from miner.app.output import check_output, write_table

    if output is not None:
        check_output(output)
    chosen = (
        None if instruments is None else [name.strip() for name in instruments.split(",") if name.strip()]
    )
    with open_library(library, read_only=True, market=market) as lib:
        if output is not None:
            frame = lib.get_factor_long(factor_id, start, end, chosen)
            write_table(frame, output)
            _console().print(f"wrote {len(frame):,} values of {factor_id} to {output}")
            return
        wide = lib.get_factor(factor_id, start, end, chosen)
    _console().print(wide_table(factor_id, wide.tail(rows)))


def wide_table(factor_id: str, frame: pd.DataFrame, max_columns: int = 8) -> Table:
    """A (dates x instruments) frame as a rich table, the first `max_columns` instruments shown."""
    shown = frame.columns[:max_columns]
    table = Table(title=f"{factor_id}: {frame.shape[0]} dates x {frame.shape[1]} instruments")
    table.add_column("date")
    for name in shown:
        table.add_column(str(name), justify="right")
    for day, values in zip(frame.index, frame[shown].to_numpy()):
        table.add_row(str(day.date()), *(_cell(float(v)) for v in values))
    return table


@library_app.command("update")
def update_command(
    factor_ids: Annotated[list[str] | None, typer.Argument(help="Factors to update (default: all).")] = None,
    library: LibraryOption = Path(DEFAULT_PATH),
    market: MarketOption = None,
) -> None:
    """Compute the new (or corrected) dates of the factors, dependencies first."""
    with open_library(library, read_only=False, market=market) as lib:
        results = lib.update(factor_ids or None)
    console = _console()
    if not results:
        console.print("every factor is up to date")
        return
    table = Table(title=f"updated {len(results)} factor(s)")
    for column in ("factor_id", "from", "through", "values"):
        table.add_column(column, justify="right" if column == "values" else "left")
    for result in results:
        table.add_row(result.factor_id, str(result.first_date), str(result.last_date), f"{result.values:,}")
    console.print(table)


@library_app.command("check")
def check_command(
    sample_dates: Annotated[int, typer.Option(help="Dates per factor recomputed and compared.")] = 5,
    library: LibraryOption = Path(DEFAULT_PATH),
    market: MarketOption = None,
) -> None:
    """Verify the library: unique keys, ranges, metadata, values equal to a recomputation."""
    with open_library(library, read_only=True, market=market) as lib:
        report = lib.check(sample_dates=sample_dates)
    console = _console()
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    for problem in report.problems:
        console.print(Text.assemble(("problem:", "red"), f" {problem}"), highlight=False)
    if report.problems:
        raise LibraryError(f"factor library {library}: {len(report.problems)} problem(s) found")
    console.print(
        f"ok: {report.factors} factor(s), {report.sampled_dates} sampled date(s) recomputed and equal"
    )


@library_app.command("export")
def export_command(
    path: Annotated[Path, typer.Argument(help="A .parquet file, or a directory (one file per factor).")],
    factor: Annotated[
        list[str] | None, typer.Option("--factor", help="Export this factor (repeatable).")
    ] = None,
    library: LibraryOption = Path(DEFAULT_PATH),
) -> None:
    """Export factor values to Parquet."""
    with open_library(library, read_only=True) as lib:
        written = lib.export(path, factor or None)
    console = _console()
    for file in written:
        console.print(f"wrote {file}")


@library_app.command("register")
def register_command(
    factor_id: Annotated[str | None, typer.Argument(help="The new factor's id (an identifier).")] = None,
    formula: Annotated[str | None, typer.Argument(help="Its formula, e.g. 'rank(delta(close, 5))'.")] = None,
    description: Annotated[str, typer.Option(help="What the factor means.")] = "",
    category: Annotated[str, typer.Option(help="A category, e.g. momentum.")] = "",
    source: Annotated[str | None, typer.Option(help="Where it comes from, e.g. an MLflow run id.")] = None,
    zoo: Annotated[
        str | None,
        typer.Option("--zoo", help="Register every factor of this zoo set instead (e.g. alpha158)."),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="With --zoo: put this before each id (default: the set's name and _).")
    ] = None,
    library: LibraryOption = Path(DEFAULT_PATH),
    market: MarketOption = None,
) -> None:
    """Register a factor (or a zoo set's factors) and compute the full history, each all or nothing."""
    if zoo is not None:
        if factor_id is not None or formula is not None:
            raise LibraryError("give either FACTOR_ID FORMULA or --zoo SET, not both")
        from miner.zoo import default_prefix

        register_zoo(zoo, default_prefix(zoo) if prefix is None else prefix, library, market)
        return
    if factor_id is None or formula is None:
        raise LibraryError("register needs FACTOR_ID and FORMULA (or --zoo SET)")
    if prefix is not None:
        raise LibraryError("--prefix is for --zoo SET")
    with open_library(library, read_only=False, market=market) as lib:
        record = lib.register_factor(
            factor_id, formula, description=description, category=category, source=source
        )
        count = lib.info(factor_id)["values"]
    _console().print(
        f"registered {record.factor_id} = {record.canonical}: "
        f"{count:,} values through {record.computed_through}"
    )


def register_zoo(name: str, prefix: str, library: Path, market: Path | None) -> None:
    """Register every factor of zoo set `name` under `prefix` + its id, one transaction each.

    A factor whose formula is already registered (under any id) is skipped with a message; an id
    already taken by another formula stops the command before anything is written.
    """
    from miner.lang import canonical
    from miner.zoo import load_zoo, prefixed

    factors = prefixed(load_zoo(name), prefix)
    console = _console()
    with open_library(library, read_only=False, market=market) as lib:
        existing = lib.list_factors()
        registered = {canonical(f): i for i, f in zip(existing["factor_id"], existing["formula"])}
        taken = dict(zip(existing["factor_id"], existing["formula"]))
        for factor in factors:
            if factor.id in taken and canonical(taken[factor.id]) != canonical(factor.formula):
                raise LibraryError(
                    f"zoo set {name!r}: id {factor.id!r} is already registered with another formula "
                    f"({taken[factor.id]}); choose another --prefix"
                )
        added = 0
        for factor in factors:
            same = registered.get(canonical(factor.formula))
            if same is not None:
                console.print(
                    f"skipped {factor.id}: formula already registered as {same!r}",
                    highlight=False,
                    soft_wrap=True,
                )
                continue
            record = lib.register_factor(
                factor.id, factor.formula, factor.description, factor.category, factor.source
            )
            registered[record.canonical] = record.factor_id
            added += 1
            console.print(
                f"registered {record.factor_id} = {record.canonical}", highlight=False, soft_wrap=True
            )
    console.print(f"zoo set {name}: {added} registered, {len(factors) - added} skipped")

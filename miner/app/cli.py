"""The `miner` command line.

Errors meant for people (`MinerError`) print one line and exit 1; `--debug` shows the traceback.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from miner.app.library_cli import library_app
from miner.config import load_config
from miner.errors import DataError, MinerError

app = typer.Typer(
    name="miner",
    help="Genetic-programming factor mining: evaluate formulas, mine factors, keep a library.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Import market data into a DuckDB market store.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(library_app, name="library")

console = Console()
err_console = Console(stderr=True)

DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]


@app.callback()
def _root(debug: DebugOption = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("mlflow", "alembic"):
        logging.getLogger(chatty).setLevel(level)


@app.command("operators")
def operators_command(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    markdown: Annotated[bool, typer.Option(help="Print a Markdown table (for the README).")] = False,
) -> None:
    """Print the operator reference: name, signature, family, lookback and meaning."""
    from miner.app.reference import operator_rows, operator_table_markdown

    rows = [r for r in operator_rows() if family is None or r["family"] == family]
    if markdown:
        console.print(operator_table_markdown(rows), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title="factor-miner operators")
    for column in ("signature", "family", "lookback", "meaning"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["signature"], row["family"], row["lookback"], row["doc"])
    console.print(table)


@app.command("eval")
def eval_command(
    formula: Annotated[str, typer.Argument(help="The formula, e.g. 'rank(delta(close, 5)) * -1'.")],
    data: Annotated[Path, typer.Option("--data", help="Daily bars: Parquet/CSV (long) or a .duckdb store.")],
    output: Annotated[
        Path | None, typer.Option("--output", help="Write values here (.parquet or .csv).")
    ] = None,
    horizons: Annotated[str, typer.Option(help="Forward-return horizons for the metrics.")] = "1,5,10,20",
    debug: DebugOption = False,
) -> None:
    """Evaluate one formula on daily bars, write its values and print its metrics."""
    from evaluation import factor_summary
    from miner.lang import canonical, evaluate

    market = read_market(data)
    values = evaluate(formula, market)
    if output is not None:
        write_long(values, market, output)
        console.print(f"wrote {int(np.isfinite(values).sum()):,} values to {output}")
    steps = tuple(int(h) for h in horizons.split(","))
    summary = factor_summary(values, market.fields["close"], horizons=steps)
    console.print(summary_table(canonical(formula), summary))


@app.command("mine")
def mine_command(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="An experiment YAML file.")],
    resume: Annotated[bool, typer.Option(help="Continue from the run's last checkpoint.")] = False,
    n_jobs: Annotated[int | None, typer.Option("--n-jobs", min=1, help="Worker processes.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the config's seed.")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
    debug: DebugOption = False,
) -> None:
    """Mine factors as the config says; log the run to MLflow and print the survivors."""
    from miner.app.mining import mine

    config = with_overrides(load_config(config_path), n_jobs, tracking_uri, seed, no_tracking)
    outcome = mine(config, resume=resume, console=console)
    for table in survivor_tables(outcome.result):
        console.print(table)
    if outcome.run_id:
        console.print(
            f"MLflow run [bold]{outcome.run_id}[/] in experiment '{config.name}' at {config.tracking.uri}\n"
            f"browse: mlflow ui --backend-store-uri {config.tracking.uri}\n"
            f"promote: miner promote {outcome.run_id} --all --library factors.duckdb"
        )


@app.command("promote")
def promote_command(
    run_id: Annotated[str, typer.Argument(help="The MLflow run id of a mining run.")],
    factor: Annotated[
        list[str] | None, typer.Option("--factor", help="A survivor to promote (repeatable).")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Promote every survivor of the run.")] = False,
    library: Annotated[Path, typer.Option(help="The factor library (DuckDB file).")] = Path("factors.duckdb"),
    store: Annotated[Path | None, typer.Option(help="Read market data from this store instead.")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = "sqlite:///mlflow.db",
    debug: DebugOption = False,
) -> None:
    """Register a run's survivors in the factor library and compute their history."""
    from miner.app.promote import promote

    for outcome in promote(run_id, tracking_uri, library, factor, everything, store):
        console.print(outcome.message, highlight=False)


def with_overrides(config, n_jobs, tracking_uri, seed, no_tracking):
    """The config with the command line's settings applied."""
    parallel = config.parallel if n_jobs is None else config.parallel.model_copy(update={"n_jobs": n_jobs})
    tracking = config.tracking.model_copy(
        update={
            k: v
            for k, v in (("uri", tracking_uri), ("enabled", False if no_tracking else None))
            if v is not None
        }
    )
    update = {"parallel": parallel, "tracking": tracking}
    if seed is not None:
        update["seed"] = seed
    return config.model_copy(update=update)


def survivor_tables(result) -> tuple[Table, Table]:
    """The survivors' metrics, then their formulas: two narrow tables read well in 80 columns."""
    metrics = Table(
        title=f"{len(result.survivors)} survivors (admitted on valid; test is reported only)",
        box=box.SIMPLE_HEAD,
    )
    metrics.add_column("name")
    for header in (
        "train\nrank IC",
        "valid\nrank IC",
        "test\nrank IC",
        "valid\nICIR",
        "valid\nturnover",
        "half-life\n(days)",
    ):
        metrics.add_column(header, justify="right", no_wrap=True)
    formulas = Table(box=box.SIMPLE_HEAD)
    formulas.add_column("name")
    formulas.add_column("formula", overflow="fold")
    for s in result.survivors:
        seg = s.segments
        metrics.add_row(
            s.name,
            f"{seg['train'].rank_ic:+.4f}",
            f"{seg['valid'].rank_ic:+.4f}",
            f"{seg['test'].rank_ic:+.4f}",
            f"{seg['valid'].icir:+.3f}",
            f"{seg['valid'].turnover:.3f}",
            f"{s.half_life:.1f}" if math.isfinite(s.half_life) else "> max h",
        )
        formulas.add_row(s.name, s.formula)
    return metrics, formulas


@data_app.command("import")
def data_import_command(
    path: Annotated[Path, typer.Argument(help="A CSV or Parquet file of daily or minute bars.")],
    kind: Annotated[str, typer.Option(help="daily or minute.")] = "daily",
    store: Annotated[Path, typer.Option(help="The DuckDB market store.")] = Path("market.duckdb"),
    column: Annotated[
        list[str] | None, typer.Option("--column", help="Map a file column: SOURCE=TARGET, repeatable.")
    ] = None,
    drop_suspect: Annotated[
        bool, typer.Option(help="Drop rows flagged by a boolean 'suspect' column.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Import (upsert) bars into the market store; bad input leaves the store unchanged."""
    from miner.market.store import import_file

    mapping = parse_column_map(column or [])
    report = import_file(path, kind=kind, store=store, column_map=mapping, drop_suspect=drop_suspect)
    console.print(str(report))


def parse_column_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise DataError(f"--column {item!r}: expected SOURCE=TARGET, e.g. --column ticker=instrument")
        mapping[source] = target
    return mapping


def read_market(path: Path):
    """MarketData from a market store (.duckdb) or a long daily-bar file (.parquet / .csv)."""
    from miner.market import MarketData
    from miner.market.ingest import read_bar_file
    from miner.market.store import load_market

    if path.suffix == ".duckdb":
        if not path.exists():
            raise DataError(f"{path}: no such file")
        return load_market(path)
    return MarketData.from_frame(read_bar_file(path), source=str(path))


def write_long(values: np.ndarray, market, output: Path) -> None:
    """Write a (T, N) panel as a long (date, instrument, value) table, dropping NaN."""
    rows, cols = np.nonzero(np.isfinite(values))
    frame = pd.DataFrame(
        {"date": market.dates[rows], "instrument": market.instruments[cols], "value": values[rows, cols]}
    )
    if output.suffix == ".csv":
        frame.to_csv(output, index=False)
    elif output.suffix == ".parquet":
        frame.to_parquet(output, index=False)
    else:
        raise DataError(f"{output}: --output must end in .parquet or .csv")


def summary_table(formula: str, summary: dict) -> Table:
    table = Table(title=formula, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, (int, float, np.floating)):
            table.add_row(key, f"{value:.4f}")
    return table


def main() -> None:
    """Console entry point: one line per user error, tracebacks only with --debug."""
    try:
        app()
    except MinerError as exc:
        if "--debug" in sys.argv:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)

"""The `miner` command line.

Errors meant for people (`MinerError`) print one line and exit 1; `--debug` shows the traceback.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from miner.app.combine_cli import combine_command
from miner.app.console import DebugOption, console, err_console
from miner.app.data_cli import data_app
from miner.app.library_cli import library_app
from miner.app.zoo_cli import zoo_app
from miner.errors import MinerError

if TYPE_CHECKING:
    from miner.app.baselines import BaselineReport
    from miner.config import ExperimentConfig
    from miner.search.results import MiningResult

app = typer.Typer(
    name="miner",
    help="Genetic-programming factor mining: evaluate formulas, mine factors, keep a library.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
app.add_typer(library_app, name="library")
app.add_typer(zoo_app, name="zoo")
app.command("combine")(combine_command)


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
    horizons: Annotated[
        str | None, typer.Option(help="Forward-return horizons for the metrics, e.g. 1,5,10,20.")
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Evaluate one formula on daily bars, write its values and print its metrics."""
    from miner.app.formula_report import evaluate_formula, summary_table

    report = evaluate_formula(formula, data, output, horizons)
    if output is not None:
        console.print(f"wrote {report.written:,} values to {output}")
    console.print(summary_table(report))


@app.command("mine")
def mine_command(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="An experiment YAML file.")],
    resume: Annotated[bool, typer.Option(help="Continue from the run's last checkpoint.")] = False,
    n_jobs: Annotated[int | None, typer.Option("--n-jobs", min=1, help="Worker processes.")] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI (default: the config's, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the config's seed.")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
    debug: DebugOption = False,
) -> None:
    """Mine factors as the config says; log the run to MLflow and print the survivors."""
    from miner.app.mining import mine
    from miner.config import load_config

    config = with_overrides(load_config(config_path), n_jobs, tracking_uri, seed, no_tracking)
    outcome = mine(config, resume=resume, console=console)
    console.print(survivor_table(outcome.result))
    for survivor in outcome.result.survivors:  # whole formulas, one per line, to copy from any width
        console.print(
            f"  {survivor.name}   {survivor.formula}", soft_wrap=True, markup=False, highlight=False
        )
    print_baselines(outcome.baselines)
    if outcome.run_id:
        uri = outcome.tracking_uri
        browse = (
            uri if uri and uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}"
        )
        console.print(
            f"MLflow run {outcome.run_id} in experiment '{config.name}' at {uri}\n"
            f"browse: {browse}\n"
            f"promote: miner promote {outcome.run_id} --all --library factors.duckdb",
            soft_wrap=True,  # URIs and commands stay whole, to copy
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
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Register a run's survivors in the factor library and compute their history."""
    from miner.app.promote import promote

    for outcome in promote(run_id, tracking_uri, library, factor, everything, store):
        console.print(outcome.message, highlight=False)


def print_baselines(report: BaselineReport) -> None:
    from miner.app.baselines import baseline_table, verdict

    console.print(baseline_table(report))
    line = verdict(report)
    if line:
        console.print(line, highlight=False)


def with_overrides(
    config: ExperimentConfig,
    n_jobs: int | None,
    tracking_uri: str | None,
    seed: int | None,
    no_tracking: bool,
) -> ExperimentConfig:
    """The config with the command line's settings applied."""
    parallel = config.parallel if n_jobs is None else config.parallel.model_copy(update={"n_jobs": n_jobs})
    tracking = config.tracking.model_copy(
        update={
            k: v
            for k, v in (("uri", tracking_uri), ("enabled", False if no_tracking else None))
            if v is not None
        }
    )
    update: dict[str, object] = {"parallel": parallel, "tracking": tracking}
    if seed is not None:
        update["seed"] = seed
    return config.model_copy(update=update)


def survivor_table(result: MiningResult) -> Table:
    """The survivors' metrics: a narrow table that reads well in 80 columns (formulas follow it)."""
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
    return metrics


def main() -> None:
    """Console entry point: one line per user error, tracebacks only with --debug."""
    try:
        app()
    except MinerError as exc:
        if "--debug" in sys.argv:
            raise
        err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False, soft_wrap=True)
        sys.exit(1)

"""`miner zoo ...`: list the shipped formula sets and report their factors on an experiment's splits.

Mounted by the main CLI with ``app.add_typer(zoo_app, name="zoo")``; the work is imported inside the
commands so that `miner --help` stays light.
"""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from miner.app.console import DebugOption, console

if TYPE_CHECKING:
    import pandas as pd

    from miner.zoo import ZooFactor

zoo_app = typer.Typer(
    help="The factor zoo: classic formula sets (alpha158, alpha101, classic) shipped with factor-miner.",
    no_args_is_help=True,
)

WIDE = 100  # console columns that fit every segment's turnover in the report table
SetArgument = Annotated[str, typer.Argument(metavar="SET", help="A zoo set, e.g. alpha158.")]


class ListFormat(enum.StrEnum):
    table = "table"
    tsv = "tsv"


def set_factors(name: str | None) -> list[ZooFactor]:
    """The factors of set `name`; without a name, every set's, ids prefixed by the set (alpha158_KMID)."""
    from miner.zoo import default_prefix, load_zoo, prefixed, zoo_names

    if name is not None:
        return load_zoo(name)
    return [factor for each in zoo_names() for factor in prefixed(load_zoo(each), default_prefix(each))]


@zoo_app.command("list")
def list_command(
    name: Annotated[str | None, typer.Argument(metavar="SET", help="A zoo set (default: every set).")] = None,
    output_format: Annotated[
        ListFormat, typer.Option("--format", help="table, or tsv: one id<TAB>category<TAB>formula line each.")
    ] = ListFormat.table,
    debug: DebugOption = False,
) -> None:
    """List a set's factors (or every set's): id, category and formula."""
    factors = set_factors(name)
    if output_format is ListFormat.tsv:
        typer.echo("".join(f"{f.id}\t{f.category}\t{f.formula}\n" for f in factors), nl=False)
        return
    table = Table(title=f"zoo set {name}" if name else "the factor zoo", box=box.SIMPLE_HEAD)
    for column in ("id", "category", "formula"):
        table.add_column(column, overflow="fold")
    for factor in factors:
        table.add_row(factor.id, factor.category, factor.formula)
    console.print(table)


@zoo_app.command("report")
def report_command(
    name: SetArgument,
    data: Annotated[Path, typer.Option("--data", help="Daily bars: a .duckdb market store or a bar file.")],
    config_path: Annotated[
        Path, typer.Option("--config", help="An experiment YAML: its splits, label and min_names are used.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the report here (.parquet or .csv).")
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Each factor's train / valid / test rank IC, ICIR and turnover on the config's splits and label."""
    from miner.app.formula_report import read_market
    from miner.app.output import write_table
    from miner.app.zoo_report import zoo_report
    from miner.config import load_config

    config = load_config(config_path)
    report = zoo_report(set_factors(name), read_market(data), config)
    console.print(report_table(name, report, console.width))
    failed = report[report["error"] != ""]
    for row in failed.itertuples(index=False):
        console.print(f"not evaluated: {row.id}: {row.error}", highlight=False, markup=False)
    if output is not None:
        write_table(report, output)
        console.print(f"wrote {len(report)} factors to {output}")


def report_table(name: str, report: pd.DataFrame, width: int) -> Table:
    """Rank IC and ICIR on each segment and turnover, one row per factor; turnover on valid only
    when fewer than `WIDE` columns are available (the report file has every segment's)."""
    from miner.app.zoo_report import SEGMENTS

    table = Table(
        title=f"zoo set {name} (test is reported only)",
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
        pad_edge=False,
    )
    table.add_column("id", no_wrap=True)
    columns: list[tuple[str, str, str, tuple[str, ...]]] = [
        ("rank_ic", "rank IC", "{:+.4f}", SEGMENTS),
        ("icir", "ICIR", "{:+.3f}", SEGMENTS),
    ]
    columns.append(("turnover", "turnover", "{:.3f}", SEGMENTS if width >= WIDE else ("valid",)))
    keys = [(f"{segment}_{metric}", text) for metric, _, text, segments in columns for segment in segments]
    for _, header, _, segments in columns:
        for segment in segments:
            table.add_column(f"{segment}\n{header}", justify="right", no_wrap=True)
    for row in report.to_dict("records"):
        table.add_row(
            row["id"], *("" if math.isnan(row[key]) else text.format(row[key]) for key, text in keys)
        )
    return table

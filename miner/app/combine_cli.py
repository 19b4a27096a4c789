"""`miner combine`: fit a composite of factors on an experiment's splits and label (mounted by the
main CLI; the work is imported inside the command, so `miner --help` stays light)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from miner.app.console import DebugOption, console

Method = Literal["ew", "icw", "ridge", "lasso"]


def combine_command(
    config_path: Annotated[
        Path, typer.Option("--config", help="An experiment YAML: its data, splits, label and tracking.")
    ],
    method: Annotated[Method, typer.Option(help="ew, icw, ridge or lasso (see the README).")] = "ridge",
    factors: Annotated[
        list[str] | None,
        typer.Option("--factors", help="Library factor ids (repeat the option, or separate by commas)."),
    ] = None,
    category: Annotated[str | None, typer.Option(help="Every library factor of this category.")] = None,
    zoo: Annotated[str | None, typer.Option(help="Every factor of this zoo set (e.g. classic).")] = None,
    library: Annotated[Path, typer.Option(help="The factor library (a DuckDB file).")] = Path(
        "factors.duckdb"
    ),
    register: Annotated[
        str | None, typer.Option(help="Register the composite in the library under this id.")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
    debug: DebugOption = False,
) -> None:
    """Combine factors (fitted on train, penalty chosen on valid) and compare with the best member."""
    from miner.app.cli import with_overrides
    from miner.app.composite import Selection, combine_factors, combine_tables
    from miner.config import load_config

    config = with_overrides(load_config(config_path), None, tracking_uri, None, no_tracking)
    ids = tuple(part.strip() for text in factors or () for part in text.split(",") if part.strip())
    selection = Selection(factor_ids=ids, category=category, zoo=zoo)
    outcome = combine_factors(config, method, selection, library, register)
    for table in combine_tables(outcome):
        console.print(table)
    console.print(f"formula: {outcome.composite.formula}", highlight=False, soft_wrap=True)
    if outcome.run_id:
        console.print(f"MLflow run {outcome.run_id} in experiment '{config.name}'")
    if register is not None:
        console.print(f"registered {register} in {library}")

"""`miner data ...`: import market data into a DuckDB market store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from miner.app.console import DebugOption, console
from miner.errors import DataError

data_app = typer.Typer(help="Import market data into a DuckDB market store.", no_args_is_help=True)


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
    session: Annotated[
        str | None,
        typer.Option(
            help="Minute bars: the session grid, us (09:30-16:00), cn (09:31-11:30,13:01-15:00), "
            "cn_open (09:30 bar kept) or segments like '09:30-11:30,13:00-15:00@Asia/Shanghai'. "
            "Default: the store's, else us. The store records it."
        ),
    ] = None,
    rules: Annotated[
        str | None,
        typer.Option(
            help="Daily bars: trading rules us, cn or cn_locked (price limits and the 'tradable' "
            "field). The store records them."
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Import (upsert) bars into the market store; bad input leaves the store unchanged."""
    from miner.market.store import import_file

    mapping = parse_column_map(column or [])
    report = import_file(
        path,
        kind=kind,
        store=store,
        column_map=mapping,
        drop_suspect=drop_suspect,
        session=session,
        rules=rules,
    )
    console.print(str(report), markup=False, highlight=False, soft_wrap=True)


def parse_column_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise DataError(f"--column {item!r}: expected SOURCE=TARGET, e.g. --column ticker=instrument")
        mapping[source] = target
    return mapping

"""What every command shares: the consoles it prints to and the `--debug` option."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]

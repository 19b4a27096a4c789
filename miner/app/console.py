"""What every command shares: the consoles it prints to and the `--debug` option.

The consoles read no markup: messages carry file names, formulas and hints such as
``pip install 'factor-miner[dask]'`` whose brackets rich would take for markup and drop. Styles
are given as `rich.text.Text` or a `style=` argument instead.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]

"""Import cost of the entry points: `python -X importtime` in fresh interpreters.

Each entry runs `--repeats` times in a new interpreter; the table gives the median import time (the
sum of the top-level imports' cumulative times) next to the interpreter's own start-up imports
(`python -c pass`, the reference measured in the same run), and which heavy packages the entry
loaded. `--root DIR` measures another checkout (e.g. an older commit: entries fall back to the
module names that checkout has).

    python benchmarks/bench_imports.py [--repeats 7] [--root DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = ("numba", "deap", "joblib", "pandas", "duckdb", "mlflow", "scipy")
# An older checkout put pandas and DuckDB in sys.modules unexecuted (importlib's LazyLoader); a
# module counts as loaded here only when it is in sys.modules, so read its time column too.

# label -> statements to try in turn (the first that runs in the measured checkout is used)
ENTRIES = {
    "import miner.config": ["import miner.config"],
    "miner --help": [
        "import sys; sys.argv = ['miner', '--help']; from miner.app.cli import main; main()",
        "import sys; sys.argv = ['miner', '--help']; from miner.cli import main; main()",
    ],
    "import miner (the package)": ["import miner"],
    "miner promote's module": ["import miner.app.promote", "import miner.promote"],
    "a scoring worker's import": ["import miner.search.scoring", "import miner.scoring"],
    "from miner import evaluate": ["from miner import evaluate"],
}


def import_micros(statement: str, root: Path) -> tuple[int, list[str]] | None:
    """Total top-level import time (µs) of one fresh interpreter running `statement`, and the heavy
    packages it loaded; None when the statement fails in this checkout."""
    report = (
        f"import sys as _s; _s.stderr.write('loaded:' + ' '.join(m for m in {HEAVY!r} if m in _s.modules))"
    )
    code = f"try:\n    exec({statement!r})\nexcept SystemExit:\n    pass\n{report}"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=root
    )
    if done.returncode != 0:
        return None
    total = 0
    loaded: list[str] = []
    for line in done.stderr.splitlines():
        if line.startswith("loaded:"):
            loaded = line.removeprefix("loaded:").split()
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith("  "):  # a top-level import (nested ones are indented further)
            total += int(cumulative)
    return total, loaded


def measure(statements: list[str], root: Path, repeats: int) -> tuple[float, list[str]] | None:
    for statement in statements:
        runs = [import_micros(statement, root) for _ in range(repeats)]
        if all(run is not None for run in runs):
            return statistics.median(run[0] for run in runs) / 1000, runs[0][1]  # type: ignore[index]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    baseline = measure(["pass"], args.root, args.repeats)
    assert baseline is not None
    print(f"checkout: {args.root}; interpreter start-up imports: {baseline[0]:.0f} ms\n")
    print("| entry | import time (ms) | vs start-up | heavy packages loaded |")
    print("|---|---:|---:|---|")
    for label, statements in ENTRIES.items():
        result = measure(statements, args.root, args.repeats)
        if result is None:
            print(f"| {label} | n/a | | |")
            continue
        millis, loaded = result
        print(f"| {label} | {millis:.0f} | {millis / baseline[0]:.1f}x | {', '.join(loaded) or 'none'} |")


if __name__ == "__main__":
    main()

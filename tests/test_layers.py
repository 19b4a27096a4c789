"""The architecture, checked mechanically: imports run one way between the layers, and the light
entry points stay light.

Layers, lowest first (a module may import its own sub-package and any lower layer, never a peer or
a higher one): operators < evaluation < miner.errors | miner.lazy < miner.config (the experiment
schema, which the search and the app both read) < miner.storage < miner.market < miner.lang <
miner.zoo (the shipped formula sets) < miner.search | miner.library (peers) < miner.app.
`miner/__init__.py` and `miner/library/__init__.py` name their lazily imported attributes as
strings, not imports, and are the package facades, so they are not checked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {
    "operators": 0,
    "evaluation": 1,
    "miner.errors": 2,
    "miner.lazy": 2,
    "miner.config": 3,
    "miner.storage": 4,
    "miner.market": 5,
    "miner.lang": 6,
    "miner.zoo": 7,
    "miner.search": 8,
    "miner.library": 8,
    "miner.app": 9,
}
FACADES = {"miner/__init__.py", "miner/library/__init__.py"}
FOREIGN_TO_PURE_ARRAYS = ("deap", "duckdb", "mlflow", "pydantic", "yaml", "joblib", "miner")


def unit_of(module: str) -> str | None:
    """The layer unit a dotted module name belongs to (its longest prefix in LAYERS)."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in LAYERS:
            return prefix
    return None


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, including those inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def product_files() -> list[Path]:
    return sorted(
        path
        for package in ("operators", "evaluation", "miner")
        for path in (ROOT / package).rglob("*.py")
        if str(path.relative_to(ROOT)) not in FACADES
    )


def layer_violations() -> list[str]:
    problems = []
    for path in product_files():
        here = unit_of(module_name(path))
        assert here is not None, f"{path} belongs to no layer: add it to LAYERS"
        for line, target in imported_modules(path):
            there = unit_of(target)
            if there is None or there == here:
                continue
            if LAYERS[there] >= LAYERS[here]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {target} ({there})")
    return problems


def test_every_import_runs_down_the_layers() -> None:
    assert layer_violations() == []


def test_the_checker_sees_a_violation() -> None:
    """The rule can fail: a lang module importing the search is reported."""
    fake = ROOT / "miner" / "lang" / "_layer_probe.py"
    fake.write_text("from miner.search.evolution import Miner\n")
    try:
        assert any("miner.lang imports miner.search.evolution" in p for p in layer_violations())
    finally:
        fake.unlink()


@pytest.mark.parametrize("package", ["operators", "evaluation"])
def test_pure_array_packages_import_no_framework(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {target}"
        for path in (ROOT / package).rglob("*.py")
        for line, target in imported_modules(path)
        if target.split(".")[0] in FOREIGN_TO_PURE_ARRAYS
    ]
    assert offenders == []


HEAVY = ("numba", "deap", "joblib", "operators")


@pytest.mark.parametrize(
    "entry, forbidden",
    [
        ("import miner.config", HEAVY),
        ("import miner", HEAVY),
        ("import miner.app.cli", HEAVY),
        ("import miner.app.promote", ("deap", "joblib")),
    ],
)
def test_light_entry_points_do_not_load_kernels_or_the_search(entry: str, forbidden: tuple[str, ...]) -> None:
    code = f"import sys; {entry}; print(' '.join(sorted(m for m in {forbidden!r} if m in sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == ""

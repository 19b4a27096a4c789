"""Bit-for-bit check of formula values between this tree and another git revision.

Evaluates a list of formulas (the held-out file, the `bench_formulas` suite and operator probes,
every zoo formula, and one probe per operator of the elementwise, time-series and cross-sectional
families) on the held-out stooq panel, here and in a worktree of REV (made once under the temp
directory and kept, so that its numba cache stays warm), each in its own subprocess with a fresh
evaluator per formula. Values are compared by a hash of their bytes (equal bytes: the same numbers,
the same NaN positions and the same NaN bits); for the formulas that differ, the differing cells
are counted by value (NaN positions equal) and by bits.

    python benchmarks/check_bits.py --against REV [--data FILE] [--names 1501]

The default panel (319 names) is below the size where the evaluator runs elementwise chains;
`--names 1501` (3.6 M cells) checks the chains too.

Exits non-zero when any formula differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import HELDOUT_FORMULAS, STOOQ_DAILY, heldout_frame, read_formulas

ROOT = Path(__file__).resolve().parents[1]
SOURCE_KEY = "(the tree that miner was imported from)"
PROBE_FIELDS = ("close", "returns", "volume", "open")
PROBE_WINDOWS = (1, 2, 5, 20)
PROBE_LAGS = (0, 1, 5)
PROBE_FAMILIES = ("elementwise", "timeseries", "cross_section")
EXTRA_FORMULAS = (
    "power(volume, 40)",
    "close / (open - open)",
    "log(returns) + sqrt(returns)",
    "inv(returns - returns)",
    "(close - open) / (high - low + 0.001) * volume - 1e308 * volume",
    "where(returns > 0, returns ** 0.5, -1 * returns ** 3)",
    "signed_power(returns, 0.5) + signed_power(volume, 80)",
    "rank(returns * 0)",
)


def operator_probes() -> list[str]:
    """One call of every operator of `PROBE_FAMILIES` per window / lag / field combination."""
    from operators import REGISTRY, Kind

    probes = []
    for spec in REGISTRY.values():
        if spec.family not in PROBE_FAMILIES:
            continue
        for k, (window, lag) in enumerate(zip(PROBE_WINDOWS, (*PROBE_LAGS, PROBE_LAGS[-1]))):
            args = []
            for i, arg in enumerate(spec.args):
                if arg.kind is Kind.SERIES:
                    args.append(PROBE_FIELDS[(i + k) % len(PROBE_FIELDS)])
                elif arg.kind is Kind.WINDOW:
                    args.append(str(window))
                elif arg.kind is Kind.LAG:
                    args.append(str(lag))
                elif arg.kind is Kind.CONST:
                    args.append(str((0.5, 2.0, 3.0, -1.0)[k]))
                else:
                    args = []
                    break
            if args:
                probes.append(f"{spec.name}({', '.join(args)})")
    return probes


def all_formulas() -> list[str]:
    """The formulas to check, without repeats, in a fixed order."""
    from bench_formulas import operator_formulas, suite_formulas

    from miner.zoo import load_zoo, zoo_names

    zoo = [factor.formula for name in zoo_names() for factor in load_zoo(name)]
    found = [
        *read_formulas(HELDOUT_FORMULAS),
        *suite_formulas(),
        *operator_formulas(),
        *EXTRA_FORMULAS,
        *operator_probes(),
        *zoo,
    ]
    return list(dict.fromkeys(found))


def digest(values: np.ndarray) -> str:
    return hashlib.blake2b(
        np.ascontiguousarray(values, dtype=np.float64).tobytes(), digest_size=16
    ).hexdigest()


def dump(data: Path, names: int, formulas: list[str], arrays: Path | None) -> dict[str, str]:
    """Each formula's digest (or its error) with the code importable here; arrays saved on request."""
    import miner
    from miner import evaluate
    from miner.errors import MinerError
    from miner.market import MarketData

    market = MarketData.from_frame(heldout_frame(data, names=names), source=str(data))
    found = {SOURCE_KEY: str(Path(miner.__file__).resolve().parents[1])}
    for i, formula in enumerate(formulas):
        try:
            values = evaluate(formula, market)
        except MinerError as exc:
            found[formula] = f"error: {exc}"
            continue
        found[formula] = digest(values)
        if arrays is not None:
            np.save(arrays / f"{i}.npy", values)
    return found


def reference_tree(revision: str) -> Path:
    """A worktree of `revision` under the temp directory, made on first use and kept."""
    sha = subprocess.run(
        ["git", "rev-parse", revision], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"check_bits_{sha[:12]}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)  # a removed temp dir's entry
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True)
    return tree


def run_dump(tree: Path, data: Path, names: int, formulas: list[str], arrays: Path | None) -> dict[str, str]:
    """`dump` in a subprocess that imports the packages of `tree`."""
    with tempfile.TemporaryDirectory() as scratch:
        listing, result = Path(scratch) / "formulas.json", Path(scratch) / "result.json"
        listing.write_text(json.dumps(formulas))
        command = [sys.executable, __file__, "--dump", str(listing), str(result), "--data", str(data)]
        command += ["--names", str(names)]
        if arrays is not None:
            command += ["--arrays", str(arrays)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(command, cwd=tree, env=env, check=True)
        found = json.loads(result.read_text())
    if found.pop(SOURCE_KEY) != str(tree.resolve()):
        raise RuntimeError(f"the subprocess for {tree} imported miner from elsewhere")
    return found


def differing_cells(ours: np.ndarray, theirs: np.ndarray) -> tuple[int, int]:
    """Cells that differ by value (NaN equal to NaN) and by bits."""
    by_value = ~((ours == theirs) | (np.isnan(ours) & np.isnan(theirs)))
    by_bits = ours.view(np.int64) != theirs.view(np.int64)
    return int(by_value.sum()), int(by_bits.sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", default="main", help="git revision to compare with")
    parser.add_argument("--data", type=Path, default=STOOQ_DAILY)
    parser.add_argument(
        "--names",
        type=int,
        default=319,
        help="instruments in the panel (1501: all, a panel that takes chains)",
    )
    parser.add_argument("--dump", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--arrays", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        listing, result = args.dump
        result.write_text(
            json.dumps(dump(args.data, args.names, json.loads(listing.read_text()), args.arrays))
        )
        return

    formulas = all_formulas()
    reference = reference_tree(args.against)
    ours = run_dump(ROOT, args.data, args.names, formulas, None)
    theirs = run_dump(reference, args.data, args.names, formulas, None)
    differ = [f for f in formulas if ours[f] != theirs[f]]
    errors = sum(value.startswith("error") for value in ours.values())
    print(
        f"{len(formulas)} formulas ({errors} errors in both or either), {len(differ)} differ from {args.against}"
    )
    if differ:
        with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as theirs_dir:
            run_dump(ROOT, args.data, args.names, differ, Path(ours_dir))
            run_dump(reference, args.data, args.names, differ, Path(theirs_dir))
            for i, formula in enumerate(differ):
                mine, other = Path(ours_dir) / f"{i}.npy", Path(theirs_dir) / f"{i}.npy"
                if mine.exists() and other.exists():
                    value, bits = differing_cells(np.load(mine), np.load(other))
                    print(f"  {formula}: {value} cells differ by value, {bits} by bits")
                else:
                    print(f"  {formula}: {ours[formula][:80]} vs {theirs[formula][:80]}")
        sys.exit(1)


if __name__ == "__main__":
    main()

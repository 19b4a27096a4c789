"""Scoring candidates on the train segment, in batches, in whichever process joblib chooses.

The panel reaches worker processes as memory-mapped `.npy` files written once per run, never as
pickles; each worker keeps one `Evaluator` (with its bounded subexpression cache) per panel for
as long as it lives, so batches of a generation, and later generations, share subtrees.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation import metrics
from miner.data import MarketData
from miner.errors import MinerError
from miner.expression import Evaluator

log = logging.getLogger(__name__)

WORST = -1.0e9  # scalar fitness of a candidate that cannot be scored
WORST_MULTI = (-1.0, 1.0e9, 1.0e9)  # (|rank IC|, turnover, size) of such a candidate
MIN_SCORED_DATES = 20


@dataclass(frozen=True)
class ScoringSpec:
    objective: str = "icir"
    parsimony: float = 0.002
    min_names: int = 10
    cache_bytes: int = 512 << 20


@dataclass(frozen=True)
class Score:
    """What the loop learns of one candidate on the train segment."""

    formula: str
    size: int
    fitness: tuple[float, ...]
    rank_ic: float = math.nan
    icir: float = math.nan
    turnover: float = math.nan
    coverage: float = math.nan
    reason: str | None = None  # why it got the worst fitness, when it did

    @property
    def valid(self) -> bool:
        return self.reason is None


def failed(formula: str, size: int, objective: str, reason: str) -> Score:
    fitness = WORST_MULTI if objective == "nsga2" else (WORST,)
    return Score(formula, size, fitness, reason=reason)


@dataclass
class Panel:
    """The train slice of the market, its label and the rows that count, in this process."""

    data: MarketData
    label: np.ndarray
    rows: slice
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"mem:{uuid.uuid4().hex}"

    def save(self, directory: Path) -> MemmapPanel:
        """Write every array once as `.npy`; workers map them read-only."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "dates": [str(d) for d in self.data.dates],
            "instruments": [str(i) for i in self.data.instruments],
            "fields": sorted(self.data.fields),
            "intraday": sorted(self.data.intraday),
            "groups": {k: list(v) for k, v in self.data.groups.items()},
            "rows": [self.rows.start, self.rows.stop],
            "fingerprint": self.data.fingerprint,
        }
        for name, array in self.data.fields.items():
            np.save(directory / f"field.{name}.npy", array)
        for name, array in self.data.intraday.items():
            np.save(directory / f"intraday.{name}.npy", array)
        np.save(directory / "label.npy", self.label)
        (directory / "meta.json").write_text(json.dumps(meta))
        return MemmapPanel(str(directory))


@dataclass(frozen=True)
class MemmapPanel:
    """A picklable handle on a saved `Panel`: only the directory travels to workers."""

    directory: str

    @property
    def key(self) -> str:
        return f"mmap:{self.directory}"

    def load(self) -> Panel:
        root = Path(self.directory)
        meta = json.loads((root / "meta.json").read_text())
        data = MarketData(
            dates=np.array(meta["dates"], dtype="datetime64[D]"),
            instruments=np.array(meta["instruments"], dtype=object),
            fields={n: np.load(root / f"field.{n}.npy", mmap_mode="r") for n in meta["fields"]},
            intraday={n: np.load(root / f"intraday.{n}.npy", mmap_mode="r") for n in meta["intraday"]},
            groups={k: tuple(v) for k, v in meta["groups"].items()},
        )
        label = np.load(root / "label.npy", mmap_mode="r")
        return Panel(data, label, slice(*meta["rows"]), key=self.key)


@dataclass
class _WorkerState:
    panel: Panel
    evaluator: Evaluator
    prepared: object


_WORKERS: dict[str, _WorkerState] = {}


def _state(handle: Panel | MemmapPanel, spec: ScoringSpec) -> _WorkerState:
    state = _WORKERS.get(handle.key)
    if state is None:
        panel = handle if isinstance(handle, Panel) else handle.load()
        prepared = metrics.prepare_label(panel.label, rows=panel.rows)
        _WORKERS.clear()  # one panel per worker at a time: a new run frees the old one
        state = _WorkerState(panel, Evaluator(panel.data, cache_bytes=spec.cache_bytes), prepared)
        _WORKERS[handle.key] = state
    return state


def score_batch(
    handle: Panel | MemmapPanel, batch: list[tuple[str, int]], spec: ScoringSpec
) -> tuple[list[Score], int, int]:
    """Score `(canonical formula, size)` pairs; returns the scores and this batch's cache hits/misses."""
    state = _state(handle, spec)
    cache = state.evaluator.cache
    hits, misses = cache.hits, cache.misses
    scores = [score_one(state, formula, size, spec) for formula, size in batch]
    return scores, cache.hits - hits, cache.misses - misses


def score_one(state: _WorkerState, formula: str, size: int, spec: ScoringSpec) -> Score:
    """Train metrics and fitness of one candidate; any failure becomes the worst fitness."""
    rows = state.panel.rows
    try:
        values = state.evaluator.evaluate(formula)
    except (MinerError, ValueError, FloatingPointError, ZeroDivisionError, MemoryError) as exc:
        return failed(formula, size, spec.objective, f"evaluation failed: {exc}")
    if not np.isfinite(values[rows]).any():
        return failed(formula, size, spec.objective, "all NaN on the train segment")
    series = metrics.rank_ic_fast(values, state.prepared, min_names=spec.min_names)[rows]
    stats = metrics.ic_stats(series)
    if stats["n"] < MIN_SCORED_DATES or not math.isfinite(stats["icir"]):
        return failed(formula, size, spec.objective, f"rank IC defined on only {stats['n']} train dates")
    turnover = metrics.factor_turnover(values, rows=rows)
    coverage = metrics.coverage(values, universe=np.isfinite(state.panel.label), rows=rows)
    if spec.objective == "nsga2":
        fitness = (abs(stats["mean"]), turnover if math.isfinite(turnover) else 1.0, float(size))
    else:
        fitness = (abs(stats["icir"]) - spec.parsimony * size,)
    return Score(formula, size, fitness, stats["mean"], stats["icir"], turnover, coverage)


def temporary_panel_dir() -> Path:
    """A fresh directory for the run's memory maps."""
    return Path(tempfile.mkdtemp(prefix="factor-miner-panel-"))

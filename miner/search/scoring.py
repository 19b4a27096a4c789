"""Scoring candidates on the train segment, in batches, in whichever process joblib chooses.

Each worker keeps one `Evaluator` (with its bounded subexpression cache) per panel for as long as
it lives, so batches of a generation, and later generations, share subtrees. Scores are pure
functions of the formula and the panel, so every backend gives the same scores.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import os
import platform
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from evaluation import metrics
from evaluation.fitness import WORST_FITNESS, Objective
from evaluation.gates import Gates, gate_failure
from miner.errors import MinerError
from miner.lang import Evaluator
from miner.search.niches import behaviour
from miner.search.panels import Float64Fields, MemmapPanel, Panel, PanelHandle

log = logging.getLogger(__name__)

WORST_MULTI = (-1.0, 1.0e9, 1.0e9)  # (|rank IC|, turnover, size) of such a candidate
MIN_SCORED_DATES = 20


@dataclass(frozen=True)
class ScoringSpec:
    """How a candidate is scored on train: the objective (`evaluation.fitness.Objective` kinds or
    ``nsga2``) and its settings, and the degeneracy gates it must pass first (None: none)."""

    objective: str = "icir"
    parsimony: float = 0.002
    min_names: int = 10
    cache_bytes: int = 512 << 20
    gates: Gates | None = None
    hac_lag: int = 0
    blocks: int = 4
    beta: float = 1.0
    behaviour: bool = False  # keep each candidate's `niches.behaviour` (for `gp.niche_correlation`)

    def train_objective(self) -> Objective:
        """The scalar objective (NSGA-II ranks |rank IC| like ``icir`` does on its first axis)."""
        kind = "icir" if self.objective == "nsga2" else self.objective
        return Objective(kind, self.hac_lag, self.blocks, self.beta)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ResidualLabel:
    """The train label with the factor pool's fit taken out, under a key naming the pool's version:
    workers rank it once per version."""

    key: str
    values: np.ndarray


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
    gate: str | None = None  # the degeneracy gate it failed ("coverage", "distinct", "dated")
    behaviour: np.ndarray | None = field(default=None, compare=False, repr=False)  # `niches.behaviour`

    @property
    def valid(self) -> bool:
        return self.reason is None


def failed(formula: str, size: int, objective: str, reason: str, gate: str | None = None) -> Score:
    fitness = WORST_MULTI if objective == "nsga2" else (WORST_FITNESS,)
    return Score(formula, size, fitness, reason=reason, gate=gate)


@dataclass
class _WorkerState:
    panel: Panel
    evaluator: Evaluator
    prepared: metrics.LabelRanks
    universe: np.ndarray  # (T, N) bool: where the label is valid
    residual: tuple[str, metrics.LabelRanks] | None = None  # the last residual label, ranked

    def label_for(self, residual: ResidualLabel | None) -> metrics.LabelRanks:
        """The ranked label candidates are scored against: the train label's, or the residual's."""
        if residual is None:
            return self.prepared
        if self.residual is None or self.residual[0] != residual.key:
            self.residual = (residual.key, metrics.prepare_label(residual.values, rows=self.panel.rows))
        return self.residual[1]


_WORKERS: dict[str, _WorkerState] = {}


def _evaluator(panel: Panel, cache_bytes: int) -> Evaluator:
    """The worker's evaluator; float32 fields are read through `extra`, which the evaluator looks
    names up in first, one upcast read at a time."""
    extra = Float64Fields(panel.float32_fields) if panel.float32_fields else None
    return Evaluator(panel.data, cache_bytes=cache_bytes, extra=extra)


def _state(handle: PanelHandle, spec: ScoringSpec) -> _WorkerState:
    state = _WORKERS.get(handle.key)
    if state is None:
        panel = handle if isinstance(handle, Panel) else handle.load()
        prepared = metrics.prepare_label(panel.label, rows=panel.rows)
        _WORKERS.clear()  # one panel per worker at a time: a new run frees the old one
        if isinstance(handle, MemmapPanel) and multiprocessing.parent_process() is not None:
            _keep_freed_memory()  # a loky worker: a process of this run's own
            _exit_with_parent(handle.directory)
        state = _WorkerState(panel, _evaluator(panel, spec.cache_bytes), prepared, np.isfinite(panel.label))
        _WORKERS[handle.key] = state
        _tolerate_loky_growth(spec.cache_bytes + _nbytes(panel))
    return state


PARENT_CHECK_SECONDS = 0.5
_watched: dict[str, str] = {}  # "panel": the directory of the panel this worker last loaded


def _exit_with_parent(panel_directory: str) -> None:
    """Exit this worker within `PARENT_CHECK_SECONDS` of the death of the process that started it.

    loky's workers notice a dead parent only when they next talk to it, and an idle one waits up
    to its idle timeout (minutes), holding its memory (its cache and the panel's pages). A `kill
    -9` of `miner mine` also skips the run's own clean-up, so the worker that notices removes the
    run's memory-mapped panel files before it exits.
    """
    watching = bool(_watched)
    _watched["panel"] = panel_directory
    if watching:
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        shutil.rmtree(_watched["panel"], ignore_errors=True)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# glibc's mallopt parameters, and the largest mmap threshold it accepts on 64-bit systems
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 << 20


def _keep_freed_memory() -> None:
    """Make this process's allocator keep the memory it frees, for reuse (glibc only).

    Scoring allocates and frees panel-sized arrays all the time. By default glibc maps each such
    block afresh and hands it back on free (or trims the heap), so the next one faults its pages
    in again, a large share of a candidate's cost while a worker's cache fills (benchmarks/README.md).
    With blocks up to 32 MB taken from the heap and the heap never trimmed, freed blocks are
    reused; the worker's memory stays at its peak (its cache plus one candidate's arrays).
    """
    if platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


def _nbytes(panel: Panel) -> int:
    """What a worker holds of a panel: its arrays, and the label twice more (its prepared ranks)."""
    arrays = [*panel.data.fields.values(), *panel.data.intraday.values(), *panel.float32_fields.values()]
    return sum(a.nbytes for a in arrays) + 3 * panel.label.nbytes


LOKY_LEAK_MARGIN = 300 << 20  # loky's own allowance for a worker's growth


def _tolerate_loky_growth(nbytes: int) -> None:
    """Keep a loky worker alive while its cache fills and its mapped panel pages in.

    loky (with psutil installed) restarts a worker whose RSS grew by more than 300 MB after its
    first task, taking it for a leak; a worker on a large panel grows by design, and a restart
    loses its panel and cache. loky has no public setting for this, so this raises its module
    limit in this process by what the worker is meant to hold.
    """
    guard = sys.modules.get("joblib.externals.loky.process_executor")
    limit = getattr(guard, "_MAX_MEMORY_LEAK_SIZE", None)
    if guard is not None and limit is not None:
        vars(guard)["_MAX_MEMORY_LEAK_SIZE"] = max(limit, nbytes + LOKY_LEAK_MARGIN)


def forget_panels() -> None:
    """Drop this process's panel and subexpression cache (run on long-lived cluster workers)."""
    _WORKERS.clear()


def score_batch(
    handle: PanelHandle,
    batch: list[tuple[str, int]],
    spec: ScoringSpec,
    residual: ResidualLabel | None = None,
) -> tuple[list[Score], int, int]:
    """Score `(canonical formula, size)` pairs against the train label (or the pool's residual
    label); returns the scores and this batch's cache hits/misses."""
    state = _state(handle, spec)
    cache = state.evaluator.cache
    hits, misses = cache.hits, cache.misses
    label = state.label_for(residual)
    scores = [score_one(state, formula, size, spec, label) for formula, size in batch]
    return scores, cache.hits - hits, cache.misses - misses


def score_one(
    state: _WorkerState, formula: str, size: int, spec: ScoringSpec, label: metrics.LabelRanks | None = None
) -> Score:
    """Train metrics and fitness of one candidate; any failure becomes the worst fitness."""
    rows = state.panel.rows
    try:
        values = state.evaluator.evaluate(formula)
    except (MinerError, ValueError, FloatingPointError, ZeroDivisionError, MemoryError) as exc:
        return failed(formula, size, spec.objective, f"evaluation failed: {exc}")
    coverage = metrics.coverage(values, universe=state.universe, rows=rows)
    if not coverage > 0.0:
        return failed(formula, size, spec.objective, "all NaN where the train label is valid")
    if spec.gates is not None:
        reason = gate_failure(values, state.universe, rows, spec.gates, spec.min_names)
        if reason is not None:
            return failed(formula, size, spec.objective, f"gate: {reason}", gate=reason.split()[0])
    ranked = state.prepared if label is None else label
    series = metrics.rank_ic_fast(values, ranked, min_names=spec.min_names)[rows]
    stats = metrics.ic_stats(series)
    if stats["n"] < MIN_SCORED_DATES or not math.isfinite(stats["icir"]):
        return failed(formula, size, spec.objective, f"rank IC defined on only {stats['n']} train dates")
    fitness: tuple[float, ...]
    if spec.objective == "nsga2":
        turnover = metrics.factor_turnover(values, rows=rows)
        fitness = (abs(stats["mean"]), turnover if math.isfinite(turnover) else 1.0, float(size))
    else:  # turnover is an objective only for NSGA-II; survivors get it on every segment later
        turnover = math.nan
        fitness = (spec.train_objective().fitness(series, size, spec.parsimony, MIN_SCORED_DATES),)
    shape = behaviour(series) if spec.behaviour else None
    return Score(formula, size, fitness, stats["mean"], stats["icir"], turnover, coverage, behaviour=shape)

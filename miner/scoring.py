"""Scoring candidates on the train segment, in batches, in whichever process joblib chooses.

`scoring_workers` sets up a run's workers through joblib's backend mechanism (the same
`score_batch` everywhere, no scheduler of ours) and hands them the panel once per run, never once
per batch:

* `loky` / `threading`: memory-mapped `.npy` files written once (`MemmapPanel`);
* `dask`: the `Panel` scattered to every worker (`client.scatter(..., broadcast=True)`); the
  handle is a Dask Future, which Dask resolves to the worker's copy in each task's arguments;
* `ray`: the `Panel` in Ray's object store (`RayPanel`); workers `ray.get` it, zero-copy.

Each worker keeps one `Evaluator` (with its bounded subexpression cache) per panel for as long as
it lives, so batches of a generation, and later generations, share subtrees. Scores are pure
functions of the formula and the panel, so every backend gives the same scores.

With `float32` the panel's numeric fields are stored as float32 (half the bytes in memory maps,
scattered copies and the object store) and each read of a field by the evaluator upcasts it to a
fresh float64 array, since kernels take float64; group codes, intraday cubes and the label stay
float64.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import multiprocessing
import platform
import random
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from joblib import Parallel, parallel_config

from evaluation import metrics
from evaluation.fitness import WORST_FITNESS, fitness_from_stats
from miner.data import MarketData
from miner.errors import ConfigError, MinerError
from miner.expression import Evaluator

if TYPE_CHECKING:
    from miner.config import ParallelSpec

log = logging.getLogger(__name__)

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
    fitness = WORST_MULTI if objective == "nsga2" else (WORST_FITNESS,)
    return Score(formula, size, fitness, reason=reason)


@dataclass
class Panel:
    """The train slice of the market, its label and the rows that count, in this process.

    `float32_fields` holds the numeric fields taken out of `data` by `with_float32_fields`.
    """

    data: MarketData
    label: np.ndarray
    rows: slice
    key: str = field(default="")
    float32_fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"mem:{uuid.uuid4().hex}"

    def with_float32_fields(self) -> Panel:
        """This panel with its numeric fields stored as float32 (group codes stay in `data`)."""
        data = self.data
        groups = {name: data.fields[name] for name in data.groups}
        narrow = {
            name: _read_only(array.astype(np.float32))
            for name, array in data.fields.items()
            if name not in groups
        }
        slim = MarketData(data.dates, data.instruments, groups, data.intraday, data.groups)
        return Panel(slim, self.label, self.rows, float32_fields=narrow)

    def save(self, directory: Path) -> MemmapPanel:
        """Write every array once as `.npy`; workers map them read-only."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "dates": [str(d) for d in self.data.dates],
            "instruments": [str(i) for i in self.data.instruments],
            "fields": sorted(self.data.fields),
            "float32_fields": sorted(self.float32_fields),
            "intraday": sorted(self.data.intraday),
            "groups": {k: list(v) for k, v in self.data.groups.items()},
            "rows": [self.rows.start, self.rows.stop],
            "fingerprint": self.data.fingerprint,
        }
        for name, array in self.data.fields.items():
            np.save(directory / f"field.{name}.npy", array)
        for name, array in self.float32_fields.items():
            np.save(directory / f"float32.{name}.npy", array)
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
        narrow = {n: np.load(root / f"float32.{n}.npy", mmap_mode="r") for n in meta["float32_fields"]}
        label = np.load(root / "label.npy", mmap_mode="r")
        return Panel(data, label, slice(*meta["rows"]), key=self.key, float32_fields=narrow)


@dataclass(frozen=True)
class RayPanel:
    """A picklable handle on a `Panel` in Ray's object store: only the object reference travels."""

    ref: object  # ray.ObjectRef

    @property
    def key(self) -> str:
        return f"ray:{self.ref.hex()}"

    def load(self) -> Panel:
        import ray

        return ray.get(self.ref)


PanelHandle = Panel | MemmapPanel | RayPanel  # a Dask Future of a Panel arrives as the Panel


class Float64Fields(Mapping):
    """Stored fields as the kernels take them: each read of a float32 field is a fresh float64 copy."""

    def __init__(self, stored: Mapping[str, np.ndarray]) -> None:
        self._stored = stored

    def __getitem__(self, name: str) -> np.ndarray:
        return _read_only(np.asarray(self._stored[name], dtype=np.float64))

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass
class _WorkerState:
    panel: Panel
    evaluator: Evaluator
    prepared: metrics.LabelRanks
    universe: np.ndarray  # (T, N) bool: where the label is valid


_WORKERS: dict[str, _WorkerState] = {}


def _evaluator(panel: Panel, cache_bytes: int) -> Evaluator:
    evaluator = Evaluator(panel.data, cache_bytes=cache_bytes)
    if panel.float32_fields:
        # Set after construction: the constructor copies `extra` into a dict, which would upcast
        # every field at once; the evaluator looks fields up in `extra` first, one read at a time.
        evaluator.extra = Float64Fields(panel.float32_fields)
    return evaluator


def _state(handle: PanelHandle, spec: ScoringSpec) -> _WorkerState:
    state = _WORKERS.get(handle.key)
    if state is None:
        panel = handle if isinstance(handle, Panel) else handle.load()
        prepared = metrics.prepare_label(panel.label, rows=panel.rows)
        _WORKERS.clear()  # one panel per worker at a time: a new run frees the old one
        if isinstance(handle, MemmapPanel) and multiprocessing.parent_process() is not None:
            _keep_freed_memory()  # a loky worker: a process of this run's own
        state = _WorkerState(panel, _evaluator(panel, spec.cache_bytes), prepared, np.isfinite(panel.label))
        _WORKERS[handle.key] = state
        _tolerate_loky_growth(spec.cache_bytes + _nbytes(panel))
    return state


# glibc's mallopt parameters, and the largest mmap threshold it accepts on 64-bit systems
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 << 20


def _keep_freed_memory() -> None:
    """Make this process's allocator keep the memory it frees, for reuse (glibc only).

    Scoring allocates and frees panel-sized arrays all the time. By default glibc maps each such
    block afresh and hands it back on free (or trims the heap), so the next one faults its pages
    in again: ~0.4 ms per MB on a VM, a third of a candidate's cost while a worker's cache fills.
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
    if limit is not None:
        guard._MAX_MEMORY_LEAK_SIZE = max(limit, nbytes + LOKY_LEAK_MARGIN)


def forget_panels() -> None:
    """Drop this process's panel and subexpression cache (run on long-lived cluster workers)."""
    _WORKERS.clear()


def score_batch(
    handle: PanelHandle, batch: list[tuple[str, int]], spec: ScoringSpec
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
    coverage = metrics.coverage(values, universe=state.universe, rows=rows)
    if not coverage > 0.0:
        return failed(formula, size, spec.objective, "all NaN where the train label is valid")
    series = metrics.rank_ic_fast(values, state.prepared, min_names=spec.min_names)[rows]
    stats = metrics.ic_stats(series)
    if stats["n"] < MIN_SCORED_DATES or not math.isfinite(stats["icir"]):
        return failed(formula, size, spec.objective, f"rank IC defined on only {stats['n']} train dates")
    if spec.objective == "nsga2":
        turnover = metrics.factor_turnover(values, rows=rows)
        fitness = (abs(stats["mean"]), turnover if math.isfinite(turnover) else 1.0, float(size))
    else:  # turnover is an objective only for NSGA-II; survivors get it on every segment later
        turnover = math.nan
        fitness = (fitness_from_stats(stats, size, spec.parsimony, MIN_SCORED_DATES),)
    return Score(formula, size, fitness, stats["mean"], stats["icir"], turnover, coverage)


def temporary_panel_dir() -> Path:
    """A fresh directory for the run's memory maps."""
    return Path(tempfile.mkdtemp(prefix="factor-miner-panel-"))


# ---------------------------------------------------------------------------------------------
# the run's workers

Workers = tuple[Parallel | None, object]  # (None: score in this process, the panel handle)


@contextlib.contextmanager
def scoring_workers(panel: Panel, spec: ParallelSpec) -> Iterator[Workers]:
    """The run's joblib `Parallel` (None: score in this process) and the handle workers read.

    Setting up and dispatching leave the driver's `random` stream as they found it (see
    `DriverParallel`), so a seed gives the same run on every backend.
    """
    if spec.float32:
        panel = panel.with_float32_fields()
    if spec.backend == "dask":
        with _dask_workers(panel, spec) as workers:
            yield workers
    elif spec.backend == "ray":
        with _ray_workers(panel, spec) as workers:
            yield workers
    elif spec.backend == "sequential" or spec.n_jobs == 1:
        yield None, panel
    else:
        directory = temporary_panel_dir()
        try:
            handle = panel.save(directory)
            with DriverParallel(n_jobs=spec.n_jobs, backend=spec.backend, batch_size=1) as parallel:
                yield parallel, handle
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _driver_random_kept() -> Iterator[None]:
    """Restore the `random` module's state on the way out.

    DEAP's evolution draws from that global stream, and so does an in-process Dask scheduler (a
    LocalCluster's) while it places scattered data and gathers results, on its own thread. Those
    draws happen only while the driver waits on the backend, so restoring around each wait keeps
    the evolution's draws exactly those of a sequential run.
    """
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


class DriverParallel(Parallel):
    """joblib's `Parallel` whose calls leave the driver's `random` stream untouched."""

    def __call__(self, iterable):
        with _driver_random_kept():
            return super().__call__(iterable)


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands freed memory back
# to the OS at once; scoring allocates and frees many panel-sized arrays, which then fault their
# pages in anew: about 30% more CPU per candidate. The cluster we start keeps glibc's default,
# as loky's workers do (README: the same setting for a cluster of yours).
NANNY_MALLOC_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


@contextlib.contextmanager
def _dask_workers(panel: Panel, spec: ParallelSpec) -> Iterator[Workers]:
    """Joblib's Dask backend on the scheduler at `spec.address` (or a LocalCluster for the run)."""
    import dask
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        with _driver_random_kept():
            if spec.address == "local":
                with dask.config.set({NANNY_MALLOC_TRIM_KEY: None}):
                    cluster = LocalCluster(
                        n_workers=spec.n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
                    )
                client = stack.enter_context(Client(stack.enter_context(cluster)))
            else:
                try:
                    client = stack.enter_context(Client(spec.address))
                except (OSError, TimeoutError, ValueError) as exc:
                    raise ConfigError(
                        f"parallel.address: no Dask scheduler at {spec.address}: {exc}"
                    ) from None
            handle = client.scatter(panel, broadcast=True, hash=False)  # a Future: each worker's copy
        with parallel_config(backend="dask", client=client):
            parallel = DriverParallel(n_jobs=spec.n_jobs, batch_size=1)
        try:
            with parallel:
                yield parallel, handle
            client.run(forget_panels)  # a long-lived cluster's workers let go of the panel
        finally:
            handle.release()


@contextlib.contextmanager
def _ray_workers(panel: Panel, spec: ParallelSpec) -> Iterator[Workers]:
    """Joblib's Ray backend on the cluster at `spec.address` (or a local Ray for the run)."""
    import ray
    from ray.util.joblib import register_ray

    started = not ray.is_initialized()
    with _driver_random_kept():
        if started:
            where = (
                {"num_cpus": spec.n_jobs, "include_dashboard": False}
                if spec.address == "local"
                else {"address": spec.address}
            )
            try:
                ray.init(**where, log_to_driver=False)
            except ConnectionError as exc:
                raise ConfigError(f"parallel.address: no Ray cluster at {spec.address}: {exc}") from None
        register_ray()
        handle = RayPanel(ray.put(panel))
        with parallel_config(backend="ray"):
            parallel = DriverParallel(n_jobs=spec.n_jobs, batch_size=1)
    try:
        with parallel:
            yield parallel, handle
    finally:
        if started:
            ray.shutdown()

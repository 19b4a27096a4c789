"""The memory a run's budgets need, checked against the memory available before the run starts.

Estimates, on the generous side (the aim is to refuse `gp.population: 1000000000`, not to trim
a normal run), from measurements of this code (benchmarks/README.md, "Memory budget"):

* each individual: a DEAP tree of up to `gp.max_size` nodes with its fitness, its formula text
  and what the formula caches hold of it, `NODE_BYTES` per node; the parents and their offspring
  are alive at once, in every island;
* each scored formula: one memo entry (its score and text), kept for the whole run; in the worst
  case every individual of every generation is new;
* each local worker process (loky; a `local` Dask cluster): the interpreter with numpy and the numba
  kernels loaded, its subexpression cache (`parallel.worker_cache_mb`), the train panel it maps and
  the temporary panels of one candidate; scoring in the driver (one job, `sequential`) needs the
  cache and the temporaries only; workers of a remote cluster are not counted;
* the driver: the market's arrays and the label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from miner.config import ExperimentConfig
from miner.errors import ConfigError
from miner.market import MarketData

NODE_BYTES = 320
SCORE_BYTES = 512
WORKER_PROCESS_BYTES = 350 << 20
TEMPORARY_PANELS = 8
GIB = 1 << 30


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes a run needs, by what needs them."""

    population: int
    memo: int
    workers: int
    driver: int

    @property
    def total(self) -> int:
        return self.population + self.memo + self.workers + self.driver


def memory_needed(config: ExperimentConfig, market: MarketData) -> MemoryNeed:
    gp, parallel = config.gp, config.parallel
    individuals = gp.islands * gp.population
    arrays = sum(a.nbytes for a in (*market.fields.values(), *market.intraday.values()))
    panel = len(market.dates) * len(market.instruments) * 8
    scratch = (parallel.worker_cache_mb << 20) + TEMPORARY_PANELS * panel
    local = parallel.backend in ("loky", "threading") or (
        parallel.backend == "dask" and parallel.address == "local"
    )
    if parallel.backend == "sequential" or parallel.n_jobs == 1:
        workers = scratch
    elif parallel.backend == "threading":
        workers = scratch + (parallel.n_jobs - 1) * TEMPORARY_PANELS * panel
    elif local:
        workers = parallel.n_jobs * (WORKER_PROCESS_BYTES + scratch + arrays)
    else:
        workers = 0
    return MemoryNeed(
        population=2 * individuals * gp.max_size * NODE_BYTES,
        memo=individuals * gp.generations * SCORE_BYTES,
        workers=workers,
        driver=arrays + panel,
    )


def check_memory(config: ExperimentConfig, market: MarketData, available: int | None = None) -> None:
    """A ConfigError naming the file and the budget at fault when the run needs more memory than
    `available` (default: what this machine has free now, `available_memory`)."""
    limit = available_memory() if available is None else available
    need = memory_needed(config, market)
    if limit is None or need.total <= limit:
        return
    gp, parallel = config.gp, config.parallel
    tail = f"{_gib(need.total)} GiB in all, more than the {_gib(limit)} GiB of memory available"
    if need.population + need.memo >= need.workers:
        raise ConfigError(
            f"{config.source}: gp.population: {gp.population} individuals x {gp.islands} island(s) need "
            f"about {_gib(need.population + need.memo)} GiB over {gp.generations} generation(s) (their "
            f"trees and the memo of scored formulas), {tail}: lower gp.population, gp.islands or "
            "gp.generations"
        )
    raise ConfigError(
        f"{config.source}: parallel.n_jobs: {parallel.n_jobs} worker processes need about "
        f"{_gib(need.workers)} GiB (each: the process, {parallel.worker_cache_mb} MB of "
        f"parallel.worker_cache_mb and the panel), {tail}: lower parallel.n_jobs or "
        "parallel.worker_cache_mb"
    )


def _gib(nbytes: int) -> str:
    return f"{nbytes / GIB:.1f}"


def available_memory() -> int | None:
    """Bytes of memory free for this run: Linux's MemAvailable (within a cgroup v2 limit, if one
    applies), else the machine's physical memory; None when neither is known."""
    known = [room for room in (_meminfo_available(), _cgroup_room()) if room is not None]
    if known:
        return min(known)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _meminfo_available() -> int | None:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) << 10
    return None


def _cgroup_room() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        used = int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)

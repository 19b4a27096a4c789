"""The run's workers: joblib's backend mechanism (the same `score_batch` everywhere, no scheduler of
ours), set up once per run and handed the panel once, never once per batch."""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from joblib import Parallel, parallel_config

from miner.errors import ConfigError
from miner.search.panels import Panel, RayPanel
from miner.search.scoring import forget_panels

if TYPE_CHECKING:
    from miner.config import ParallelSpec


def temporary_panel_dir() -> Path:
    """A fresh directory for the run's memory maps."""
    return Path(tempfile.mkdtemp(prefix="factor-miner-panel-"))


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
# pages in anew (benchmarks/README.md, "Design choices"). The cluster we start keeps glibc's default,
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

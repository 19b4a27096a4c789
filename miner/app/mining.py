"""One mining experiment end to end: market, miner, progress display and MLflow tracking."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from miner.app.baselines import BaselineReport, baseline_report
from miner.app.experiment import library_factors_for, market_for
from miner.app.tracking import RunTracker, check_tracking, tracking_uri
from miner.config import ExperimentConfig
from miner.errors import ConfigError, DataError, FormulaError, LibraryError
from miner.search.budget import check_memory
from miner.search.checkpoint import require_writable
from miner.search.evolution import Miner
from miner.search.results import GenerationStats, MiningResult

RUN_ID_FILE = "mlflow_run_id"


@dataclass
class Outcome:
    result: MiningResult
    run_id: str | None
    baselines: BaselineReport
    tracking_uri: str | None = None


def checkpoint_dir_for(config: ExperimentConfig) -> Path:
    return config.checkpoint_dir if config.checkpoint_dir is not None else Path("runs") / config.name


def mine(config: ExperimentConfig, resume: bool = False, console: Console | None = None) -> Outcome:
    """Run the experiment; on any failure the MLflow run is marked FAILED (KILLED on Ctrl-C).

    The tracking store is resolved (`tracking_uri`) and checked before anything else, so that an
    unreachable server fails within seconds, not after the data is loaded."""
    console = console or Console(quiet=True)
    if config.tracking.enabled:
        uri = tracking_uri(config.tracking.uri)
        check_tracking(uri, existing=False)
        config = config.model_copy(update={"tracking": config.tracking.model_copy(update={"uri": uri})})
    with naming_the_config(config, "data"):
        market = market_for(config)
    check_memory(config, market)
    with naming_the_config(config, "library.path"):
        library = library_factors_for(config, market)
    checkpoints = checkpoint_dir_for(config)
    require_writable(checkpoints, config.source)
    tracker: RunTracker | None = None
    progress = Progress(
        TextColumn("[bold]generation" if config.gp.search == "gp" else "[bold]random round"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=console,
        transient=False,
    )

    def on_generation(stats: GenerationStats) -> None:
        progress.update(task, completed=stats.generation + 1, description=_describe(stats))
        progress.console.print(_describe(stats), highlight=False)
        if tracker is not None:
            tracker.log_generation(stats)

    with naming_the_config(config):
        miner = Miner(
            config, market, library_factors=library, on_generation=on_generation, checkpoint_dir=checkpoints
        )
    tracker = _tracker(config, market, checkpoints, resume)
    task = progress.add_task("starting workers", total=miner.rounds)
    try:
        with progress, naming_the_config(config):
            result = miner.run(resume=resume)
        console.print("scoring the survivors' composites and the zoo baseline", style="dim")
        pick = miner.zoo_pick
        same_zoo = pick is not None and (pick.set_name, len(pick.members)) == (
            config.baselines.zoo,
            config.baselines.top_k,
        )
        survivors = [(s.name, s.formula) for s in result.survivors]
        baselines = baseline_report(config, market, survivors, pick if same_zoo else None)
        if tracker is not None:
            tracker.log_baselines(baselines)
    except KeyboardInterrupt:
        if tracker is not None:
            tracker.fail("KILLED")
        raise
    except BaseException:
        if tracker is not None:
            tracker.fail()
        raise
    if tracker is not None:
        tracker.finish(result)
        return Outcome(result, tracker.run_id, baselines, tracker.uri)
    return Outcome(result, None, baselines)


@contextlib.contextmanager
def naming_the_config(config: ExperimentConfig, key: str | None = None) -> Iterator[None]:
    """Config errors of the block name the config file; given `key`, so do the errors of the data
    or the library the config names (as errors of that key)."""
    try:
        yield
    except ConfigError as exc:
        if str(exc).startswith(f"{config.source}:"):
            raise
        raise ConfigError(f"{config.source}: {exc}") from None
    except (DataError, LibraryError, FormulaError) as exc:
        if key is None:
            raise
        raise ConfigError(f"{config.source}: {key}: {exc}") from None


def _tracker(config: ExperimentConfig, market, checkpoints: Path, resume: bool) -> RunTracker | None:
    if not config.tracking.enabled:
        return None
    run_file = checkpoints / RUN_ID_FILE
    previous = run_file.read_text().strip() if resume and run_file.exists() else None
    tracker = RunTracker(config, market, tracking_uri(config.tracking.uri), run_id=previous)
    checkpoints.mkdir(parents=True, exist_ok=True)
    run_file.write_text(tracker.run_id)
    return tracker


def _describe(stats: GenerationStats) -> str:
    return (
        f"gen {stats.generation}: best {stats.best:+.4f}  median {stats.median:+.4f}  "
        f"{stats.candidates_per_s:,.0f} cand/s  cache hits {stats.cache_hit_rate:.0%}  "
        f"new {stats.scored}  memo skips {stats.memo_skipped}  failed {stats.failed}"
        + (f" (gated {sum(stats.gated.values())})" if stats.gated else "")
        + (f"  pool {stats.pool_size}, valid IC {stats.pool_valid_rank_ic:+.4f}" if stats.pool_size else "")
    )

"""One mining experiment end to end: market, miner, progress display and MLflow tracking."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from miner.app.baselines import BaselineReport, baseline_report
from miner.app.experiment import library_factors_for, market_for
from miner.app.tracking import RunTracker, tracking_uri
from miner.config import ExperimentConfig
from miner.search.evolution import Miner
from miner.search.results import GenerationStats, MiningResult

RUN_ID_FILE = "mlflow_run_id"


@dataclass
class Outcome:
    result: MiningResult
    run_id: str | None
    baselines: BaselineReport


def checkpoint_dir_for(config: ExperimentConfig) -> Path:
    return config.checkpoint_dir if config.checkpoint_dir is not None else Path("runs") / config.name


def mine(config: ExperimentConfig, resume: bool = False, console: Console | None = None) -> Outcome:
    """Run the experiment; on any failure the MLflow run is marked FAILED (KILLED on Ctrl-C)."""
    console = console or Console(quiet=True)
    market = market_for(config)
    library = library_factors_for(config, market)
    checkpoints = checkpoint_dir_for(config)
    tracker = _tracker(config, market, checkpoints, resume)
    progress = Progress(
        TextColumn("[bold]generation" if config.gp.search == "gp" else "[bold]random round"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=False,
    )

    def on_generation(stats: GenerationStats) -> None:
        progress.update(task, completed=stats.generation + 1, description=_describe(stats))
        progress.console.print(_describe(stats), highlight=False)
        if tracker is not None:
            tracker.log_generation(stats)

    miner = Miner(
        config, market, library_factors=library, on_generation=on_generation, checkpoint_dir=checkpoints
    )
    task = progress.add_task("starting workers", total=miner.rounds)
    try:
        with progress:
            result = miner.run(resume=resume)
        console.print("scoring the survivors' composites and the zoo baseline", style="dim")
        baselines = baseline_report(config, market, [(s.name, s.formula) for s in result.survivors])
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
    return Outcome(result, tracker.run_id if tracker else None, baselines)


def _tracker(config: ExperimentConfig, market, checkpoints: Path, resume: bool) -> RunTracker | None:
    if not config.tracking.enabled:
        return None
    run_file = checkpoints / RUN_ID_FILE
    previous = run_file.read_text().strip() if resume and run_file.exists() else None
    tracker = RunTracker(config, market, tracking_uri(config), run_id=previous)
    checkpoints.mkdir(parents=True, exist_ok=True)
    run_file.write_text(tracker.run_id)
    return tracker


def _describe(stats: GenerationStats) -> str:
    return (
        f"gen {stats.generation}: best {stats.best:+.4f}  median {stats.median:+.4f}  "
        f"{stats.candidates_per_s:,.0f} cand/s  cache hits {stats.cache_hit_rate:.0%}  "
        f"new {stats.scored}  memo skips {stats.memo_skipped}  failed {stats.failed}"
    )

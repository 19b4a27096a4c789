"""MLflow logging: a mining run (a parent run, a child run per survivor) and other commands' runs;
where the runs go (`tracking_uri`) and whether that place answers (`check_tracking`)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import matplotlib.pyplot as plt
import numpy as np
import yaml
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from evaluation import metrics, report
from miner import __version__
from miner.config import ExperimentConfig
from miner.errors import MinerError
from miner.lang import Evaluator
from miner.market import MarketData
from miner.market.labels import experiment_label
from miner.search.results import GenerationStats, MiningResult, Survivor

if TYPE_CHECKING:
    from miner.app.baselines import BaselineReport

log = logging.getLogger(__name__)

SURVIVORS_FILE = "survivors.json"
BASELINES_FILE = "baselines.json"
CONFIG_FILE = "config.yaml"
PARENT_TAG = "mlflow.parentRunId"
BATCH = 100  # MLflow accepts at most 100 params per batch
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
PROBE_SECONDS = 5  # how long a tracking server may take to answer the reachability probe
# MLflow 3's UI opens an experiment in its GenAI view unless this tag says what the experiment is;
# "custom_model_development" opens the runs table (the "Model training" view).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def tracking_uri(given: str | None) -> str:
    """Where runs go: `given` (the command line's --tracking-uri, else the config's tracking.uri),
    else $MLFLOW_TRACKING_URI, else `DEFAULT_TRACKING_URI`."""
    return given or os.environ.get(TRACKING_URI_ENV, "").strip() or DEFAULT_TRACKING_URI


def check_tracking(uri: str, existing: bool) -> None:
    """A one-line MinerError, within seconds, when the tracking store at `uri` cannot be used: a
    server that does not answer an MLflow request (no retries), a database or folder that does not
    exist (`existing`: it must hold runs already) or cannot be created."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _probe_server(uri)
    elif scheme == "sqlite":
        _check_location(Path(uri.removeprefix("sqlite:///")), uri, existing, "tracking database")
    elif scheme in ("", "file"):
        _check_location(Path(urlparse(uri).path if scheme else uri), uri, existing, "tracking folder")


def _check_location(path: Path, uri: str, existing: bool, what: str) -> None:
    if existing and not path.exists():
        raise MinerError(f"no MLflow {what} at {uri} (pass --tracking-uri or set {TRACKING_URI_ENV})")
    if not path.parent.is_dir():
        raise MinerError(f"MLflow {what} {uri}: folder {path.parent} does not exist")


def _probe_server(uri: str) -> None:
    try:
        response = http_request(
            get_default_host_creds(uri),
            "/api/2.0/mlflow/experiments/search",
            "GET",
            max_retries=0,
            timeout=PROBE_SECONDS,
            raise_on_status=False,
            params={"max_results": 1},
        )
    except Exception as exc:  # MLflow wraps every connection failure; the user needs its gist
        raise MinerError(f"MLflow tracking server {uri} is not reachable: {_gist(exc)}") from None
    if response.status_code in (401, 403):
        raise MinerError(
            f"MLflow tracking server {uri} refused the credentials (HTTP {response.status_code})"
        )
    if response.status_code != 200:
        raise MinerError(
            f"MLflow tracking server {uri} answered HTTP {response.status_code}: is it an MLflow server?"
        )


def _gist(exc: Exception) -> str:
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        return f"no answer within {PROBE_SECONDS} s"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "unknown host"
    return str(exc).splitlines()[0][:200]


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """`{"gp": {"population": 10}}` -> `{"gp.population": "10"}`."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def git_commit() -> str | None:
    """The commit of the working directory's repository, when there is one."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@contextlib.contextmanager
def mlflow_errors(uri: str) -> Iterator[None]:
    """MLflow's many kinds of failure as one-line `MinerError`s naming the tracking URI."""
    try:
        yield
    except MinerError:
        raise
    except Exception as exc:  # MLflow raises many kinds; the user needs one line
        raise MinerError(f"MLflow tracking at {uri}: {type(exc).__name__}: {exc}") from None


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the MLflow experiment `name`, created when it does not exist, tagged as a model
    development experiment (`EXPERIMENT_KIND_TAG`) so that MLflow 3 opens its runs table."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def log_finished_run(
    uri: str,
    experiment: str,
    run_name: str,
    *,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    texts: Mapping[str, str],
    figures: Mapping[str, Figure],
) -> str:
    """One complete run: params, metrics, text artifacts (by file name) and plots (`plots/`); its id."""
    client = MlflowClient(tracking_uri=uri)
    with mlflow_errors(uri):
        run = client.create_run(
            experiment_id(client, experiment), run_name=run_name, tags={"factor_miner.version": __version__}
        )
        run_id = run.info.run_id
        now = _millis()
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)],
            params=[Param(k, v) for k, v in params.items()],
        )
        for name, text in texts.items():
            client.log_text(run_id, text, name)
        for name, figure in figures.items():
            client.log_figure(run_id, figure, f"plots/{name}.png")
            plt.close(figure)
        client.set_terminated(run_id, status="FINISHED")
    return run_id


class RunTracker:
    """Logs one mining run to MLflow as it goes: params and tags first, metrics per generation,
    then artifacts and one child run per survivor."""

    def __init__(self, config: ExperimentConfig, market: MarketData, uri: str, run_id: str | None = None):
        self.config = config
        self.market = market
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        with mlflow_errors(uri):
            self.experiment_id = experiment_id(self.client, config.name)
            if run_id is None:
                self.run_id = self._start()
            else:
                self.run_id = run_id
                self.client.update_run(run_id, status="RUNNING")

    def _start(self) -> str:
        tags = {
            "factor_miner.version": __version__,
            "data_fingerprint": self.market.fingerprint,
            "seed": str(self.config.seed),
            "config_file": self.config.source,
        }
        commit = git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.config.name}-seed{self.config.seed}", tags=tags
        )
        params = [Param(k, v) for k, v in flatten(self.config.model_dump(mode="json")).items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(run.info.run_id, params=params[i : i + BATCH])
        return run.info.run_id

    def log_generation(self, stats: GenerationStats) -> None:
        values = {
            "best_fitness": stats.best,
            "median_fitness": stats.median,
            "unique_share": stats.unique_share,
            "cache_hit_rate": stats.cache_hit_rate,
            "candidates_per_s": stats.candidates_per_s,
            "scored": stats.scored,
            "memo_skipped": stats.memo_skipped,
            "failed": stats.failed,
            "gated": sum(stats.gated.values()),
            **{f"gated_{gate}": count for gate, count in stats.gated.items()},
            "pool_size": stats.pool_size,
            "pool_valid_rank_ic": stats.pool_valid_rank_ic,
        }
        now = _millis()
        batch = [Metric(k, float(v), now, stats.generation) for k, v in values.items() if _finite(v)]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_baselines(self, report: BaselineReport) -> None:
        """The run's baseline figures as parent-run metrics, its choices as `baselines.json`."""
        now = _millis()
        batch = [Metric(k, float(v), now, 0) for k, v in report.metrics().items() if _finite(v)]
        self.client.log_batch(self.run_id, metrics=batch)
        self.client.log_text(self.run_id, json.dumps(report.choices(), indent=2), BASELINES_FILE)

    def finish(self, result: MiningResult) -> None:
        """Artifacts, child runs and the final status."""
        with tempfile.TemporaryDirectory(prefix="factor-miner-artifacts-") as folder:
            root = Path(folder)
            self._write_artifacts(root, result)
            for path in sorted(root.iterdir()):
                self.client.log_artifact(self.run_id, str(path), artifact_path=_artifact_dir(path))
        for survivor in result.survivors:
            self._child_run(survivor)
        now = _millis()
        figures = {"survivors": float(len(result.survivors))}
        tags = [RunTag("survivors", ",".join(s.name for s in result.survivors) or "none")]
        if result.admission is not None:
            admission = result.admission
            figures |= {
                "scored_formulas": float(admission.scored),
                "examined_on_valid": float(admission.examined),
                "admission_tests": float(admission.tests),
                "admission_hurdle_t": admission.hurdle,
            }
            tags.append(RunTag("admission", f"{admission.method}, alpha {admission.alpha}"))
        metrics = [Metric(k, v, now, 0) for k, v in figures.items() if _finite(v)]
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(self.run_id, status="FINISHED")

    def fail(self, status: str = "FAILED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def _child_run(self, survivor: Survivor) -> None:
        tags = {PARENT_TAG: self.run_id, "factor_miner.version": __version__}
        child = self.client.create_run(self.experiment_id, run_name=survivor.name, tags=tags)
        params = [Param("formula", survivor.formula), Param("name", survivor.name)]
        now = _millis()
        values = {
            "size": survivor.size,
            "lookback": survivor.lookback,
            "half_life": survivor.half_life,
            "train_fitness": survivor.train_fitness,
        }
        for segment, seg in survivor.segments.items():
            for key, value in dataclasses.asdict(seg).items():
                values[f"{segment}_{key}"] = value
        batch = [Metric(k, float(v), now, 0) for k, v in values.items() if _finite(v)]
        self.client.log_batch(child.info.run_id, metrics=batch, params=params)
        self.client.set_terminated(child.info.run_id, status="FINISHED")

    def _write_artifacts(self, root: Path, result: MiningResult) -> None:
        (root / CONFIG_FILE).write_text(yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False))
        (root / SURVIVORS_FILE).write_text(
            json.dumps(survivors_document(self.config, self.market, result), indent=2)
        )
        write_hall_of_fame(root / "hall_of_fame.csv", result)
        for name, figure in run_figures(self.config, self.market, result).items():
            figure.savefig(root / f"{name}.png", dpi=110)
            plt.close(figure)


def _artifact_dir(path: Path) -> str | None:
    return "plots" if path.suffix == ".png" else None


def _millis() -> int:
    return int(time.time() * 1000)


def survivors_document(config: ExperimentConfig, market: MarketData, result: MiningResult) -> dict:
    """Everything `miner promote` needs, as JSON."""
    return {
        "experiment": config.name,
        "seed": config.seed,
        "data_fingerprint": market.fingerprint,
        "label": config.label.model_dump(),
        "segments": {k: [v.start, v.stop] for k, v in result.segments.as_dict().items()},
        "survivors": [
            {
                "name": s.name,
                "formula": s.formula,
                "size": s.size,
                "lookback": s.lookback,
                "train_fitness": _json_number(s.train_fitness),
                "segments": {
                    k: {m: _json_number(v) for m, v in dataclasses.asdict(seg).items()}
                    for k, seg in s.segments.items()
                },
                "decay": {str(h): _json_number(v) for h, v in s.decay.items()},
                "half_life": _json_number(s.half_life),
            }
            for s in result.survivors
        ],
    }


def _json_number(value: float) -> float | None:
    return float(value) if _finite(value) else None


def write_hall_of_fame(path: Path, result: MiningResult) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["rank", "formula", "fitness", "train_rank_ic", "train_icir", "turnover", "coverage", "size"]
        )
        for i, s in enumerate(result.hall_of_fame, start=1):
            writer.writerow([i, s.formula, s.fitness[0], s.rank_ic, s.icir, s.turnover, s.coverage, s.size])


def run_figures(config: ExperimentConfig, market: MarketData, result: MiningResult, top: int = 5) -> dict:
    """The run's plots: fitness by generation, cumulative rank IC, IC decay, quantile returns."""
    figures = {
        "fitness_by_generation": report.fitness_by_generation(
            [g.best for g in result.logbook], [g.median for g in result.logbook]
        )
    }
    if not result.survivors:
        return figures
    label = experiment_label(market, config.label)
    evaluator = Evaluator(market)
    chosen = result.survivors[:top]
    values = {s.name: evaluator.evaluate(s.formula) for s in chosen}
    series = {
        f"{s.name}: {s.formula}"[:60]: metrics.rank_ic(values[s.name], label, config.fitness.min_names)
        for s in chosen
    }
    figures["cumulative_rank_ic"] = report.cumulative_rank_ic(market.dates, series, result.segments.as_dict())
    figures["ic_decay"] = report.ic_decay({s.name: s.decay for s in chosen})
    best = chosen[0]
    by_quantile = metrics.quantile_returns(values[best.name], label, 5, rows=result.segments.valid)
    with np.errstate(all="ignore"):
        mean = np.nanmean(by_quantile[result.segments.valid], axis=0)
    figures["quantile_returns"] = report.quantile_returns(mean, f"{best.name} quantile returns (valid)")
    return figures

"""The user's day: `miner mine` logs to MLflow, `miner promote` fills a library; a real server too."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from miner import evaluate
from miner.app.experiment import market_for
from miner.app.mining import mine
from miner.app.tracking import PARENT_TAG
from miner.config import config_from_dict
from miner.library import FactorLibrary
from tests.cli_runner import assert_one_line_error, miner

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "experiments" / "quickstart.yaml"
PLOTS = {"cumulative_rank_ic.png", "fitness_by_generation.png", "ic_decay.png", "quantile_returns.png"}


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One quickstart run through the CLI, in a temporary working directory."""
    work = tmp_path_factory.mktemp("work")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    done = miner("mine", str(QUICKSTART), "--n-jobs", "1", "--tracking-uri", uri, cwd=work)
    assert done.returncode == 0, done.stderr
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1
    return {
        "work": work,
        "uri": uri,
        "client": client,
        "parent": parents[0],
        "runs": runs,
        "stdout": done.stdout,
    }


def test_the_parent_run_has_params_tags_and_metrics_per_generation(mined: dict) -> None:
    parent, client = mined["parent"], mined["client"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["gp.population"] == "400" and parent.data.params["seed"] == "7"
    assert {"factor_miner.version", "data_fingerprint", "seed"} <= set(parent.data.tags)
    market = market_for(config_from_dict(yaml.safe_load(QUICKSTART.read_text())))
    assert parent.data.tags["data_fingerprint"] == market.fingerprint
    for name in ("best_fitness", "median_fitness", "unique_share", "cache_hit_rate", "candidates_per_s"):
        history = client.get_metric_history(parent.info.run_id, name)
        assert sorted(m.step for m in history) == list(range(12)), name
    gated = client.get_metric_history(parent.info.run_id, "gated")
    assert len(gated) == 12 and sum(m.value for m in gated) > 0  # degenerate candidates, counted
    figures = parent.data.metrics
    assert figures["examined_on_valid"] <= figures["admission_tests"] <= figures["scored_formulas"]
    assert figures["admission_hurdle_t"] > 2 and parent.data.tags["admission"].startswith("bh")


def test_artifacts_and_one_child_run_per_survivor(mined: dict, tmp_path: Path) -> None:
    parent, client = mined["parent"], mined["client"]
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.yaml", "hall_of_fame.csv", "survivors.json", "plots"} <= top
    plots = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert plots == PLOTS
    document = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "survivors.json", str(tmp_path))).read_text()
    )
    children = [r for r in mined["runs"] if r.data.tags.get(PARENT_TAG) == parent.info.run_id]
    assert len(children) == len(document["survivors"]) >= 1
    by_name = {c.info.run_name: c for c in children}
    for survivor in document["survivors"]:
        child = by_name[survivor["name"]]
        assert child.data.params["formula"] == survivor["formula"]
        for metric in (
            "train_rank_ic",
            "valid_rank_ic",
            "test_rank_ic",
            "valid_icir",
            "valid_turnover",
            "size",
        ):
            assert metric in child.data.metrics
        assert child.data.metrics["valid_rank_ic"] == pytest.approx(survivor["segments"]["valid"]["rank_ic"])


def test_the_printed_survivors_are_the_logged_ones(mined: dict, tmp_path: Path) -> None:
    """Each survivor's metrics on one line, its whole formula on another (no wrapping at the
    80 columns a non-terminal gets)."""
    parent, client = mined["parent"], mined["client"]
    document = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "survivors.json", str(tmp_path))).read_text()
    )
    lines = mined["stdout"].splitlines()
    for survivor in document["survivors"]:
        name, segments = survivor["name"], survivor["segments"]
        numbers = [f"{segments[s]['rank_ic']:+.4f}" for s in ("train", "valid", "test")]
        assert any(line.split()[:4] == [name, *numbers] for line in lines if line.strip()), name
        assert any(line.strip().split(maxsplit=1) == [name, survivor["formula"]] for line in lines)


def test_the_run_reports_its_composites_and_the_zoo_baseline(mined: dict, tmp_path: Path) -> None:
    """Parent-run metrics, the choices behind them as an artifact, and the printed comparison."""
    parent, client = mined["parent"], mined["client"]
    figures = parent.data.metrics
    for name in ("composite_ew", "composite_ridge", "zoo_top_k", "zoo_composite", "zoo_plus_mined_composite"):
        for segment in ("train", "valid", "test"):
            assert math.isfinite(figures[f"{name}_{segment}_rank_ic"]), (name, segment)
    choices = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "baselines.json", str(tmp_path))).read_text()
    )
    assert choices["zoo"]["set"] == "classic" and len(choices["zoo"]["top_k"]) == 10
    market = market_for(config_from_dict(yaml.safe_load(QUICKSTART.read_text())))
    assert evaluate(choices["composites"]["ridge"]["formula"], market).shape == (market.T, market.N)
    out = mined["stdout"]
    assert "survivors' ridge composite" in out and "zoo + mined vs zoo-only composite rank IC" in out
    ridge = next(line for line in out.splitlines() if "survivors' ridge composite" in line).split()
    assert ridge[-2] == f"{figures['composite_ridge_test_rank_ic']:+.4f}"


def test_promote_all_puts_values_equal_to_a_fresh_evaluation(mined: dict) -> None:
    run_id, work = mined["parent"].info.run_id, mined["work"]
    library_path = work / "factors.duckdb"
    done = miner(
        "promote", run_id, "--all", "--library", str(library_path), "--tracking-uri", mined["uri"], cwd=work
    )
    assert done.returncode == 0, done.stderr
    market = market_for(config_from_dict(yaml.safe_load(QUICKSTART.read_text())))
    with FactorLibrary(library_path, read_only=True) as library:
        listed = library.list_factors()
        assert set(listed["source"]) == {run_id}
        for factor_id, formula in zip(listed["factor_id"], listed["formula"], strict=True):
            stored = library.get_factor(factor_id).to_numpy()
            fresh = evaluate(formula, market)
            np.testing.assert_array_equal(stored, fresh[: len(stored)])
    assert mined["client"].get_run(run_id).data.tags["promoted"] == ",".join(sorted(listed["factor_id"]))

    again = miner(
        "promote", run_id, "--all", "--library", str(library_path), "--tracking-uri", mined["uri"], cwd=work
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout

    unknown = miner(
        "promote",
        run_id,
        "--factor",
        "nope",
        "--library",
        str(library_path),
        "--tracking-uri",
        mined["uri"],
        cwd=work,
    )
    assert_one_line_error(unknown, "run has no survivor named nope")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def tracking_server(tmp_path: Path):
    """`mlflow server` on a loopback port, stopped after the test."""
    port = _free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    process = subprocess.Popen(
        [
            mlflow,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_run_logged_to_a_real_tracking_server_over_http(tracking_server: str, tmp_path: Path) -> None:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["gp"].update(population=60, generations=2)
    raw["parallel"]["n_jobs"] = 1
    raw["tracking"] = {"uri": tracking_server}
    raw["checkpoint_dir"] = str(tmp_path / "checkpoints")
    outcome = mine(config_from_dict(raw, "server-test"))
    run = _get(f"{tracking_server}/api/2.0/mlflow/runs/get?run_id={outcome.run_id}")["run"]
    assert run["info"]["status"] == "FINISHED"
    request = urllib.request.Request(
        f"{tracking_server}/api/2.0/mlflow/runs/search",
        data=json.dumps(
            {
                "experiment_ids": [run["info"]["experiment_id"]],
                "filter": f"tags.`{PARENT_TAG}` = '{outcome.run_id}'",
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        children = json.loads(response.read()).get("runs", [])
    assert len(children) == len(outcome.result.survivors) >= 1
    artifacts = _get(f"{tracking_server}/api/2.0/mlflow/artifacts/list?run_id={outcome.run_id}")
    assert "survivors.json" in {f["path"] for f in artifacts["files"]}

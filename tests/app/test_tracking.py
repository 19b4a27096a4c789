"""Where runs go (--tracking-uri, the config, $MLFLOW_TRACKING_URI, sqlite:///mlflow.db) and what an
unreachable tracking server does: one line naming it within seconds."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from miner.app.cli import with_overrides
from miner.app.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, TRACKING_URI_ENV, tracking_uri
from miner.config import config_from_dict, load_config
from tests.cli_runner import Done, assert_one_line_error, miner

ROOT = Path(__file__).resolve().parents[2]


def small_config(folder: Path, **tracking: object) -> Path:
    """The quickstart on a small market with a tiny GP, written to `folder`."""
    raw = yaml.safe_load((ROOT / "experiments" / "quickstart.yaml").read_text())
    raw["data"]["synthetic"].update(n_instruments=40, n_days=400)
    raw["splits"] = {
        "train": {"start": "2020-01-01", "end": "2020-09-30"},
        "valid": {"start": "2020-10-01", "end": "2021-01-31"},
        "test": {"start": "2021-02-01", "end": "2021-07-09"},
    }
    raw["gp"].update(population=24, generations=1, elitism=2)
    raw["parallel"]["n_jobs"] = 1
    raw["checkpoint_dir"] = str(folder / "checkpoints")
    if tracking:
        raw["tracking"] = tracking
    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_uri_comes_from_the_option_then_the_config_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    assert tracking_uri(None) == "sqlite:///mlflow.db"
    monkeypatch.setenv(TRACKING_URI_ENV, "http://env:5000")
    assert tracking_uri(None) == "http://env:5000"
    plain = load_config(small_config(tmp_path))
    configured = load_config(small_config(tmp_path, uri="sqlite:///configured.db"))
    assert tracking_uri(with_overrides(plain, None, None, None, False).tracking.uri) == "http://env:5000"
    assert tracking_uri(with_overrides(configured, None, None, None, False).tracking.uri) == (
        "sqlite:///configured.db"
    )
    assert tracking_uri(
        with_overrides(configured, None, "sqlite:///option.db", None, False).tracking.uri
    ) == ("sqlite:///option.db")


@pytest.mark.parametrize("name", ["quickstart", "daily_us", "drip_stone"])
def test_shipped_experiments_leave_the_uri_to_the_environment(name: str) -> None:
    assert load_config(ROOT / "experiments" / f"{name}.yaml").tracking.uri is None


def test_mine_and_promote_honour_MLFLOW_TRACKING_URI_and_open_the_runs_table(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv(TRACKING_URI_ENV, uri)
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("older")  # made before the kind tag existed
    config = small_config(tmp_path)
    done = miner("mine", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "mlflow.db").exists()
    experiment = client.get_experiment_by_name("quickstart")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.seed = '7'")
    assert run.info.status == "FINISHED" and f"at {uri}" in done.stdout

    promoted = miner(
        "promote", run.info.run_id, "--all", "--library", str(tmp_path / "f.duckdb"), cwd=tmp_path
    )
    assert promoted.returncode == 0, promoted.stderr

    raw = yaml.safe_load(config.read_text())
    raw["name"] = "older"
    config.write_text(yaml.safe_dump(raw))
    assert miner("mine", str(config), cwd=tmp_path).returncode == 0
    assert client.get_experiment_by_name("older").tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def timed_miner(*args: str, cwd: Path) -> tuple[Done, float]:
    began = time.monotonic()
    done = miner(*args, cwd=cwd)
    return done, time.monotonic() - began


def test_an_unreachable_tracking_server_is_one_line_within_seconds(tmp_path):
    """Checked before the market is built: nothing is mined, no checkpoint is written."""
    config = small_config(tmp_path)
    down = f"http://127.0.0.1:{_free_port()}"
    done, seconds = timed_miner("mine", str(config), "--tracking-uri", down, cwd=tmp_path)
    assert_one_line_error(done, f"MLflow tracking server {down} is not reachable: connection refused")
    assert seconds < 15 and not (tmp_path / "checkpoints").exists()
    with silent_server() as silent:
        done, seconds = timed_miner("mine", str(config), "--tracking-uri", silent, cwd=tmp_path)
        assert_one_line_error(done, f"MLflow tracking server {silent} is not reachable: no answer within 5 s")
        assert seconds < 15
    done, seconds = timed_miner("promote", "0123456789abcdef", "--all", "--tracking-uri", down, cwd=tmp_path)
    assert_one_line_error(done, f"MLflow tracking server {down} is not reachable")
    assert seconds < 15


def test_promote_tells_a_missing_run_from_a_missing_store(tmp_path, monkeypatch):
    monkeypatch.setenv(TRACKING_URI_ENV, f"sqlite:///{tmp_path / 'absent.db'}")
    assert_one_line_error(
        miner("promote", "0123456789abcdef", "--all", cwd=tmp_path),
        "no MLflow tracking database at sqlite:///",
    )
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("empty")
    monkeypatch.setenv(TRACKING_URI_ENV, uri)
    assert_one_line_error(miner("promote", "0123456789abcdef", "--all", cwd=tmp_path), "no MLflow run '0123")
    config = config_from_dict(yaml.safe_load(small_config(tmp_path).read_text()), "x")
    assert config.tracking.uri is None

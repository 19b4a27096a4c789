"""The processes of a run: workers that die with a killed miner, budgets checked against memory,
checkpoints that are not ours."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from miner.app.experiment import market_for
from miner.errors import ConfigError
from miner.search.budget import check_memory, memory_needed
from miner.search.checkpoint import CHECKPOINT_FILE, load_checkpoint
from tests.cli_runner import assert_one_line_error, miner
from tests.search.test_evolution import small

MINER = str(Path(sys.executable).parent / "miner")


def write_config(folder: Path, **changes: object) -> Path:
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(small(**changes).model_dump(mode="json")))
    return path


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_exit_soon_after_the_miner_is_killed(tmp_path):
    """`kill -9` of `miner mine` mid-run: its loky workers exit within seconds (not loky's idle
    timeout of minutes) and the memory-mapped panel files are removed."""
    config = write_config(
        tmp_path, gp__generations=500, parallel__n_jobs=2, checkpoint_dir=str(tmp_path / "runs")
    )
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen(
        [MINER, "mine", str(config), "--no-tracking"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    workers: set[int] = set()
    try:
        for line in run.stdout:
            if line.startswith("gen 1:"):
                break
        workers = descendants(run.pid)
        assert len(workers) >= 2, workers
        assert list(tmp_path.glob("factor-miner-panel-*"))
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if alive(pid)]
        assert not list(tmp_path.glob("factor-miner-panel-*"))
    finally:
        run.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_budgets_beyond_memory_are_refused_before_the_run_starts(tmp_path):
    config = write_config(tmp_path, gp__population=1_000_000_000)
    began = time.monotonic()
    assert_one_line_error(
        miner("mine", str(config), "--no-tracking", cwd=tmp_path),
        f"{config}: gp.population: 1000000000 individuals x 1 island(s) need about",
    )
    assert time.monotonic() - began < 60


def test_the_memory_estimate_grows_with_the_budget_and_passes_the_quickstart():
    config = small()
    market = market_for(config)
    base = memory_needed(config, market)
    wider = memory_needed(small(gp__population=4000), market)
    longer = memory_needed(small(gp__generations=30), market)
    assert wider.population == 100 * base.population and wider.memo == 100 * base.memo
    assert longer.memo == 10 * base.memo and longer.population == base.population
    two = memory_needed(small(parallel__n_jobs=2), market)
    assert two.workers > base.workers
    check_memory(config, market, available=8 << 30)
    with pytest.raises(ConfigError, match=r"gp.population: .* more than the 0.1 GiB"):
        check_memory(small(gp__population=400_000, gp__generations=50), market, available=100 << 20)
    with pytest.raises(ConfigError, match=r"parallel.n_jobs: 64 worker processes need about"):
        check_memory(small(parallel__n_jobs=64, parallel__worker_cache_mb=2048), market, available=8 << 30)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a factor-miner checkpoint"),
        (pickle.dumps({"foreign": True}), "not a factor-miner checkpoint"),
        (b"\x80\x05garbage", "not a factor-miner checkpoint"),
    ],
)
def test_a_foreign_checkpoint_is_one_line(tmp_path, content: bytes, message: str):
    (tmp_path / CHECKPOINT_FILE).write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_checkpoint(tmp_path, "fingerprint", {})


def test_a_truncated_checkpoint_is_one_line_on_resume(tmp_path):
    checkpoints = tmp_path / "runs"
    config = write_config(tmp_path, gp__generations=1, checkpoint_dir=str(checkpoints))
    assert miner("mine", str(config), "--no-tracking", cwd=tmp_path).returncode == 0
    saved = checkpoints / CHECKPOINT_FILE
    whole = saved.read_bytes()
    saved.write_bytes(whole[: len(whole) // 2])
    assert_one_line_error(
        miner("mine", str(config), "--no-tracking", "--resume", cwd=tmp_path),
        f"{saved}: the checkpoint is truncated or damaged",
    )
    saved.write_bytes(pickle.dumps({"islands": []}))
    assert_one_line_error(
        miner("mine", str(config), "--no-tracking", "--resume", cwd=tmp_path),
        f"{saved}: not a factor-miner checkpoint",
    )

"""Dask and Ray backends: the same run as in-process and loky, the panel shipped once per run,
config errors that name the key, and float32 storage of the scored panel."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from joblib import delayed

from miner.app.experiment import market_for
from miner.config import ParallelSpec
from miner.errors import ConfigError
from miner.market import MarketData
from miner.search import panels, scoring
from miner.search.evolution import Miner
from miner.search.panels import Panel
from miner.search.scoring import ScoringSpec, score_one
from miner.search.workers import scoring_workers
from tests.search.test_evolution import hall_signature, small
from tests.strategies import small_market

distributed = pytest.importorskip(
    "distributed", reason="the dask extra is not installed: pip install -e '.[test,dask]'"
)

DASK_LOCAL = {"backend": "dask", "address": "local", "n_jobs": 2}
FORMULAS = [
    "rank(delta(close, 5))",
    "ts_corr(close, volume, 10)",
    "ts_rank(volume, 5) * -1",
    "group_neutralize(returns, sector)",
    "decay_linear(log(volume), 3) / vwap",
]


def run_signature(parallel: dict) -> tuple:
    """What a run decides: the hall of fame, the survivors with their metrics, the logbook."""
    config = small(parallel=parallel)
    result = Miner(config, market_for(config)).run()
    survivors = [(s.formula, repr(s.segments), repr(s.decay)) for s in result.survivors]
    logbook = [(g.best, g.median, g.scored, g.memo_skipped, g.failed) for g in result.logbook]
    return hall_signature(result), survivors, logbook


@pytest.fixture(scope="module")
def in_process() -> tuple:
    return run_signature({"n_jobs": 1})


@pytest.fixture(scope="module")
def running_cluster():
    """A Dask cluster started outside the miner, as a user's would be: (its address, a client)."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield cluster.scheduler_address, client


# --- one run, whichever workers score it ------------------------------------------------------


@pytest.mark.parametrize("parallel", [{"backend": "loky", "n_jobs": 2}, DASK_LOCAL], ids=["loky", "dask"])
def test_a_two_worker_run_equals_the_in_process_run(in_process: tuple, parallel: dict) -> None:
    hall, survivors, logbook = run_signature(parallel)
    assert hall == in_process[0] and survivors == in_process[1] and logbook == in_process[2]
    assert hall and survivors


def test_a_ray_run_equals_the_in_process_run(in_process: tuple) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    assert run_signature({"backend": "ray", "address": "local", "n_jobs": 2}) == in_process


def test_a_scheduler_at_an_address_mines_float32_as_in_process_and_its_workers_let_go(
    running_cluster,
) -> None:
    address, client = running_cluster
    remote = run_signature({"backend": "dask", "address": address, "n_jobs": 2, "float32": True})
    assert remote == run_signature({"n_jobs": 1, "float32": True})
    assert set(client.run(_panels_held).values()) == {0}


def _panels_held() -> int:
    return len(scoring._WORKERS)


def _panel_seen(handle: object) -> tuple[int, int]:
    """(worker pid, identity of the panel the worker scores with)."""
    return os.getpid(), id(scoring._state(handle, ScoringSpec()).panel)


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_each_worker_gets_the_panel_once_per_run_not_once_per_batch(backend: str, request) -> None:
    address = request.getfixturevalue("running_cluster")[0] if backend == "dask" else None
    panel = labelled_panel(small_market(t=60, n=30))
    with scoring_workers(panel, ParallelSpec(backend=backend, address=address, n_jobs=2)) as (pool, handle):
        seen = [pool(delayed(_panel_seen)(handle) for _ in range(8)) for _ in range(2)]
    panels_per_worker: dict[int, set[int]] = {}
    for pid, panel_id in seen[0] + seen[1]:
        panels_per_worker.setdefault(pid, set()).add(panel_id)
    assert os.getpid() not in panels_per_worker
    assert all(len(ids) == 1 for ids in panels_per_worker.values())
    if backend == "dask":
        assert isinstance(handle, distributed.Future)  # what each task carries: a reference
    else:
        assert isinstance(handle, panels.MemmapPanel)


# --- config errors ----------------------------------------------------------------------------


def with_parallel(parallel: dict) -> dict:
    return {
        "name": "t",
        "splits": {
            "train": {"start": "2020-01-01", "end": "2020-06-30"},
            "valid": {"start": "2020-07-01", "end": "2020-12-31"},
            "test": {"start": "2021-01-01", "end": "2021-06-30"},
        },
        "parallel": parallel,
    }


@pytest.mark.parametrize(
    ("parallel", "fragment"),
    [
        ({"backend": "dask"}, "backend 'dask' needs an address"),
        ({"backend": "ray", "n_jobs": 2}, "backend 'ray' needs an address"),
        ({"backend": "loky", "address": "tcp://10.0.0.1:8786"}, "address is only used by the dask and ray"),
        ({"backend": "spark", "address": "local"}, "parallel.backend: Input should be"),
        ({"backend": "dask", "address": "local", "n_jobs": 0}, "parallel.n_jobs"),
    ],
)
def test_bad_backend_settings_are_config_errors_naming_the_key(parallel: dict, fragment: str) -> None:
    from miner.config import config_from_dict

    with pytest.raises(ConfigError) as info:
        config_from_dict(with_parallel(parallel), "exp.yaml")
    message = str(info.value)
    assert message.startswith("exp.yaml: parallel") and fragment in message and "\n" not in message


def test_a_backend_whose_package_is_missing_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from miner.config import config_from_dict

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(
        ConfigError, match=r"needs ray, which is not installed: pip install 'factor-miner\[ray\]'"
    ):
        config_from_dict(with_parallel({"backend": "ray", "address": "auto"}), "exp.yaml")


def test_an_unreachable_scheduler_is_a_config_error() -> None:
    import dask

    panel = labelled_panel(small_market())
    spec = ParallelSpec(backend="dask", address="tcp://127.0.0.1:9", n_jobs=2)
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ConfigError, match="parallel.address: no Dask scheduler at tcp://127.0.0.1:9"),
    ):
        with scoring_workers(panel, spec):
            pass


# --- float32 storage --------------------------------------------------------------------------


def labelled_panel(market: MarketData) -> Panel:
    close = market.fields["close"]
    label = np.full_like(close, np.nan)
    label[:-2] = close[2:] / close[1:-1] - 1
    label.setflags(write=False)
    return Panel(market, label, slice(0, market.T))


def rounded_to_float32(market: MarketData) -> MarketData:
    """The market with every numeric field rounded to float32 and held as float64."""
    fields = {
        name: array if market.is_group(name) else array.astype(np.float32).astype(np.float64)
        for name, array in market.fields.items()
    }
    return MarketData(market.dates, market.instruments, fields, market.intraday, market.groups)


def test_float32_storage_scores_exactly_like_float64_data_rounded_to_float32(tmp_path: Path) -> None:
    market = small_market(t=80, n=30)
    wide = labelled_panel(market)
    narrow = wide.with_float32_fields()
    reference = Panel(rounded_to_float32(market), wide.label, wide.rows)
    mapped = narrow.save(tmp_path / "panel")
    spec = ScoringSpec(min_names=5)
    states = [scoring._state(handle, spec) for handle in (reference, narrow, mapped)]
    for formula in FORMULAS:
        expected, stored, loaded = (score_one(state, formula, 3, spec) for state in states)
        assert expected.valid and stored == expected and loaded == expected, formula
    assert sorted(narrow.data.fields) == ["sector"]  # group codes stay float64, exact
    assert all(a.dtype == np.float32 for a in narrow.float32_fields.values())
    wide.save(tmp_path / "wide")
    size = {p.relative_to(tmp_path).as_posix(): p.stat().st_size for p in tmp_path.glob("*/*.npy")}
    assert size["panel/float32.close.npy"] < 0.55 * size["wide/field.close.npy"]


def test_a_float32_field_read_is_a_fresh_read_only_float64_array() -> None:
    stored = {"close": np.array([[1.0, np.nan], [1 / 3, 2.0**30 + 1]], dtype=np.float32)}
    fields = panels.Float64Fields(stored)
    first, second = fields["close"], fields["close"]
    assert first.dtype == np.float64 and not first.flags.writeable and first is not second
    np.testing.assert_array_equal(first, [[1.0, np.nan], [np.float32(1 / 3), 2.0**30]])
    assert list(fields) == ["close"] and len(fields) == 1


def test_a_loky_worker_may_grow_by_its_cache_and_panel_without_being_taken_for_a_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from joblib.externals.loky import process_executor

    monkeypatch.setattr(process_executor, "_MAX_MEMORY_LEAK_SIZE", 300 << 20)
    panel = labelled_panel(small_market())
    scoring._state(panel, ScoringSpec(cache_bytes=2 << 30))
    assert process_executor._MAX_MEMORY_LEAK_SIZE >= (2 << 30) + panel.data.fields["close"].nbytes * 7

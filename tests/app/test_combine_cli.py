"""`miner combine` and composites in the library: the command fits, prints, logs to MLflow and
registers; a registered composite depends on its members and an update after a new day equals a
full recomputation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from evaluation import combine, forward_returns, metrics
from miner.lang import Evaluator
from miner.library import FactorLibrary
from miner.market.store import load_market
from miner.market.synthetic import synthetic_frames
from tests.cli_runner import assert_one_line_error, miner

DAILY, _ = synthetic_frames(n_instruments=40, n_days=220, seed=3, signal_strength=0.1)
DATES = np.sort(DAILY["date"].unique())
MEMBERS = {
    "rev5": "-rank(delta(close, 5))",
    "vol10": "ts_std(returns, 10)",
    "volume_trend": "ts_mean(volume, 5) / ts_mean(volume, 20)",
}
SPLITS = {
    "train": {"start": "2020-01-01", "end": "2020-05-29"},
    "valid": {"start": "2020-06-01", "end": "2020-07-31"},
    "test": {"start": "2020-08-03", "end": str(pd.Timestamp(DATES[-1]).date())},
}


def library_with(path: Path, last: int) -> FactorLibrary:
    """A library holding the bars of the first `last` dates and the member factors."""
    library = FactorLibrary(path)
    library.market_store.import_frame(DAILY[DAILY["date"] <= DATES[last - 1]], source="head")
    for factor_id, formula in MEMBERS.items():
        library.register_factor(factor_id, formula, category="classic")
    return library


def write_config(folder: Path, library: Path) -> Path:
    config = {
        "name": "combine_test",
        "data": {"source": "store", "path": str(library)},
        "splits": SPLITS,
        "fitness": {"min_names": 10},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}"},
    }
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_combine_fits_prints_logs_and_registers(tmp_path: Path) -> None:
    library_path = tmp_path / "lib.duckdb"
    library_with(library_path, len(DATES)).close()
    config = write_config(tmp_path, library_path)
    done = miner(
        "combine", "--config", str(config), "--factors", "rev5,vol10", "--factors", "volume_trend",
        "--method", "ridge", "--library", str(library_path), "--register", "combo",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "best member rev5" in done.stdout and "registered combo" in done.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("combine_test").experiment_id])
    assert run.data.params["method"] == "ridge" and run.data.params["label"] == combine.LABEL_PROCESSING
    for key in ("composite_test_rank_ic", "composite_valid_icir", "best_member_valid_rank_ic"):
        assert key in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"composite.txt", "weights.csv", "plots"} <= artifacts
    weights = pd.read_csv(client.download_artifacts(run.info.run_id, "weights.csv", str(tmp_path)))
    assert list(weights["member"]) == list(MEMBERS)

    with FactorLibrary(library_path, read_only=True) as library:
        record = library.info("combo")
        assert record["category"] == "composite"
        assert set(record["dependencies"]) == set(weights.loc[weights["weight"] != 0, "member"])
        stored = library.get_factor("combo").to_numpy()
        market = load_market(library_path)
    members = {fid: Evaluator(market).evaluate(formula) for fid, formula in MEMBERS.items()}
    fresh = Evaluator(market, extra=members).evaluate(record["formula"])
    np.testing.assert_array_equal(stored, fresh)
    reported = run.data.metrics["composite_test_rank_ic"]
    label = forward_returns(market.fields["close"], 1, 1)
    test_rows = slice(int(np.searchsorted(market.dates, np.datetime64(SPLITS["test"]["start"]))), len(DATES))
    direct = np.nanmean(metrics.rank_ic(fresh, label, 10, rows=test_rows)[test_rows])
    assert reported == pytest.approx(direct, abs=1e-9)


def test_a_registered_composite_updates_like_a_full_recomputation(tmp_path: Path) -> None:
    """Members and a composite over them are registered on the first dates; after one new day and
    an update, every stored composite value equals a fresh computation on the whole history."""
    split = len(DATES) - 1
    with library_with(tmp_path / "lib.duckdb", split) as library:
        weights = np.array([0.5, -0.3, 0.2])
        formula = combine.composite_formula(list(MEMBERS), weights)
        library.register_factor("combo", formula, category="composite")
        assert set(library.info("combo")["dependencies"]) == set(MEMBERS)
        library.market_store.import_frame(DAILY[DAILY["date"] == DATES[split]], source="one day")
        updated = library.update()
        assert [r.factor_id for r in updated][-1] == "combo"
        stored = library.get_factor("combo").to_numpy()
        market = load_market(library.market_store)
    members = {fid: Evaluator(market).evaluate(f) for fid, f in MEMBERS.items()}
    full = Evaluator(market, extra=members).evaluate(formula)
    assert stored.shape == full.shape == (len(DATES), 40)
    np.testing.assert_array_equal(stored, full)
    assert np.isfinite(stored[-1]).sum() > 30


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (("--factors", "rev5", "--zoo", "classic"), "name the members one way"),
        ((), "name the members one way"),
        (("--factors", "nope"), "no factor 'nope' in"),
        (("--category", "magic"), "no factor in"),
        (("--zoo", "nope"), "unknown zoo set 'nope'"),
    ],
)
def test_bad_selections_are_one_line_errors(
    tmp_path: Path, arguments: tuple[str, ...], fragment: str
) -> None:
    library_path = tmp_path / "lib.duckdb"
    library_with(library_path, len(DATES)).close()
    config = write_config(tmp_path, library_path)
    done = miner(
        "combine", "--config", str(config), "--library", str(library_path), "--no-tracking", *arguments
    )
    assert_one_line_error(done, fragment)

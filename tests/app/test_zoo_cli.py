"""`miner zoo list | report` and `miner library register --zoo`: exact TSV, one-line errors,
report numbers against a pandas + scipy computation, registration that skips what is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from miner.library import FactorLibrary
from miner.market.synthetic import synthetic_frames
from tests.cli_runner import assert_one_line_error, miner

CONFIG = """\
name: zoo_report
label: {price: close, horizon: 1, delay: 1}
splits:
  train: {start: 2020-01-01, end: 2020-06-30}
  valid: {start: 2020-07-01, end: 2020-10-30}
  test: {start: 2020-11-02, end: 2021-02-12}
"""


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    daily, _ = synthetic_frames(n_instruments=30, n_days=300, seed=14)
    path = tmp_path_factory.mktemp("zoo") / "daily.parquet"
    daily.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def config(bars: Path) -> Path:
    path = bars.parent / "zoo_report.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def library(bars: Path, tmp_path: Path) -> Path:
    """A factor library holding the bars as its market."""
    path = tmp_path / "factors.duckdb"
    assert miner("data", "import", str(bars), "--store", str(path)).returncode == 0
    return path


def test_list_tsv_is_one_line_per_factor_and_nothing_else() -> None:
    done = miner("zoo", "list", "classic", "--format", "tsv")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 14  # 13 factors and the final newline
    assert lines[0] == "rev_5d\treversal\t-pct_change(close, 5)"
    assert lines[2] == "mom_12_1\tmomentum\tdelay(close, 21) / delay(close, 252) - 1"
    assert all(len(line.split("\t")) == 3 for line in lines[:-1])


def test_list_tsv_keeps_qlibs_names_for_alpha158() -> None:
    done = miner("zoo", "list", "alpha158", "--format", "tsv")
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert len(rows) == 158
    by_id = {factor_id: (category, formula) for factor_id, category, formula in rows}
    assert by_id["KMID"] == ("kbar", "(close - open) / open")
    assert by_id["ROC5"] == ("trend", "delay(close, 5) / close")
    assert by_id["RSV10"][1] == "(close - ts_min(low, 10)) / (ts_max(high, 10) - ts_min(low, 10) + 1e-12)"
    assert by_id["CNTP20"][1] == "ts_mean(close > delay(close, 1), 20)"


def test_list_without_a_set_prefixes_every_id_with_its_set() -> None:
    rows = [line.split("\t") for line in miner("zoo", "list", "--format", "tsv").stdout.splitlines()]
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)) == 158 + 100 + 13
    assert {"alpha158_KMID", "alpha101_alpha001", "classic_rev_5d"} <= set(ids)
    assert all(i.split("_", 1)[0] in ("alpha158", "alpha101", "classic") for i in ids)


def test_list_table_shows_ids_categories_and_formulas() -> None:
    done = miner("zoo", "list", "classic")
    assert done.returncode == 0
    assert "rev_5d" in done.stdout and "reversal" in done.stdout and "pct_change(close, 5)" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["zoo", "list", "alpha999"],
        ["zoo", "list", "alpha999", "--format", "tsv"],
        ["zoo", "report", "alpha999", "--data", "DATA", "--config", "CONFIG"],
        ["library", "register", "--zoo", "alpha999", "--library", "LIBRARY"],
    ],
)
def test_an_unknown_set_is_one_line_naming_the_known_ones(
    args: list[str], bars: Path, config: Path, tmp_path: Path
) -> None:
    where = {"DATA": str(bars), "CONFIG": str(config), "LIBRARY": str(tmp_path / "lib.duckdb")}
    done = miner(*(where.get(a, a) for a in args))
    assert_one_line_error(done, "unknown zoo set 'alpha999' (known: alpha101, alpha158, classic)")


def reference_rank_ic(bars: Path, start: str, end: str, embargo: int) -> tuple[float, float]:
    """Mean and ICIR of the daily Spearman IC of -5-day return against the next-day return a day
    ahead, over the segment's dates but its last `embargo`, on dates with 10 names or more."""
    close = pd.read_parquet(bars).pivot(index="date", columns="instrument", values="close")
    factor = -(close / close.shift(5) - 1)
    label = close.shift(-2) / close.shift(-1) - 1
    dates = close.index[(close.index >= start) & (close.index <= end)][:-embargo]
    ics = []
    for day in dates:
        pair = pd.concat([factor.loc[day], label.loc[day]], axis=1).dropna()
        if len(pair) >= 10:
            ics.append(scipy.stats.spearmanr(pair.iloc[:, 0], pair.iloc[:, 1]).statistic)
    return float(np.mean(ics)), float(np.mean(ics) / np.std(ics, ddof=1))


def test_report_matches_a_pandas_and_scipy_computation(bars: Path, config: Path, tmp_path: Path) -> None:
    output = tmp_path / "report.parquet"
    done = miner(
        "zoo", "report", "classic", "--data", str(bars), "--config", str(config), "--output", str(output)
    )
    assert done.returncode == 0, done.stderr
    assert "rev_5d" in done.stdout and "wrote 13 factors" in done.stdout
    report = pd.read_parquet(output).set_index("id")
    assert list(report.index[:2]) == ["rev_5d", "rev_21d"]
    for segment in ("train", "valid", "test"):
        assert {f"{segment}_rank_ic", f"{segment}_icir", f"{segment}_turnover"} <= set(report.columns)
    rank_ic, icir = reference_rank_ic(bars, "2020-01-01", "2020-06-30", embargo=2)
    assert report.loc["rev_5d", "train_rank_ic"] == pytest.approx(rank_ic, rel=1e-9)
    assert report.loc["rev_5d", "train_icir"] == pytest.approx(icir, rel=1e-9)
    assert report.loc["rev_5d", "valid_rank_ic"] > 0.02  # the synthetic market's planted reversal
    # high_52w and mom_12_1 need 252 rows of history: NaN on train, not an error
    assert report["error"].eq("").all()


def test_report_lists_factors_the_data_cannot_evaluate(bars: Path, config: Path) -> None:
    bare = pd.read_parquet(bars).drop(columns=["sector"])
    path = bars.parent / "no_sector.parquet"
    bare.to_parquet(path)
    done = miner("zoo", "report", "alpha101", "--data", str(path), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "not evaluated: alpha048: 'sector' is not a group label" in done.stdout


def test_register_a_set_then_skip_what_is_registered(bars: Path, library: Path) -> None:
    first = miner("library", "register", "--zoo", "classic", "--library", str(library))
    assert first.returncode == 0, first.stderr
    assert "zoo set classic: 13 registered, 0 skipped" in first.stdout
    with FactorLibrary(library, read_only=True) as lib:
        factors = lib.list_factors().set_index("factor_id")
        assert len(factors) == 13
        assert factors.loc["classic_rev_5d", "category"] == "reversal"
        assert factors.loc["classic_rev_5d", "source"].startswith("Lehmann (1990)")
        values = lib.get_factor("classic_rev_5d")
    close = pd.read_parquet(bars).pivot(index="date", columns="instrument", values="close")
    expected = -(close / close.shift(5) - 1)
    np.testing.assert_allclose(values.to_numpy(), expected.reindex_like(values).to_numpy(), rtol=1e-12)

    again = miner("library", "register", "--zoo", "classic", "--prefix", "", "--library", str(library))
    assert again.returncode == 0, again.stderr
    assert "skipped rev_5d: formula already registered as 'classic_rev_5d'" in again.stdout
    assert "zoo set classic: 0 registered, 13 skipped" in again.stdout


def test_register_refuses_an_id_taken_by_another_formula(library: Path) -> None:
    taken = miner("library", "register", "classic_rev_5d", "rank(close)", "--library", str(library))
    assert taken.returncode == 0, taken.stderr
    done = miner("library", "register", "--zoo", "classic", "--library", str(library))
    assert_one_line_error(done, "id 'classic_rev_5d' is already registered with another formula")
    with FactorLibrary(library, read_only=True) as lib:
        assert list(lib.list_factors()["factor_id"]) == ["classic_rev_5d"]  # nothing written


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["rev", "rank(close)", "--zoo", "classic"], "either FACTOR_ID FORMULA or --zoo SET"),
        ([], "register needs FACTOR_ID and FORMULA (or --zoo SET)"),
        (["rev", "rank(close)", "--prefix", "x_"], "--prefix is for --zoo SET"),
    ],
)
def test_register_arguments_are_checked(args: list[str], fragment: str, tmp_path: Path) -> None:
    done = miner("library", "register", *args, "--library", str(tmp_path / "lib.duckdb"))
    assert_one_line_error(done, fragment)

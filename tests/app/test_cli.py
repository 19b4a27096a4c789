"""The `miner` command: user errors are one line and exit 1, no traceback; docs stay current."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from miner.app.reference import operator_rows, operator_table_markdown
from miner.config import load_config
from miner.errors import ConfigError
from miner.market.store import load_market
from miner.market.synthetic import synthetic_frames
from tests.cli_runner import assert_one_line_error, miner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def daily_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    daily, _ = synthetic_frames(n_instruments=30, n_days=120, seed=4)
    path = tmp_path_factory.mktemp("bars") / "daily.parquet"
    daily.to_parquet(path)
    return path


def test_readme_operator_table_is_generated_from_the_registry() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- operators:start -->\n", 1)[1].split("\n<!-- operators:end -->", 1)[0]
    assert table.strip() == operator_table_markdown(operator_rows()).strip()


@pytest.mark.parametrize("name", ["quickstart", "daily_us", "drip_stone", "drip_stone_cn"])
def test_shipped_experiment_configs_are_valid(name: str) -> None:
    assert load_config(ROOT / "experiments" / f"{name}.yaml").name == name


def test_eval_writes_values_equal_to_a_pandas_computation(daily_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "values.parquet"
    done = miner("eval", "--data", str(daily_file), "--output", str(output), "--", "-1 * delta(close, 2)")
    assert done.returncode == 0, done.stderr
    assert "rank_ic" in done.stdout
    got = pd.read_parquet(output).pivot(index="date", columns="instrument", values="value")
    bars = pd.read_parquet(daily_file)
    close = bars.pivot(index="date", columns="instrument", values="close")
    expected = (-(close - close.shift(2))).stack().dropna()
    got_long = got.stack().dropna()
    pd.testing.assert_series_equal(
        got_long.sort_index(), expected.reindex(got_long.index).sort_index(), check_names=False, rtol=1e-12
    )
    assert len(got_long) == len(expected)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["eval", "rank(close", "--data", "DAILY"], "cannot parse"),
        (["eval", "ts_mean(close, -2)", "--data", "DAILY"], "must be a positive integer"),
        (["eval", "rank(nope)", "--data", "DAILY"], "unknown field 'nope'"),
        (["eval", "rank(close)", "--data", "missing.parquet"], "missing.parquet: no such file"),
        (
            ["eval", "rank(close)", "--data", "DAILY", "--output", "x.txt"],
            "--output must end in .parquet or .csv",
        ),
        (["mine", "absent.yaml"], "absent.yaml: no such config file"),
        (
            ["data", "import", "DAILY", "--kind", "weekly", "--store", "s.duckdb"],
            "unknown import kind 'weekly'",
        ),
        (["data", "import", "DAILY", "--column", "oops", "--store", "s.duckdb"], "expected SOURCE=TARGET"),
        (
            ["promote", "0123456789abcdef", "--all", "--tracking-uri", "sqlite:///m.db"],
            "no MLflow tracking database",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    daily_file: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    done = miner(*[str(daily_file) if a == "DAILY" else a for a in args], cwd=tmp_path)
    assert_one_line_error(done, fragment)


def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        (ROOT / "experiments" / "quickstart.yaml").read_text().replace("population:", "populaton:")
    )
    assert_one_line_error(miner("mine", str(config), cwd=tmp_path), "bad.yaml: gp.populaton: unknown key")


def test_debug_lets_the_error_through_with_its_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        miner("--debug", "mine", "absent.yaml", cwd=tmp_path)


def test_bad_rows_leave_the_store_unchanged(daily_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    assert miner("data", "import", str(daily_file), "--store", str(store)).returncode == 0
    before = load_market(store).fingerprint
    bad = pd.read_parquet(daily_file)
    bad.loc[5, "close"] = -1.0
    bad_path = tmp_path / "bad.parquet"
    bad.to_parquet(bad_path)
    assert_one_line_error(miner("data", "import", str(bad_path), "--store", str(store)), "bad.parquet")
    assert load_market(store).fingerprint == before

"""Experiment configs: every bad case is one ConfigError naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from miner.config import config_from_dict, load_config
from miner.errors import ConfigError
from miner.market.synthetic import synthetic_market
from miner.search.splits import make_segments

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"


def base() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


def with_change(path: str, value: object) -> dict:
    raw = base()
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return raw


def test_quickstart_config_is_valid() -> None:
    config = load_config(QUICKSTART)
    assert config.name == "quickstart" and config.embargo == 2


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("gp.populaton", 10, "gp.populaton: unknown key"),
        ("gp.population", "many", "gp.population: Input should be a valid integer"),
        ("gp.population", 2, "gp.population: Input should be greater than or equal to 4"),
        ("gp.crossover", 1.5, "gp.crossover"),
        ("gp.windows", [0, 5], "gp.windows: windows must be a non-empty list of positive integers"),
        ("gp.init_depth", [4, 9], "gp: init_depth"),
        ("splits.valid", {"start": "2021-06-01", "end": "2022-02-28"}, "splits: splits overlap"),
        (
            "splits.train",
            {"start": "2021-06-30", "end": "2020-01-01"},
            "splits.train: end 2020-01-01 is before",
        ),
        ("operators.include", ["ts_foo"], "operators.include.0: unknown operator 'ts_foo'"),
        ("operators.families", ["magic"], "operators.families.0: unknown family 'magic'"),
        ("parallel.backend", "mpi", "parallel.backend"),
        ("data.source", "store", "data: data.path is required"),
        ("name", "has space", "name: String should match pattern"),
        ("fitness.objective", "sharpe", "fitness.objective"),
    ],
)
def test_each_bad_config_names_the_file_and_key(
    tmp_path: Path, path: str, value: object, fragment: str
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(with_change(path, value)))
    with pytest.raises(ConfigError) as info:
        load_config(file)
    message = str(info.value)
    assert message.startswith(f"{file}: ") and fragment in message and "\n" not in message


def test_malformed_yaml_and_missing_file(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("name: x\ngp: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line"):
        load_config(file)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    file.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(file)


def test_nsga2_needs_a_population_divisible_by_four() -> None:
    raw = with_change("fitness.objective", "nsga2")
    raw["gp"]["population"] = 30
    with pytest.raises(ConfigError, match="multiple of 4"):
        config_from_dict(raw, "x.yaml")


def test_a_split_outside_the_data_is_a_config_error() -> None:
    market = synthetic_market(n_instruments=20, n_days=100)
    config = config_from_dict(base())
    with pytest.raises(
        ConfigError, match=r"q.yaml: splits.train: 2020-01-01..2021-06-30 lies outside the data"
    ):
        make_segments(market.dates, config.splits, config.embargo, "q.yaml")


def test_segments_leave_an_embargo_between_label_windows() -> None:
    market = synthetic_market(n_instruments=20, n_days=750)
    config = config_from_dict(base())
    segments = make_segments(market.dates, config.splits, config.embargo)
    reach = config.label.delay + config.label.horizon
    for name in ("train", "valid"):
        rows = getattr(segments, name)
        last_price_read = market.dates[rows.stop - 1 + reach]
        assert last_price_read <= np.datetime64(getattr(config.splits, name).end)
    assert market.dates[segments.valid.start] >= np.datetime64(config.splits.valid.start)

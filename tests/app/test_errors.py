"""Hostile or unlucky input on the command line: one line naming what is at fault, never a
traceback, and no work done before the input is known to be usable."""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from miner.market.store import import_file
from miner.market.synthetic import synthetic_frames
from tests.cli_runner import assert_one_line_error, miner
from tests.search.test_evolution import small


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    daily, _ = synthetic_frames(n_instruments=20, n_days=100, seed=3)
    bars = folder / "daily.parquet"
    daily.to_parquet(bars)
    store = folder / "store.duckdb"
    import_file(bars, store=store)
    image = folder / "image.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    binary = folder / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)) * 8)
    return {"bars": bars, "store": store, "image": image, "binary": binary, "folder": folder}


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("ts_mean(close, 99999999999999999999)", "window argument 'd' of ts_mean is 1e+20: too large"),
        ("ts_mean(close, 1e308)", "window argument 'd' of ts_mean is 1e+308: too large"),
        ("ts_mean(close, 10**9)", "window argument 'd' of ts_mean is 1000000000: too large"),
        ("delay(close, 10**6)", "lag argument 'd' of delay is 1000000: too large"),
        ("ts_mean(close, 10**400)", "the numeric expression is not a finite number"),
        ("close + " + "9" * 400, "number is too large"),
        ("ts_fft_band(close, 1000000, 2, 5)", "window argument 'd' of ts_fft_band is 1000000: too large"),
        ("ts_fft_band(close, 100000)", "ts_fft_band: window 100000 needs about"),
        ("close[1]", "Subscript is not part of the formula language in 'close[1]'"),
    ],
)
def test_hostile_formulas_are_one_line(files, formula: str, fragment: str) -> None:
    assert_one_line_error(miner("eval", formula, "--data", str(files["bars"])), fragment)


def test_long_windows_on_a_short_panel_still_evaluate(files, tmp_path) -> None:
    """A 250-row window on 100 rows covers the rows there are (a young market in the library)."""
    for formula in ("ts_mean(close, 250)", "ts_fft_band(close, 250)", "ts_mean(close, 2 * 125)"):
        done = miner("eval", formula, "--data", str(files["bars"]), "--output", str(tmp_path / "v.parquet"))
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("horizons", ["abc", "0", "-5", "1,,5"])
def test_bad_horizons_are_one_line(files, horizons: str) -> None:
    done = miner("eval", "rank(close)", "--data", str(files["bars"]), f"--horizons={horizons}")
    assert_one_line_error(done, "expected positive whole numbers separated by commas")


def test_a_horizon_beyond_the_data_is_one_line(files) -> None:
    done = miner("eval", "rank(close)", "--data", str(files["bars"]), "--horizons", "1,5000")
    assert_one_line_error(done, "--horizons 5000: ")


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("/nonexistent/dir/x.parquet", "--output folder /nonexistent/dir does not exist"),
        ("BARS/x.csv", "is not a folder"),
        ("/proc/x.parquet", "--output cannot be written"),
        ("FOLDER", "--output must end in .parquet or .csv"),
    ],
)
def test_an_unwritable_output_is_refused_before_any_work(files, output: str, fragment: str) -> None:
    """The formula reads a field the data lacks: the output is checked before it is evaluated."""
    target = output.replace("BARS", str(files["bars"])).replace("FOLDER", str(files["folder"]))
    done = miner("eval", "rank(no_such_field)", "--data", str(files["bars"]), "--output", target)
    assert_one_line_error(done, fragment)


def test_unreadable_inputs_are_one_line(files, tmp_path) -> None:
    assert_one_line_error(miner("eval", "rank(close)", "--data", str(files["image"])), "image.csv")
    assert_one_line_error(miner("mine", str(tmp_path)), f"{tmp_path}: is a folder, not a config file")
    assert_one_line_error(miner("mine", str(files["binary"])), "binary.yaml: not a text file")


def merged(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in change.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


CONFIG_ERRORS = [
    (
        {"data": {"source": "store", "path": "absent.duckdb"}},
        "data.path: market store absent.duckdb does not exist",
    ),
    (
        {"data": {"source": "file", "path": "absent.parquet"}},
        "data.path: bar file absent.parquet does not exist",
    ),
    ({"data": {"source": "store", "path": "BARS"}}, "data: "),
    ({"data": {"source": "store", "path": "STORE", "instruments": ["NOPE"]}}, "data: market store"),
    ({"data": {"instruments": ["NOPE"]}}, "data: select: unknown instrument(s) NOPE"),
    ({"data": {"source": "store", "path": "STORE", "minute": True}}, "data: market store"),
    ({"label": {"price": "nope"}}, "label.price: 'nope' is not a numeric field"),
    ({"gp": {"fields": ["close", "nope"]}}, "gp.fields: 'nope' is not a numeric field"),
    ({"gp": {"terminals": ["rank(nope"]}}, "gp.terminals.0: cannot parse"),
    ({"gp": {"terminals": ["rank(nope)"]}}, "gp.terminals.0: unknown field 'nope'"),
    ({"gp": {"terminals": ["fft_band(volume, 2, 5)"]}}, "gp.terminals.0: 'volume' is not an intraday field"),
    ({"gp": {"windows": [5, 10**8]}}, "gp.windows: 100000000 is longer than any formula may use"),
    (
        {"operators": {"families": ["robust"], "exclude": ["ts_mad_despike", "cs_mad_winsorize"]}},
        "operators: no enabled operator can be built",
    ),
    ({"library": {"path": "STORE"}}, "library.path: "),
    ({"checkpoint_dir": "/proc/nope"}, "checkpoint_dir: cannot write checkpoints to /proc/nope"),
]


@pytest.mark.parametrize(("change", "fragment"), CONFIG_ERRORS)
def test_config_errors_name_the_file_and_the_key(files, tmp_path, change: dict, fragment: str) -> None:
    raw = merged(small().model_dump(mode="json"), change)
    text = yaml.safe_dump(raw).replace("BARS", str(files["bars"])).replace("STORE", str(files["store"]))
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    done = miner("mine", str(config), "--no-tracking", cwd=tmp_path)
    assert_one_line_error(done, f"error: {config}: {fragment}")
    assert "gen 0" not in done.stdout


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="needs ray to be absent")
def test_markup_like_text_in_messages_is_printed_as_is(tmp_path) -> None:
    raw = merged(small().model_dump(mode="json"), {"parallel": {"backend": "ray", "address": "local"}})
    config = tmp_path / "ray.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert_one_line_error(miner("mine", str(config), cwd=tmp_path), "pip install 'factor-miner[ray]'")


def test_an_unreadable_config_is_one_line(tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    config = tmp_path / "secret.yaml"
    config.write_text("name: x\n")
    config.chmod(0)
    assert_one_line_error(miner("mine", str(config)), "secret.yaml: cannot read it")

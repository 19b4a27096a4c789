"""The zoo's loader: shipped sets, one-line errors naming the set and entry, and light loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from miner.errors import ConfigError
from miner.lang import canonical, parse
from miner.zoo import ZooFactor, load_zoo, loader, prefixed, zoo_names

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_sets_are_listed() -> None:
    assert {"classic"} <= set(zoo_names())
    assert zoo_names() == sorted(zoo_names())


@pytest.mark.parametrize("name", zoo_names())
def test_every_entry_is_complete_and_parses(name: str) -> None:
    factors = load_zoo(name)
    assert factors and all(isinstance(f, ZooFactor) for f in factors)
    assert len({f.id for f in factors}) == len(factors)
    for factor in factors:
        assert factor.category and factor.source, factor.id
        parse(factor.formula)


def test_classic_factors_read_as_written() -> None:
    by_id = {f.id: f for f in load_zoo("classic")}
    rev = by_id["rev_5d"]
    assert canonical(rev.formula) == canonical("-pct_change(close, 5)")
    assert rev.category == "reversal" and rev.source.startswith("Lehmann (1990)")
    assert canonical(by_id["mom_12_1"].formula) == canonical("delay(close, 21) / delay(close, 252) - 1")


def test_loading_returns_fresh_lists_of_frozen_factors() -> None:
    first = load_zoo("classic")
    first.clear()
    assert load_zoo("classic")
    with pytest.raises(AttributeError):
        load_zoo("classic")[0].id = "x"  # type: ignore[misc]


def test_prefixed_ids() -> None:
    ids = [f.id for f in prefixed(load_zoo("classic"), "classic_")]
    assert ids[0] == "classic_rev_5d" and all(i.startswith("classic_") for i in ids)


def test_an_unknown_set_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown zoo set 'alpha999' \(known: .*classic"):
        load_zoo("alpha999")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("factors: [", "zoo set 'bad': not valid YAML"),
        ("name: bad\n", "expected a mapping with a 'factors' list"),
        ("factors: []\nversion: 2\n", "unknown key 'version'"),
        ("factors:\n  - id: a\n    category: c\n", "factors.0: formula is required"),
        (
            "factors:\n  - id: 1a\n    formula: close\n    category: c\n",
            "factors.0: id '1a' is not an identifier",
        ),
        ("factors:\n  - id: a\n    formula: 3\n    category: c\n", "factors.0: formula must be a string"),
        (
            "factors:\n  - {id: a, formula: close, category: c, weight: 2}\n",
            "factors.0: unknown key 'weight'",
        ),
        (
            "factors:\n  - {id: a, formula: close, category: c}\n  - {id: a, formula: open, category: c}\n",
            "factors.1: id 'a' appears twice",
        ),
    ],
)
def test_a_malformed_set_is_one_error_naming_the_set_and_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragment: str
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.setattr(loader, "_set_files", lambda: {"bad": tmp_path / "bad.yaml"})
    loader._load.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"^zoo set 'bad'") as error:
            load_zoo("bad")
        assert fragment in str(error.value)
    finally:
        loader._load.cache_clear()


def test_an_entry_without_source_takes_the_sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "source: the book\nfactors:\n  - {id: a, formula: 'rank(\n      close)', category: c}\n"
    (tmp_path / "mine.yaml").write_text(text)
    monkeypatch.setattr(loader, "_set_files", lambda: {"mine": tmp_path / "mine.yaml"})
    loader._load.cache_clear()
    try:
        assert load_zoo("mine") == [ZooFactor("a", "rank( close)", "c", "the book")]
    finally:
        loader._load.cache_clear()


def test_loading_every_set_imports_no_kernels() -> None:
    code = (
        "import sys; from miner.zoo import load_zoo, zoo_names; [load_zoo(n) for n in zoo_names()]; "
        "print(' '.join(m for m in ('numba', 'operators', 'miner.lang') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == ""

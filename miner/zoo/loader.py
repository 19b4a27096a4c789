"""Reading the zoo's YAML sets: one `ZooFactor` per entry, checked, with one-line errors."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

import yaml

from miner.errors import ConfigError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REQUIRED = ("id", "formula", "category")
_OPTIONAL = ("source", "description")
_SET_KEYS = {"name", "source", "description", "factors"}


@dataclass(frozen=True)
class ZooFactor:
    """One factor of a set: its id, its formula in the language, a category and where it comes from."""

    id: str
    formula: str
    category: str
    source: str
    description: str = ""


def _set_files() -> dict[str, Traversable]:
    folder = resources.files(__package__).joinpath("sets")
    return {
        entry.name.removesuffix(".yaml"): entry for entry in folder.iterdir() if entry.name.endswith(".yaml")
    }


def zoo_names() -> list[str]:
    """The names of the shipped sets, sorted."""
    return sorted(_set_files())


def load_zoo(name: str) -> list[ZooFactor]:
    """The factors of the set `name`, in the file's order; a `ConfigError` when there is no such set."""
    return list(_load(name))


def default_prefix(name: str) -> str:
    """What goes before the ids of set `name` where sets meet (listing them all, a library): ``name_``."""
    return f"{name}_"


def prefixed(factors: list[ZooFactor], prefix: str) -> list[ZooFactor]:
    """The factors with `prefix` put before each id (e.g. ``alpha158_`` + ``KMID``)."""
    return [dataclasses.replace(factor, id=f"{prefix}{factor.id}") for factor in factors]


@cache
def _load(name: str) -> tuple[ZooFactor, ...]:
    files = _set_files()
    if name not in files:
        raise ConfigError(f"unknown zoo set {name!r} (known: {', '.join(sorted(files))})")
    where = f"zoo set {name!r}"
    try:
        raw = yaml.safe_load(files[name].read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = "" if mark is None else f" at line {mark.line + 1}"
        raise ConfigError(f"{where}: not valid YAML{line}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("factors"), list):
        raise ConfigError(f"{where}: expected a mapping with a 'factors' list")
    unknown = set(raw) - _SET_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    set_source = _text(raw, "source", where)
    factors = tuple(
        _factor(entry, set_source, f"{where}: factors.{i}") for i, entry in enumerate(raw["factors"])
    )
    seen: set[str] = set()
    for i, factor in enumerate(factors):
        if factor.id in seen:
            raise ConfigError(f"{where}: factors.{i}: id {factor.id!r} appears twice")
        seen.add(factor.id)
    return factors


def _factor(entry: object, set_source: str, where: str) -> ZooFactor:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(_REQUIRED)}")
    unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    values = {key: _text(entry, key, where) for key in (*_REQUIRED, *_OPTIONAL)}
    for key in _REQUIRED:
        if not values[key]:
            raise ConfigError(f"{where}: {key} is required")
    if not _IDENTIFIER.match(values["id"]):
        raise ConfigError(f"{where}: id {values['id']!r} is not an identifier")
    return ZooFactor(
        id=values["id"],
        formula=" ".join(values["formula"].split()),
        category=values["category"],
        source=values["source"] or set_source,
        description=values["description"],
    )


def _text(mapping: dict, key: str, where: str) -> str:
    """mapping[key] as a string ('' when absent); a `ConfigError` when it is not a string."""
    value = mapping.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {type(value).__name__}")
    return value.strip()

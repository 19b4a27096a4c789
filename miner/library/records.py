"""Rows of the library's tables as Python values: factor records, update results, check reports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from miner.lang import Node, canonicalize, parse

STATUSES = ("ok", "stale", "computing")


@dataclass(frozen=True)
class FactorRecord:
    """One row of factor_metadata."""

    factor_id: str
    formula: str
    canonical: str
    lookback: int
    dependencies: tuple[str, ...]
    status: str
    stale_from: dt.date | None
    computed_through: dt.date | None
    last_updated: dt.datetime
    created_at: dt.datetime
    description: str
    category: str
    source: str | None
    metrics: dict | None

    @property
    def tree(self) -> Node:
        return canonicalize(parse(self.formula))


RECORD_COLUMNS = (
    "factor_id, formula, canonical, lookback, dependencies, status, stale_from, computed_through, "
    "last_updated, created_at, description, category, source, metrics"
)


def record_from_row(row: Sequence[Any]) -> FactorRecord:
    (factor_id, formula, canonical_text, look, deps, status, stale_from, through, last, created, description,
     category, source, metrics) = row  # fmt: skip
    return FactorRecord(
        factor_id, formula, canonical_text, int(look), tuple(json.loads(deps)), status, stale_from, through,
        last, created, description, category, source, None if metrics is None else json.loads(metrics),
    )  # fmt: skip


@dataclass(frozen=True)
class UpdateResult:
    """What `update` did to one factor: the dates it (re)wrote and how many values."""

    factor_id: str
    first_date: dt.date
    last_date: dt.date
    values: int


@dataclass
class CheckReport:
    """Integrity findings: `problems` make the library inconsistent, `notes` are for information."""

    factors: int = 0
    sampled_dates: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

"""Which stored values are due for recomputation: market history re-imported after a factor was
computed, or a dependency that is stale."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from miner.lang import reads_intraday
from miner.library.graph import dependency_order
from miner.library.records import FactorRecord


def effective_stale(
    records: Mapping[str, FactorRecord], changes: Sequence[tuple[str, dt.date, dt.datetime]]
) -> dict[str, dt.date]:
    """factor id -> first date to recompute: the stored stale_from, imports logged after the
    factor's snapshot that touched dates it has computed, and its dependencies' stale dates."""
    stale: dict[str, dt.date] = {}
    for record in records.values():
        marks = [] if record.stale_from is None else [record.stale_from]
        if record.computed_through is not None:
            intraday = reads_intraday(record.tree)
            marks += [
                first
                for kind, first, imported_at in changes
                if imported_at > record.last_updated
                and first <= record.computed_through
                and (kind == "daily" or intraday)
            ]
        if marks:
            stale[record.factor_id] = min(marks)
    for fid in dependency_order({fid: r.dependencies for fid, r in records.items()}):
        record = records[fid]
        inherited = [stale[dep] for dep in record.dependencies if dep in stale]
        inherited = [day for day in inherited if record.computed_through and day <= record.computed_through]
        if inherited:
            stale[fid] = min([*inherited, *([stale[fid]] if fid in stale else [])])
    return stale


def status_of(record: FactorRecord, stale: Mapping[str, dt.date]) -> str:
    if record.status == "ok" and record.factor_id in stale:
        return "stale"
    return record.status

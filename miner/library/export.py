"""Export of stored values to Parquet."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from miner.errors import LibraryError
from miner.library.market_view import as_list

if TYPE_CHECKING:
    from miner.library.library import FactorLibrary


def export(lib: FactorLibrary, path: str | Path, factor_ids: Iterable[str] | None = None) -> list[Path]:
    """Write values to Parquet: one file (a path ending in .parquet; factor_id, date, instrument,
    value) or, for a directory, ``<factor_id>.parquet`` (date, instrument, value) per factor plus
    ``factor_metadata.parquet``. Returns the files written. One read-only operation."""
    with lib._operation():
        return _export(lib, Path(path), factor_ids)


def _export(lib: FactorLibrary, target: Path, factor_ids: Iterable[str] | None) -> list[Path]:
    records = lib._records()
    chosen = sorted(records) if factor_ids is None else sorted(set(as_list(factor_ids)))
    for fid in chosen:
        if fid not in records:
            raise lib._unknown(fid, records)
    listed = ", ".join(f"'{fid}'" for fid in chosen) or "NULL"
    if target.suffix == ".parquet":
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(
            lib,
            f"SELECT factor_id, date, instrument, value FROM factor_values WHERE factor_id IN ({listed}) "
            "ORDER BY factor_id, date, instrument",
            target,
        )
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for fid in chosen:
        file = target / f"{fid}.parquet"
        _copy(
            lib,
            f"SELECT date, instrument, value FROM factor_values WHERE factor_id = '{fid}' "
            "ORDER BY date, instrument",
            file,
        )
        written.append(file)
    metadata = target / "factor_metadata.parquet"
    _copy(lib, f"SELECT * FROM factor_metadata WHERE factor_id IN ({listed}) ORDER BY factor_id", metadata)
    return [*written, metadata]


def _copy(lib: FactorLibrary, query: str, file: Path) -> None:
    """COPY a query to Parquet; factor ids in `query` are validated identifiers."""
    quoted = str(file).replace("'", "''")
    try:
        lib._con.execute(f"COPY ({query}) TO '{quoted}' (FORMAT parquet, COMPRESSION zstd)")
    except duckdb.Error as exc:
        raise LibraryError(f"cannot write {file}: {exc}") from None

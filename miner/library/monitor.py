"""The monitor: rolling IC, rank IC, ICIR, turnover and coverage of a stored factor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluation import forward_returns
from evaluation.metrics import ic, rank_autocorrelation, rank_ic
from miner.errors import LibraryError
from miner.library import DEFAULT_MONITOR_WINDOW
from miner.library.market_view import day_of
from miner.library.schema import write_transaction
from miner.market.rules import label_mask

if TYPE_CHECKING:
    from miner.library.library import FactorLibrary


def monitor(
    lib: FactorLibrary, factor_id: str, window: int = DEFAULT_MONITOR_WINDOW, horizon: int = 1, delay: int = 1
) -> pd.DataFrame:
    """Per date and rolling over `window` dates: IC, rank IC, ICIR, turnover, coverage.

    Against the forward return ``close[t+delay+horizon] / close[t+delay] - 1`` (NaN where the
    entry bar is not tradable when the market store has trading rules). Per-date
    columns: ic, rank_ic (names valid in both, at least 10), turnover (1 - rank autocorrelation
    with the previous date), coverage (share of the names with a close that have a value).
    Rolling columns (at least max(2, window // 2) finite dates): ic_mean, rank_ic_mean, icir and
    rank_icir (mean / std, ddof 1), turnover_mean, coverage_mean. A writable library also
    stores the frame in factor_monitor (replacing this factor's rows for this window) in a short
    write after the computation; a read-only one computes it without storing it.
    """
    if int(window) != window or window < 2:
        raise LibraryError(f"monitor window must be an integer >= 2, got {window!r}")
    with lib._operation(), lib._market() as market:
        record = lib._record_of(factor_id)
        if record.computed_through is None:
            raise LibraryError(f"factor {factor_id!r} has no values yet")
        full = market.window(0, market.dates.size)
        stop = int(np.searchsorted(market.dates, day_of(record.computed_through), "right"))
        factor = lib._stored_panel(factor_id, full.dates[:stop], full.instruments)
    close = full.field("close")
    label = forward_returns(close, horizon, delay, label_mask(full, "auto"))[:stop]
    frame = monitor_frame(factor, label, close[:stop], full.dates[:stop], int(window))
    if not lib.read_only:
        _store_monitor(lib, factor_id, int(window), frame)
    return frame


def _store_monitor(lib: FactorLibrary, factor_id: str, window: int, frame: pd.DataFrame) -> None:
    incoming_monitor = pa.Table.from_pandas(  # noqa: F841 (read by the SQL below)
        frame.reset_index().assign(date=lambda f: f["date"].dt.date), preserve_index=False
    )
    with lib._operation(write=True) as con, write_transaction(con, f"storing the monitor of {factor_id!r}"):
        con.execute(
            "DELETE FROM factor_monitor WHERE factor_id = ? AND rolling_window = ?", [factor_id, window]
        )
        con.execute(
            "INSERT INTO factor_monitor BY NAME SELECT ? AS factor_id, ? AS rolling_window, "
            "now()::TIMESTAMP AS computed_at, * FROM incoming_monitor",
            [factor_id, window],
        )


def monitor_history(lib: FactorLibrary, factor_id: str, window: int = DEFAULT_MONITOR_WINDOW) -> pd.DataFrame:
    """The monitor rows stored by the last `monitor(factor_id, window)` (empty if never run)."""
    with lib._operation() as con:
        lib._record_of(factor_id)
        frame = con.sql(
            "SELECT * EXCLUDE (factor_id, rolling_window) FROM factor_monitor "
            "WHERE factor_id = ? AND rolling_window = ? ORDER BY date",
            params=[factor_id, int(window)],
        ).df()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame.set_index("date")


def monitor_frame(
    factor: np.ndarray, label: np.ndarray, close: np.ndarray, dates: np.ndarray, window: int
) -> pd.DataFrame:
    """Per-date IC, rank IC, turnover and coverage, and their rolling means / IR (see `monitor`)."""
    universe = np.isfinite(close)
    names_per_date = universe.sum(axis=1)
    covered = (np.isfinite(factor) & universe).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(names_per_date > 0, covered / np.maximum(names_per_date, 1), np.nan)
    frame = pd.DataFrame(
        {
            "ic": ic(factor, label),
            "rank_ic": rank_ic(factor, label),
            "turnover": 1.0 - rank_autocorrelation(factor, 1) if factor.shape[0] > 1 else np.nan,
            "coverage": coverage,
        },
        index=pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="date"),
    )
    rolling = frame.rolling(window, min_periods=max(2, window // 2))
    means = rolling.mean()
    stds = rolling.std()
    frame["ic_mean"] = means["ic"]
    frame["rank_ic_mean"] = means["rank_ic"]
    frame["icir"] = _ratio(means["ic"], stds["ic"])
    frame["rank_icir"] = _ratio(means["rank_ic"], stds["rank_ic"])
    frame["turnover_mean"] = means["turnover"]
    frame["coverage_mean"] = means["coverage"]
    return frame


def _ratio(mean: pd.Series, std: pd.Series) -> pd.Series:
    return (mean / std.where(std > 0)).astype(np.float64)

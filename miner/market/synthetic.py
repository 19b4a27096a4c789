"""A deterministic synthetic market with planted signals: the product's quickstart data.

Daily returns (log) of instrument i on row t::

    r[t, i] = beta_i * market[t] + sector[t, s(i)] + idio[t, i]       (idio: Student t, df 4)
              - signal_strength * DAILY_SIGNAL_SCALE * z[t-2, i]         (planted daily signal)
              + intraday_strength * pulse[t-2, i]                      (planted intraday signal)

where ``z[t]`` is the cross-sectionally standardized rank of ``delta(close, 5)`` computed from the
observed closes up to row t, and ``pulse[t]`` is 1 for names in the "accumulating" state of a
persistent two-state Markov chain (about 20% of names at a time). With the default label (delay 1,
horizon 1: ``label[t] = close[t+2] / close[t+1] - 1``) both signals known at row t drive the
label of row t. Volume follows an AR(1) in logs with a link to |return| (clustering); some names
list late (NaN before) and some are suspended for a few days (NaN holes).

Calibration: the planted daily formula ``PLANTED_DAILY_FORMULA`` has a mean per-date rank IC
against the default label of about ``PLANTED_DAILY_SIGN * signal_strength``: measured over seeds
at 200 names x 500 days, within +-10% of it for signal_strength 0.05..0.4, plus a sampling error
of about 1 / sqrt(N * T) (0.003 there). ``intraday_strength`` is in return units: pulse names
earn that much extra log return two rows later. The (T, N) 0/1 pulse membership is
``SyntheticMarket.pulse_mask`` (also ``planted_intraday_mask(market)``).

Minute bars (only when `minute_days` is given; the last `minute_days` days) follow a Brownian
bridge from the daily open to the daily close, kept inside the daily high/low: the last minute
close equals the daily close and the minute volumes sum to the daily volume. Minute volume is a
U-shaped intraday profile x lognormal noise, plus, on pulse (day, name) cells, a spike every
``p`` minutes (``p`` drawn from 2..5): power in the 2-5 minute band of the volume spectrum.
The `minute_slots` bars of a day are labelled with the minutes that end at 16:00 (09:31..16:00
for 390), so they sit on the default US session grid of `miner.market` (391 slots would fill it).
The market also carries the derived intraday fields of `miner.market.fields` (minute_returns, buy_volume,
sell_volume). Intraday cubes are (T, N, M) float64, 8*T*N*M bytes each, eight of them: keep N
and T modest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy.stats import rankdata

from miner.config import SyntheticSpec
from miner.errors import DataError
from miner.market import US_REGULAR_SESSION, MarketData
from miner.market.fields import derive_returns, with_derived_intraday

PLANTED_DAILY_FORMULA = "rank(delta(close, 5))"
PLANTED_DAILY_SIGN = -1
PLANTED_PULSE_PERIODS = (2, 5)
DAILY_SIGNAL_SCALE = 0.0171
START_DATE = "2020-01-01"

_SIGNAL_WINDOW = 5
_PULSE_ON, _PULSE_OFF = 0.05, 0.20  # Markov transition probabilities: stationary share 0.2
_SECTOR_NAMES = (
    "Communication",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)


@dataclass(frozen=True, eq=False)
class SyntheticMarket(MarketData):
    """A MarketData that also carries the planted intraday pulse membership (T, N) 0/1 array."""

    pulse_mask: np.ndarray = field(kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        mask = np.asarray(self.pulse_mask, dtype=np.float64)
        if mask.shape != (self.T, self.N):
            raise DataError(f"pulse_mask has shape {mask.shape}, expected {(self.T, self.N)}")
        mask = mask.copy()
        mask.flags.writeable = False
        object.__setattr__(self, "pulse_mask", mask)


def planted_intraday_mask(market: MarketData) -> np.ndarray:
    """The (T, N) 0/1 pulse membership planted in a synthetic market."""
    if not isinstance(market, SyntheticMarket):
        raise DataError("planted_intraday_mask needs a market made by synthetic_market()")
    return market.pulse_mask


@dataclass
class _Simulation:
    dates: np.ndarray
    instruments: np.ndarray
    sectors: tuple[str, ...]
    sector_codes: np.ndarray  # (N,) int
    observed: np.ndarray  # (T, N) bool
    daily: dict[str, np.ndarray]  # (T, N), NaN where not observed
    pulse: np.ndarray  # (T, N) 0/1, zero where not observed
    minute: dict[str, np.ndarray]  # (T, N, M), NaN outside minute days / not observed
    minute_times: np.ndarray  # (M,) timedelta64[m] since midnight


def synthetic_market(**settings: Any) -> SyntheticMarket:
    """Daily OHLCV + vwap + amount + returns + sector (and minute bars) with planted signals.

    `settings` are those of `miner.config.SyntheticSpec`, whose defaults apply (n_instruments,
    n_days, seed, signal_strength, intraday_strength, minute_days, minute_slots, n_sectors,
    late_listing_share, suspension_share). Deterministic: the same settings give identical arrays
    (and fingerprint).
    """
    sim = _simulate(synthetic_spec(settings))
    fields = dict(sim.daily)
    fields["returns"] = derive_returns(fields["close"])
    fields["sector"] = np.where(sim.observed, sim.sector_codes[None, :].astype(np.float64), np.nan)
    return SyntheticMarket(
        dates=sim.dates,
        instruments=sim.instruments,
        fields=fields,
        intraday=with_derived_intraday(sim.minute),
        groups={"sector": sim.sectors},
        pulse_mask=sim.pulse,
    )


def synthetic_frames(**settings: Any) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The same market as long DataFrames (daily; minute or None), one row per existing bar."""
    sim = _simulate(synthetic_spec(settings))
    rows, columns = np.nonzero(sim.observed)
    daily = pd.DataFrame({"date": sim.dates[rows], "instrument": sim.instruments[columns]})
    for name, panel in sim.daily.items():
        daily[name] = panel[rows, columns]
    daily["sector"] = np.asarray(sim.sectors, dtype=object)[sim.sector_codes[columns]]
    if not sim.minute:
        return daily, None
    has_bar = ~np.isnan(sim.minute["close"])
    days, names, slots = np.nonzero(has_bar)
    stamps = sim.dates[days].astype("datetime64[m]") + sim.minute_times[slots]
    minute = pd.DataFrame({"datetime": stamps.astype("datetime64[ns]"), "instrument": sim.instruments[names]})
    for name, cube in sim.minute.items():
        minute[name] = cube[days, names, slots]
    return daily, minute


def synthetic_spec(settings: Mapping[str, Any]) -> SyntheticSpec:
    """The settings as a `SyntheticSpec`; a DataError naming the first bad one."""
    try:
        spec = SyntheticSpec(**settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DataError(f"synthetic market: {where}: {first['msg']}") from None
    if spec.n_sectors > len(_SECTOR_NAMES):
        raise DataError(f"synthetic market: n_sectors must be in 1..{len(_SECTOR_NAMES)}")
    if spec.minute_slots > US_REGULAR_SESSION.slots:
        raise DataError(f"synthetic market: minute_slots must be in 2..{US_REGULAR_SESSION.slots}")
    return spec


def _simulate(spec: SyntheticSpec) -> _Simulation:
    daily_rng, pulse_rng, minute_rng = np.random.default_rng(spec.seed).spawn(3)
    t, n = spec.n_days, spec.n_instruments
    dates = pd.bdate_range(START_DATE, periods=t).to_numpy().astype("datetime64[D]")
    width = len(str(n - 1))
    instruments = np.array([f"SYN{i:0{width}d}" for i in range(n)], dtype=object)
    sectors = tuple(sorted(_SECTOR_NAMES[: spec.n_sectors]))
    sector_codes = daily_rng.integers(0, spec.n_sectors, n)
    observed = _observed_cells(daily_rng, t, n, spec.late_listing_share, spec.suspension_share)
    pulse = _pulse_states(pulse_rng, t, n) & observed
    daily = _daily_bars(
        daily_rng, observed, pulse, sector_codes, spec.n_sectors, spec.signal_strength, spec.intraday_strength
    )
    minute: dict[str, np.ndarray] = {}
    times = np.arange(0)
    if spec.minute_days is not None:
        end = US_REGULAR_SESSION.end_ns // (60 * 10**9)
        times = np.arange(end - spec.minute_slots + 1, end + 1).astype("timedelta64[m]")
        first_day = max(0, t - spec.minute_days)
        minute = _minute_bars(minute_rng, daily, pulse, first_day, spec.minute_slots)
    return _Simulation(
        dates,
        instruments,
        sectors,
        sector_codes,
        observed,
        daily,
        pulse.astype(np.float64),
        minute,
        times,
    )


def _observed_cells(
    rng: np.random.Generator, t: int, n: int, late_listing_share: float, suspension_share: float
) -> np.ndarray:
    """Listing (late listings start between day 1 and T/2) and suspensions of 1..5 days."""
    listing = np.where(rng.random(n) < late_listing_share, rng.integers(1, max(2, t // 2), n), 0)
    observed = np.arange(t)[:, None] >= listing[None, :]
    suspended = np.flatnonzero(rng.random(n) < suspension_share)
    for column in suspended:
        for _ in range(rng.integers(1, 4)):
            start = rng.integers(listing[column] + 1, t)
            observed[start : start + rng.integers(1, 6), column] = False
    return observed


def _pulse_states(rng: np.random.Generator, t: int, n: int) -> np.ndarray:
    """A persistent two-state Markov chain per name, ~20% of names accumulating at a time."""
    states = np.empty((t, n), dtype=bool)
    states[0] = rng.random(n) < _PULSE_ON / (_PULSE_ON + _PULSE_OFF)
    for row in range(1, t):
        draw = rng.random(n)
        states[row] = np.where(states[row - 1], draw >= _PULSE_OFF, draw < _PULSE_ON)
    return states


def _daily_bars(
    rng: np.random.Generator,
    observed: np.ndarray,
    pulse: np.ndarray,
    sector_codes: np.ndarray,
    n_sectors: int,
    signal_strength: float,
    intraday_strength: float,
) -> dict[str, np.ndarray]:
    t, n = (int(size) for size in observed.shape)
    beta = rng.uniform(0.6, 1.4, n)
    idio_vol = rng.uniform(0.010, 0.025, n)
    market = rng.standard_normal(t) * 0.009
    sector = rng.standard_normal((t, n_sectors)) * 0.006
    idio = rng.standard_t(4, (t, n)) / np.sqrt(2.0) * idio_vol
    base = beta * market[:, None] + sector[:, sector_codes] + idio
    log_close = _planted_log_closes(
        base,
        observed,
        pulse,
        rng.uniform(np.log(10), np.log(300), n),
        signal_strength,
        intraday_strength,
    )
    previous = np.vstack([log_close[:1], log_close[:-1]])
    returns = log_close - previous
    open_ = np.exp(previous + rng.standard_normal((t, n)) * 0.25 * idio_vol)
    close = np.exp(log_close)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal((t, n))) * 0.6 * idio_vol)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal((t, n))) * 0.6 * idio_vol)
    volume = np.round(np.exp(_log_volume(rng, returns / idio_vol)))
    typical = (high + low + close) / 3.0 * np.exp(rng.standard_normal((t, n)) * 0.001)
    vwap = np.clip(typical, low, high)
    bars = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": vwap,
        "amount": vwap * volume,
    }
    return {name: np.where(observed, values, np.nan) for name, values in bars.items()}


def _planted_log_closes(
    base: np.ndarray,
    observed: np.ndarray,
    pulse: np.ndarray,
    first_log_price: np.ndarray,
    signal_strength: float,
    intraday_strength: float,
) -> np.ndarray:
    """Log closes row by row: the signals seen at row t move the return of row t+2."""
    t, n = base.shape
    pending = np.zeros((t + 2, n))
    log_close = np.empty((t, n))
    close_seen = np.full((t, n), np.nan)
    for row in range(t):
        log_close[row] = first_log_price if row == 0 else log_close[row - 1] + base[row] + pending[row]
        close_seen[row] = np.where(observed[row], np.exp(log_close[row]), np.nan)
        if row >= _SIGNAL_WINDOW:
            signal = _standardized_rank(close_seen[row] - close_seen[row - _SIGNAL_WINDOW])
            pending[row + 2] += PLANTED_DAILY_SIGN * signal_strength * DAILY_SIGNAL_SCALE * signal
        pending[row + 2] += intraday_strength * pulse[row]
    return log_close


def _standardized_rank(values: np.ndarray) -> np.ndarray:
    """Cross-sectional rank scaled to mean 0, std 1 over the valid values; 0 elsewhere."""
    out = np.zeros(values.shape)
    valid = ~np.isnan(values)
    if valid.sum() < 2:
        return out
    ranks = rankdata(values[valid])
    out[valid] = (ranks - ranks.mean()) / ranks.std()
    return out


def _log_volume(rng: np.random.Generator, scaled_returns: np.ndarray) -> np.ndarray:
    """AR(1) log volume around a per-name level, pushed up by |standardized return|."""
    t, n = scaled_returns.shape
    level = rng.uniform(np.log(2e5), np.log(5e6), n)
    shocks = rng.standard_normal((t, n)) * 0.25 + 0.15 * np.abs(scaled_returns)
    log_volume = np.empty((t, n))
    log_volume[0] = level + shocks[0]
    for row in range(1, t):
        log_volume[row] = level + 0.8 * (log_volume[row - 1] - level) + shocks[row]
    return log_volume


def _minute_bars(
    rng: np.random.Generator,
    daily: dict[str, np.ndarray],
    pulse: np.ndarray,
    first_day: int,
    slots: int,
) -> dict[str, np.ndarray]:
    """(T, N, M) minute bars for rows first_day.., consistent with the daily bars."""
    t, n = daily["close"].shape
    cubes = {name: np.full((t, n, slots), np.nan) for name in ("open", "high", "low", "close", "volume")}
    position = np.arange(1, slots + 1) / slots
    centred = (np.arange(slots) - (slots - 1) / 2) / ((slots - 1) / 2)
    profile = 1.0 + 2.0 * centred**2
    for day in range(first_day, t):
        bars = _one_day(
            rng,
            {name: values[day] for name, values in daily.items()},
            pulse[day],
            position,
            profile,
        )
        for name, values in bars.items():
            cubes[name][day] = values
    return cubes


def _one_day(
    rng: np.random.Generator,
    daily: dict[str, np.ndarray],
    pulse: np.ndarray,
    position: np.ndarray,
    profile: np.ndarray,
) -> dict[str, np.ndarray]:
    n, slots = daily["close"].size, position.size
    log_open, log_close = np.log(daily["open"])[:, None], np.log(daily["close"])[:, None]
    walk = np.cumsum(rng.standard_normal((n, slots)), axis=1)
    bridge = walk - position[None, :] * walk[:, -1:]
    minute_vol = np.abs(log_close - log_open) / np.sqrt(slots) + 0.01 / np.sqrt(slots)
    high_day, low_day = daily["high"][:, None], daily["low"][:, None]
    close = np.clip(
        np.exp(log_open + position * (log_close - log_open) + minute_vol * bridge),
        low_day,
        high_day,
    )
    close[:, -1] = daily["close"]
    open_ = np.concatenate([daily["open"][:, None], close[:, :-1]], axis=1)
    wick = np.abs(rng.standard_normal((2, n, slots))) * minute_vol[None] * 0.5
    high = np.minimum(np.maximum(open_, close) * np.exp(wick[0]), high_day)
    low = np.maximum(np.minimum(open_, close) * np.exp(-wick[1]), low_day)
    weights = profile[None, :] * rng.lognormal(0.0, 0.5, (n, slots))
    period = rng.integers(PLANTED_PULSE_PERIODS[0], PLANTED_PULSE_PERIODS[1] + 1, n)
    phase = rng.integers(0, period)
    spikes = (np.arange(slots)[None, :] - phase[:, None]) % period[:, None] == 0
    weights += np.where(spikes & (pulse[:, None] > 0), 2.0 * profile.mean(), 0.0)
    volume = daily["volume"][:, None] * weights / weights.sum(axis=1, keepdims=True)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}

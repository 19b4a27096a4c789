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
The `minute_slots` bars of a day are labelled with the last `minute_slots` slots of the session
(us: 09:31..16:00 for the default 390, on the 391-slot US grid; cn: all 240 slots of
09:31-11:30 + 13:01-15:00). The market also carries the derived intraday fields of
`miner.market.fields` (minute_returns, buy_volume, sell_volume). Intraday cubes are (T, N, M)
float64, 8*T*N*M bytes each, eight of them: keep N and T modest.

The A-share mode (``session="cn"``): instruments get A-share codes (main boards, ChiNext, STAR
and Beijing), prices are in 0.01 CNY and every close, open, high and low stays within the daily
price limits of `miner.market.rules` (the closes path is rounded and clipped day by day), and a
(day, name) cell with at least five earlier bars starts, with probability `limit_streak_share`, a
limit-up streak (1 + geometric(0.45) days, ~2.2 on average): each streak day is a one-price bar at
the limit up with a twentieth of the usual volume. Streaks go on regardless of the planted signals,
so a label that enters on a locked day earns the next limit-up: the trap that
``label.tradable: entry`` removes. The market carries the ``cn`` rules' fields (``limit_up``,
``limit_down``, ``tradable``), exactly as an import with ``--rules cn`` derives them.
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
from miner.market import MarketData
from miner.market.fields import derive_returns, with_derived_intraday
from miner.market.rules import (
    FREE_DAYS_REGISTERED,
    RULES,
    History,
    limit_percent,
    limit_prices,
    previous_close,
    rule_fields,
)
from miner.market.session import session_grid

PLANTED_DAILY_FORMULA = "rank(delta(close, 5))"
PLANTED_DAILY_SIGN = -1
PLANTED_PULSE_PERIODS = (2, 5)
DAILY_SIGNAL_SCALE = 0.0171
START_DATE = "2020-01-01"

_SIGNAL_WINDOW = 5
_PULSE_ON, _PULSE_OFF = 0.05, 0.20  # Markov transition probabilities: stationary share 0.2
_DEFAULT_MINUTE_SLOTS = {"us": 390, "cn": 240}
RULES_OF_SESSION = {"us": None, "cn": "cn"}
"""The trading rules a synthetic market of each session carries (an import of its frames needs)."""
_STREAK_CONTINUES = 0.45  # geometric parameter of the streak length
_LOCKED_VOLUME_SHARE = 0.05
# A-share boards of the cn mode, in turn: (first code, exchange suffix)
_A_SHARE_BOARDS = (
    (600000, "SH"),
    (1, "SZ"),
    (600000, "SH"),
    (1, "SZ"),
    (300001, "SZ"),
    (688001, "SH"),
    (830001, "BJ"),
)
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
    session: str
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
    if sim.session == "cn":
        history = History.none(sim.instruments.size, sim.dates[0])
        fields.update(rule_fields(RULES["cn"], sim.dates, sim.instruments, fields, None, history))
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
    grid = session_grid(spec.session)
    if minute_slots(spec) > grid.slots:
        raise DataError(f"synthetic market: minute_slots must be in 2..{grid.slots} on the {grid}")
    return spec


def minute_slots(spec: SyntheticSpec) -> int:
    """Minute bars per day: the setting, else the session's default (390 us, 240 cn)."""
    return spec.minute_slots or _DEFAULT_MINUTE_SLOTS[spec.session]


@dataclass(frozen=True)
class _AShares:
    """The cn mode's daily-limit setting: limits in percent per (day, name), streak odds, RNG."""

    percent: np.ndarray
    streak_share: float
    rng: np.random.Generator


def _simulate(spec: SyntheticSpec) -> _Simulation:
    daily_rng, pulse_rng, minute_rng, limit_rng = np.random.default_rng(spec.seed).spawn(4)
    t, n = spec.n_days, spec.n_instruments
    dates = pd.bdate_range(START_DATE, periods=t).to_numpy().astype("datetime64[D]")
    cn = spec.session == "cn"
    instruments = _a_share_codes(n) if cn else _plain_codes(n)
    sectors = tuple(sorted(_SECTOR_NAMES[: spec.n_sectors]))
    sector_codes = daily_rng.integers(0, spec.n_sectors, n)
    observed = _observed_cells(daily_rng, t, n, spec.late_listing_share, spec.suspension_share)
    pulse = _pulse_states(pulse_rng, t, n) & observed
    a_shares = _AShares(limit_percent(dates, instruments), spec.limit_streak_share, limit_rng) if cn else None
    daily = _daily_bars(
        daily_rng,
        observed,
        pulse,
        sector_codes,
        spec.n_sectors,
        spec.signal_strength,
        spec.intraday_strength,
        a_shares,
    )
    minute: dict[str, np.ndarray] = {}
    times = np.arange(0)
    if spec.minute_days is not None:
        slots = minute_slots(spec)
        times = session_grid(spec.session).slot_times()[-slots:].astype("timedelta64[m]")
        first_day = max(0, t - spec.minute_days)
        minute = _minute_bars(minute_rng, daily, pulse, first_day, slots, decimals=2 if cn else None)
    return _Simulation(
        dates,
        instruments,
        sectors,
        sector_codes,
        observed,
        daily,
        spec.session,
        pulse.astype(np.float64),
        minute,
        times,
    )


def _plain_codes(n: int) -> np.ndarray:
    width = len(str(n - 1))
    return np.array([f"SYN{i:0{width}d}" for i in range(n)], dtype=object)


def _a_share_codes(n: int) -> np.ndarray:
    """n sorted A-share codes, the boards taken in turn (`_A_SHARE_BOARDS`)."""
    taken: dict[tuple[int, str], int] = {}
    codes = []
    for i in range(n):
        board = _A_SHARE_BOARDS[i % len(_A_SHARE_BOARDS)]
        taken[board] = taken.get(board, -1) + 1
        codes.append(f"{board[0] + taken[board]:06d}.{board[1]}")
    return np.array(sorted(codes), dtype=object)


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
    a_shares: _AShares | None,
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
    locked = np.zeros((t, n), dtype=bool)
    if a_shares is not None:
        log_close, locked = _a_share_closes(a_shares, log_close, observed)
    previous = np.vstack([log_close[:1], log_close[:-1]])
    returns = log_close - previous
    open_ = np.exp(previous + rng.standard_normal((t, n)) * 0.25 * idio_vol)
    close = np.exp(log_close)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal((t, n))) * 0.6 * idio_vol)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal((t, n))) * 0.6 * idio_vol)
    volume = np.round(np.exp(_log_volume(rng, returns / idio_vol)))
    typical = (high + low + close) / 3.0 * np.exp(rng.standard_normal((t, n)) * 0.001)
    bars = _bar_fields(open_, high, low, close, volume, np.clip(typical, low, high))
    bars = {name: np.where(observed, values, np.nan) for name, values in bars.items()}
    return bars if a_shares is None else _on_ticks(bars, locked, a_shares.percent)


def _a_share_closes(
    a_shares: _AShares, log_close: np.ndarray, observed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log closes moved day by day in 0.01 CNY within the limits of the last close, and the
    limit-up streaks (module doc); returns them and the (T, N) locked cells."""
    t, n = log_close.shape
    steps = np.diff(log_close, axis=0, prepend=log_close[:1])
    starts = a_shares.rng.random((t, n)) < a_shares.streak_share
    lengths = a_shares.rng.geometric(_STREAK_CONTINUES, (t, n))
    seasoned = np.cumsum(observed, axis=0) - observed >= FREE_DAYS_REGISTERED
    close = np.empty((t, n))
    locked = np.zeros((t, n), dtype=bool)
    last = np.round(np.exp(log_close[0]), 2)
    left = np.zeros(n, dtype=np.int64)
    for row in range(t):
        up, down = limit_prices(last, a_shares.percent[row])
        left = np.where((left == 0) & starts[row] & observed[row] & seasoned[row], lengths[row], left)
        locked[row] = (left > 0) & observed[row]
        moved = np.clip(np.round(last * np.exp(steps[row]), 2), down, up)
        close[row] = np.where(locked[row], up, moved)
        left = np.where(locked[row], left - 1, left)
        last = np.where(observed[row], close[row], last)
    return np.log(close), locked


def _on_ticks(bars: dict[str, np.ndarray], locked: np.ndarray, percent: np.ndarray) -> dict[str, np.ndarray]:
    """Prices in 0.01 CNY within the daily limits; locked cells one-price bars with thin volume."""
    close = np.round(bars["close"], 2)
    up, down = limit_prices(previous_close(close, np.full(close.shape[1], np.nan)), percent)
    limited = np.isfinite(up)

    def on_tick(values: np.ndarray) -> np.ndarray:
        rounded = np.round(values, 2)
        return np.where(limited, np.clip(rounded, down, up), rounded)

    open_ = np.where(locked, close, on_tick(bars["open"]))
    high = np.where(locked, close, np.maximum(on_tick(bars["high"]), np.maximum(open_, close)))
    low = np.where(locked, close, np.minimum(on_tick(bars["low"]), np.minimum(open_, close)))
    volume = np.where(locked, np.round(bars["volume"] * _LOCKED_VOLUME_SHARE), bars["volume"])
    vwap = np.where(locked, close, np.clip(np.round(bars["vwap"], 2), low, high))
    return _bar_fields(open_, high, low, close, volume, vwap)


def _bar_fields(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    vwap: np.ndarray,
) -> dict[str, np.ndarray]:
    """The daily fields of the synthetic bars, amount = vwap x volume."""
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": vwap,
        "amount": vwap * volume,
    }


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
    decimals: int | None,
) -> dict[str, np.ndarray]:
    """(T, N, M) minute bars for rows first_day.., consistent with the daily bars (prices rounded
    to `decimals` when given)."""
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
    if decimals is not None:
        for name in ("open", "high", "low", "close"):
            cubes[name] = np.round(cubes[name], decimals)
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

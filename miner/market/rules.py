"""Trading rules: daily price limits and the derived 0/1 field ``tradable``.

Presets (`trading_rules`): ``us`` (no price limits), ``cn`` (A-share price limits; a close at
a limit is not tradable) and ``cn_locked`` (A-share price limits; only a one-price bar locked at
a limit is not tradable).

A-share limits (``cn``, ``cn_locked``), per (date, instrument), from the board of the six-digit
code (``600000``, ``600000.SH``, ``SH600000``... all read as 600000) and the date:

* STAR Market (688xxx, 689xxx): +-20%.
* ChiNext (300xxx, 301xxx, 302xxx): +-20% from 2020-08-24, +-10% before.
* Beijing Stock Exchange (43xxxx, 8xxxxx, 920xxx): +-30%.
* Every other code (Shanghai and Shenzhen main boards): +-10%; names flagged by an ``st`` column
  (boolean, or non-zero number) +-5% until 2025-07-06 (from 2025-07-07, +-10% like the rest).
  An ``st`` flag on ChiNext before 2020-08-24 is +-5% too; on the other boards it changes nothing.

Limit prices are the previous close x (1 +- limit), rounded half up to 0.01 CNY, as the exchanges
publish them: computed in whole cents, so 10.05 x 1.1 = 11.055 is 11.06. The previous close is the
last close before the date (across suspensions); a ``pre_close`` column, when the data has one,
takes its place where present (it carries the exchange's ex-rights reference price). Limit columns
``limit_up`` / ``limit_down`` in the data take precedence over the computed ones where present.

No limit (and so no limit lock):
* on an instrument's first bar (there is no previous close);
* on the first five bars of a listing on the STAR Market, on ChiNext from 2020-08-24 and on the main
  boards from 2023-04-10 (the registration-system rule); the first bar only elsewhere (the older
  first-day band of +44% / -36% is relative to the IPO price, which bars do not carry, and Beijing's
  first day has no limit). An instrument's listing is its first bar in the data, except that names
  whose first bar is on the data's first date are taken to have listed before it.

``tradable`` (1.0 / 0.0; NaN where the instrument has no bar, as every field):
* 0 on a bar with zero volume (a suspended day reported as a bar);
* 0 on a one-price bar (open = high = low = close) at the up or down limit;
* with ``cn``, also 0 when the close is at the up or down limit (a close-to-close label cannot
  enter at that price);
* 1 otherwise. Under ``us`` only the volume rule applies.
Prices are compared with the limits to half a cent. The rules assume raw (unadjusted) prices;
with adjusted prices give ``limit_up`` / ``limit_down`` (or ``pre_close``) columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from miner.errors import DataError

if TYPE_CHECKING:
    from miner.market.panel import MarketData

RULE_FIELDS = ("limit_up", "limit_down", "tradable")
CHINEXT_REFORM = np.datetime64("2020-08-24")
MAIN_BOARD_REGISTRATION = np.datetime64("2023-04-10")
MAIN_BOARD_ST_TEN_PERCENT = np.datetime64("2025-07-07")
FREE_DAYS_REGISTERED = 5
HALF_CENT = 0.005

_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
_MAIN, _CHINEXT, _STAR, _BEIJING = range(4)


@dataclass(frozen=True)
class TradingRules:
    """A rules preset: whether A-share price limits apply, and whether a close at a limit (not only
    a one-price locked bar) makes a bar untradable."""

    name: str
    price_limits: bool
    close_at_limit: bool


RULES = {
    rules.name: rules
    for rules in (
        TradingRules("us", price_limits=False, close_at_limit=False),
        TradingRules("cn", price_limits=True, close_at_limit=True),
        TradingRules("cn_locked", price_limits=True, close_at_limit=False),
    )
}


def trading_rules(name: str | TradingRules) -> TradingRules:
    """A preset by name; DataError naming the presets otherwise."""
    if isinstance(name, TradingRules):
        return name
    try:
        return RULES[str(name).strip()]
    except KeyError:
        raise DataError(f"unknown trading rules {name!r} (expected one of: {', '.join(RULES)})") from None


@dataclass(frozen=True)
class History:
    """What precedes a panel's first row, per instrument: the last close before it, how many bars
    the instrument had, the date of its first bar (NaT without one), and the data's first date."""

    last_close: np.ndarray
    bars: np.ndarray
    first_date: np.ndarray
    data_start: np.datetime64

    @classmethod
    def none(cls, n: int, data_start: np.datetime64) -> History:
        return cls(
            np.full(n, np.nan), np.zeros(n, dtype=np.int64), np.full(n, "NaT", "datetime64[D]"), data_start
        )


def check_codes(rules: TradingRules, instruments: np.ndarray, source: str) -> None:
    """A-share rules need six-digit codes; DataError naming the first instrument without one."""
    if not rules.price_limits:
        return
    for name in instruments:
        if _CODE.search(str(name)) is None:
            raise DataError(
                f"{source}: instrument {name!r} has no six-digit A-share code (e.g. 600000.SH), "
                f"which the {rules.name!r} trading rules need"
            )


def rule_fields(
    rules: TradingRules,
    dates: np.ndarray,
    instruments: np.ndarray,
    fields: Mapping[str, np.ndarray],
    st: np.ndarray | None,
    history: History,
) -> dict[str, np.ndarray]:
    """``limit_up``, ``limit_down`` (A-share rules only) and ``tradable`` (module doc)."""
    close = fields["close"]
    has_bar = np.isfinite(close)
    untradable = np.zeros(close.shape, dtype=bool)
    if "volume" in fields:
        untradable |= fields["volume"] == 0
    out: dict[str, np.ndarray] = {}
    if rules.price_limits:
        check_codes(rules, instruments, "trading rules")
        up, down = _limits(dates, instruments, fields, st, history)
        out["limit_up"], out["limit_down"] = up, down
        at_up, at_down = _near(close, up), _near(close, down)
        at_limit = at_up | at_down
        if rules.close_at_limit:
            untradable |= at_limit
        else:
            untradable |= at_limit & _one_price(fields)
    out["tradable"] = np.where(has_bar, np.where(untradable, 0.0, 1.0), np.nan)
    return out


def _near(price: np.ndarray, limit: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.abs(price - limit) < HALF_CENT


def _one_price(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """open = high = low = close (to half a cent); False where a price is missing."""
    close = fields["close"]
    same = np.isfinite(close)
    for name in ("open", "high", "low"):
        if name in fields:
            same &= _near(fields[name], close)
    return same


def _limits(
    dates: np.ndarray,
    instruments: np.ndarray,
    fields: Mapping[str, np.ndarray],
    st: np.ndarray | None,
    history: History,
) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) limit prices, NaN where no limit applies; data columns take precedence."""
    close = fields["close"]
    previous = previous_close(close, history.last_close)
    if "pre_close" in fields:
        previous = np.where(np.isfinite(fields["pre_close"]), fields["pre_close"], previous)
    boards = _boards(instruments)
    percent = np.where(
        _listing_free(close, dates, boards, history), np.nan, _limit_percent(dates, boards, st)
    )
    up, down = limit_prices(previous, percent)
    for name, computed in (("limit_up", up), ("limit_down", down)):
        if name in fields:
            computed[:] = np.where(np.isfinite(fields[name]), fields[name], computed)
    return up, down


def limit_prices(previous: np.ndarray, percent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, down): previous x (1 +- percent / 100) rounded half up to 0.01, in whole cents."""
    with np.errstate(invalid="ignore"):
        cents = np.round(previous * 100.0)
        up = np.floor((cents * (100.0 + percent) + 50.0) / 100.0) / 100.0
        down = np.floor((cents * (100.0 - percent) + 50.0) / 100.0) / 100.0
    return up, down


def limit_percent(dates: np.ndarray, instruments: np.ndarray, st: np.ndarray | None = None) -> np.ndarray:
    """(T, N) A-share daily limit in percent of the previous close, by board, date and ST flag."""
    return _limit_percent(dates, _boards(instruments), st)


def previous_close(close: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The last close strictly before each row (across missing rows); `before` seeds row 0."""
    t, n = close.shape
    seen = np.vstack([before[None, :], close])
    row = np.where(np.isfinite(seen), np.arange(t + 1)[:, None], 0)
    np.maximum.accumulate(row, axis=0, out=row)
    return seen[row, np.arange(n)][:-1]


def _boards(instruments: np.ndarray) -> np.ndarray:
    return np.array([_board(str(name)) for name in instruments], dtype=np.int64)


def _board(code: str) -> int:
    digits = _CODE.search(code)
    number = digits.group(1) if digits else ""
    if number.startswith(("688", "689")):
        return _STAR
    if number.startswith(("300", "301", "302")):
        return _CHINEXT
    if number.startswith(("43", "8", "920")):
        return _BEIJING
    return _MAIN


def _limit_percent(dates: np.ndarray, boards: np.ndarray, st: np.ndarray | None) -> np.ndarray:
    """(T, N) limit in whole percent by board, date and ST flag (module doc)."""
    day = dates.astype("datetime64[D]")[:, None]
    flagged = np.zeros((day.shape[0], boards.size), dtype=bool) if st is None else st
    percent = np.where(flagged & (day < MAIN_BOARD_ST_TEN_PERCENT), 5.0, 10.0)
    chinext = np.where(day >= CHINEXT_REFORM, 20.0, np.where(flagged, 5.0, 10.0))
    percent = np.where(boards == _CHINEXT, chinext, percent)
    percent = np.where(boards == _STAR, 20.0, percent)
    return np.where(boards == _BEIJING, 30.0, percent)


def _listing_free(close: np.ndarray, dates: np.ndarray, boards: np.ndarray, history: History) -> np.ndarray:
    """(T, N) True on bars within an instrument's limit-free listing days (module doc)."""
    day = dates.astype("datetime64[D]")
    has_bar = np.isfinite(close)
    bars_before = history.bars[None, :] + np.cumsum(has_bar, axis=0) - has_bar
    first_row = np.where(has_bar.any(axis=0), np.argmax(has_bar, axis=0), 0)
    listed = np.where(history.bars > 0, history.first_date, day[first_row])
    registered = (
        (boards == _STAR)
        | ((boards == _CHINEXT) & (listed >= CHINEXT_REFORM))
        | ((boards == _MAIN) & (listed >= MAIN_BOARD_REGISTRATION))
    )
    free_days = np.where(registered & (listed > history.data_start), FREE_DAYS_REGISTERED, 1)
    return bars_before < free_days[None, :]


def label_mask(market: MarketData, mode: str) -> np.ndarray | None:
    """The ``tradable`` panel a label honours (`evaluation.labels.forward_returns`): ``entry``
    needs the field, ``auto`` uses it when the market has one, ``none`` never."""
    if mode == "none":
        return None
    if "tradable" in market.fields:
        return market.fields["tradable"]
    if mode == "entry":
        raise DataError(
            "label.tradable: entry needs a 'tradable' field: import the daily bars with --rules "
            "(cn, cn_locked or us), or give the data a tradable column"
        )
    return None

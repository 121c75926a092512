"""Deterministic synthetic market data: reference prices, daily/intraday bars, quotes.

Everything here is a pure function of the symbol name (plus the date and, for volume, the
symbol's average daily volume), so the same request always returns the same bars and tests can
assert exact values. Bars wander about +-20 % around a per-symbol reference price.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import NormalDist
from typing import Any

from paperbroker.models import tick_size
from paperbroker.timeutil import (
    et_date,
    is_trading_day,
    iso_z,
    midnight_et,
    parse_timestamp,
    previous_trading_day,
    session_bounds,
)

_NORMAL = NormalDist()
_SESSION_MINUTES = 390
_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D)$")
_EARLIEST = date(2015, 1, 1)  # no synthetic history before this; keeps open-ended ranges bounded


def _unit(*parts: object) -> float:
    """A uniform number in (0, 1) derived only from ``parts``."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def _normal(*parts: object) -> float:
    return _NORMAL.inv_cdf(_unit(*parts))


def reference_price(symbol: str) -> Decimal:
    """Where a symbol's history is centred: $20-$400, fixed by its name."""
    return Decimal(str(round(20 + 380 * _unit(symbol, "price"), 2)))


def default_adv(symbol: str) -> int:
    """Average daily volume when none was set: 200k-20M shares, fixed by the name."""
    return int(10 ** (5.3 + 2 * _unit(symbol, "adv")))


def _log_level(symbol: str, day: date) -> float:
    """Three slow waves plus daily noise: trends and reversals without a random walk."""
    k = day.toordinal()
    level = 0.0
    for i, (amplitude, period) in enumerate(((0.12, 250), (0.06, 60), (0.03, 15))):
        length = period * (1 + _unit(symbol, "period", i))
        level += amplitude * math.sin(2 * math.pi * k / length + 6.28 * _unit(symbol, "phase", i))
    return level + 0.01 * _normal(symbol, day, "noise")


def daily_close(symbol: str, day: date, ref: Decimal) -> float:
    return round(float(ref) * math.exp(_log_level(symbol, day)), 2)


def daily_bar(symbol: str, day: date, ref: Decimal, adv: int) -> dict[str, Any]:
    """One daily bar in Alpaca's wire shape (all of t, o, h, l, c, v, n, vw present)."""
    return _bar(midnight_et(day), *_daily_ohlcv(symbol, day, ref, adv), symbol, day)


@functools.lru_cache(maxsize=8192)
def _daily_ohlcv(
    symbol: str, day: date, ref: Decimal, adv: int
) -> tuple[float, float, float, float, int]:
    # Cached: every intraday bar of the day starts from these values.
    close = daily_close(symbol, day, ref)
    previous = daily_close(symbol, previous_trading_day(day), ref)
    opening = round(previous * math.exp(0.004 * _normal(symbol, day, "gap")), 2)
    high = round(max(opening, close) * (1.001 + 0.006 * abs(_normal(symbol, day, "h"))), 2)
    low = round(min(opening, close) * (0.999 - 0.006 * abs(_normal(symbol, day, "l"))), 2)
    return opening, high, low, close, _volume(adv, symbol, day)


def intraday_bar(
    symbol: str, start: datetime, minutes: int, ref: Decimal, adv: int
) -> dict[str, Any]:
    """An intraday bar that drifts from the day's open towards its close."""
    day = et_date(start)
    day_open, _, _, day_close, day_volume = _daily_ohlcv(symbol, day, ref, adv)
    session_open, _ = session_bounds(day)

    def price_at(moment: datetime) -> float:
        fraction = (moment - session_open).total_seconds() / (_SESSION_MINUTES * 60)
        drift = day_open + (day_close - day_open) * fraction
        return drift * (1 + 0.0015 * _normal(symbol, moment.isoformat(), "m"))

    end = start + timedelta(minutes=minutes)
    first, last = round(price_at(start), 2), round(price_at(end), 2)
    high = round(max(first, last) * (1 + 0.0008 * abs(_normal(symbol, start, "mh"))), 2)
    low = round(min(first, last) * (1 - 0.0008 * abs(_normal(symbol, start, "ml"))), 2)
    share = day_volume * minutes / _SESSION_MINUTES
    volume = max(1, int(share * math.exp(0.3 * _normal(symbol, start, "mv") - 0.045)))
    return _bar(start, first, high, low, last, volume, symbol, start)


def _volume(adv: int, symbol: str, day: date) -> int:
    # Log-normal with mean 1, so a 20-day average lands near ``adv``.
    return max(1, int(adv * math.exp(0.25 * _normal(symbol, day, "v") - 0.03125)))


def _bar(
    moment: datetime,
    opening: float,
    high: float,
    low: float,
    close: float,
    volume: int,
    *key: object,
) -> dict[str, Any]:
    trades = max(1, int(volume / (80 + 40 * _unit(*key, "n"))))
    return {
        "t": iso_z(moment).replace(".000000Z", "Z"),
        "o": opening,
        "h": high,
        "l": low,
        "c": close,
        "v": volume,
        "n": trades,
        "vw": round((high + low + close) / 3, 4),
    }


@dataclass(frozen=True)
class TimeFrame:
    amount: int
    unit: str  # "Min" or "Day" (hours are expressed in minutes)

    @property
    def minutes(self) -> int:
        return self.amount


def parse_timeframe(raw: str) -> TimeFrame:
    """Alpaca timeframes this broker serves: 1Day, 1-59Min, 1-23Hour. ``ValueError`` else."""
    match = _TIMEFRAME.match(raw or "")
    if not match:
        raise ValueError(f"invalid timeframe: {raw}")
    amount, unit = int(match.group(1)), match.group(2)
    if unit in ("Day", "D") and amount == 1:
        return TimeFrame(1, "Day")
    if unit in ("Min", "T") and 1 <= amount <= 59:
        return TimeFrame(amount, "Min")
    if unit in ("Hour", "H") and 1 <= amount <= 23:
        return TimeFrame(amount * 60, "Min")
    raise ValueError(f"invalid timeframe: {raw}")


def bar_times(
    timeframe: TimeFrame, start: datetime, end: datetime, *, descending: bool
) -> Iterator[datetime]:
    """Bar start times within ``[start, end]`` (both inclusive), lazily, in either order."""
    first_day = max(et_date(start) - timedelta(days=1), _EARLIEST)
    last_day = et_date(end) + timedelta(days=1)
    if first_day > last_day:
        return
    span = (last_day - first_day).days
    offsets = range(span, -1, -1) if descending else range(span + 1)
    for offset in offsets:
        day = first_day + timedelta(days=offset)
        if not is_trading_day(day):
            continue
        for moment in _times_in_day(timeframe, day, descending):
            if start <= moment <= end:
                yield moment


def _times_in_day(timeframe: TimeFrame, day: date, descending: bool) -> list[datetime]:
    if timeframe.unit == "Day":
        return [midnight_et(day)]
    opening, closing = session_bounds(day)
    step = timedelta(minutes=timeframe.minutes)
    times = []
    moment = opening
    while moment < closing:
        times.append(moment)
        moment += step
    return times[::-1] if descending else times


def bar_complete(timeframe: TimeFrame, moment: datetime, now: datetime) -> bool:
    """Only finished bars are served, so a bar never changes once a client has seen it."""
    if timeframe.unit == "Day":
        return session_bounds(et_date(moment))[1] <= now
    return moment + timedelta(minutes=timeframe.minutes) <= now


def encode_page_token(symbol: str, moment: datetime) -> str:
    raw = f"{symbol}|{moment.astimezone(UTC).isoformat()}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_page_token(token: str) -> tuple[str, datetime]:
    """Inverse of ``encode_page_token``; ``ValueError`` on anything else."""
    try:
        symbol, moment = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        # parse_timestamp, not fromisoformat: a hand-made token without an offset would give
        # a naive datetime that cannot be compared with the aware bar times (a 500).
        return symbol, parse_timestamp(moment)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid page_token") from exc


def half_spread(price: Decimal) -> Decimal:
    """About 2 bp each side, at least one tick."""
    step = tick_size(price)
    return max(step, (price * Decimal("0.0002")).quantize(step))


def quote_sizes(symbol: str, moment: datetime) -> tuple[int, int]:
    return (
        100 * (1 + int(9 * _unit(symbol, moment, "bs"))),
        100 * (1 + int(9 * _unit(symbol, moment, "as"))),
    )

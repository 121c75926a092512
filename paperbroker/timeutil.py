"""Time helpers: Alpaca's timestamp formats and the NYSE session calendar.

The calendar knows weekdays, the NYSE's full-day holidays (rule-based: New Year's Day, Martin
Luther King Jr. Day, Washington's Birthday, Good Friday, Memorial Day, Juneteenth from 2022,
Independence Day, Labor Day, Thanksgiving, Christmas, each moved to the nearest weekday when it
falls on a weekend, except a Saturday New Year's Day, which the NYSE does not observe) and the
regular 09:30-16:00 ET session. No early closes and no one-off closures (national days of
mourning): clients must take trading days from ``/v2/calendar``, never assume weekdays.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)
SESSION_CLOSE = time(16, 0)
ONE_MICROSECOND = timedelta(microseconds=1)
NEVER = datetime.min.replace(tzinfo=UTC)  # earlier than any timestamp


def utcnow() -> datetime:
    """The default broker clock: real UTC wall time."""
    return datetime.now(UTC)


def iso_z(value: datetime | None) -> str | None:
    """Alpaca's order/market-data format: UTC, microseconds, trailing ``Z``."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def iso_et(value: datetime) -> str:
    """Alpaca's ``/v2/clock`` format: US/Eastern wall time with its offset."""
    return value.astimezone(ET).isoformat()


def parse_timestamp(raw: str) -> datetime:
    """Parse what alpaca-py and curl users send: RFC 3339 with ``Z``/offset, or a bare date.

    A value without offset is UTC, as in alpaca-py's own serialiser. Raises ``ValueError``.
    """
    text = raw.strip()
    if not text:
        raise ValueError("empty timestamp")
    if len(text) == 10:
        parsed_date = date.fromisoformat(text)
        return datetime.combine(parsed_date, time(0), tzinfo=UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _trim_nanoseconds(text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError(f"timestamp out of range: {raw}") from None


def _trim_nanoseconds(text: str) -> str:
    """Real Alpaca timestamps carry 9 fractional digits; ``fromisoformat`` takes at most 6."""
    dot = text.find(".")
    if dot < 0:
        return text
    end = dot + 1
    while end < len(text) and text[end].isdigit():
        end += 1
    if end - dot - 1 <= 6:
        return text
    return text[: dot + 7] + text[end:]


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th ``weekday`` (0 = Monday) of the month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date:
    """A fixed-date holiday on a Saturday is observed on Friday, on a Sunday on Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@functools.lru_cache(maxsize=128)
def nyse_holidays(year: int) -> frozenset[date]:
    """The NYSE's full-day closures of ``year`` (rules in the module docstring)."""
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    if date(year, 1, 1).weekday() != 5:  # a Saturday New Year's Day is not observed
        days.add(_observed(date(year, 1, 1)))
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    return frozenset(days)


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in nyse_holidays(day.year)


def session_bounds(day: date) -> tuple[datetime, datetime]:
    """Open and close of the regular session on ``day`` as aware UTC datetimes."""
    opening = datetime.combine(day, SESSION_OPEN, tzinfo=ET).astimezone(UTC)
    closing = datetime.combine(day, SESSION_CLOSE, tzinfo=ET).astimezone(UTC)
    return opening, closing


def et_date(moment: datetime) -> date:
    return moment.astimezone(ET).date()


def in_session(moment: datetime) -> bool:
    day = et_date(moment)
    if not is_trading_day(day):
        return False
    opening, closing = session_bounds(day)
    return opening <= moment < closing


def next_session_edge(after: datetime, *, edge: str) -> datetime:
    """First session open (``edge="open"``) or close strictly after ``after``."""
    day = et_date(after)
    for _ in range(14):
        if is_trading_day(day):
            opening, closing = session_bounds(day)
            candidate = opening if edge == "open" else closing
            if candidate > after:
                return candidate
        day += timedelta(days=1)
    raise AssertionError("no trading day within 14 days")  # pragma: no cover - weekdays exist


def trading_days(start: date, end: date) -> list[date]:
    days = []
    day = start
    while day <= end:
        if is_trading_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def previous_trading_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def midnight_et(day: date) -> datetime:
    """How Alpaca stamps daily bars: midnight New York time, expressed in UTC."""
    return datetime.combine(day, time(0), tzinfo=ET).astimezone(UTC)

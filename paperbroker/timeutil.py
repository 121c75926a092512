"""Time helpers: Alpaca's timestamp formats and a simple NYSE session calendar.

The calendar knows weekdays and the regular 09:30-16:00 ET session only (no exchange holidays,
no early closes): the paper broker needs predictable sessions, not a holiday table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)
SESSION_CLOSE = time(16, 0)
ONE_MICROSECOND = timedelta(microseconds=1)


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


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5


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
    for _ in range(10):
        if is_trading_day(day):
            opening, closing = session_bounds(day)
            candidate = opening if edge == "open" else closing
            if candidate > after:
                return candidate
        day += timedelta(days=1)
    raise AssertionError("no trading day within 10 days")  # pragma: no cover - weekdays exist


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

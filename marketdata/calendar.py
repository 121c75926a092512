"""Trading days, always from the broker's calendar (``/v2/calendar`` through the seam): never
"weekdays", so weekends and exchange holidays are never asked for (upstream asked for weekend
dates and counted them as failures)."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

from tradeops.broker import SessionReport, get_broker

# Calendar days that surely hold N trading days: 252 trading days a year plus slack for a run
# of holidays (the longest NYSE gap is 4 days).
_DAYS_PER_SESSION = 365 / 248


def sessions_finished(*, days: int, now: datetime, end: date | None = None) -> list[SessionReport]:
    """The last ``days`` sessions whose close is at or before ``now`` (and on or before
    ``end`` when given), oldest first. Raises BrokerError when the calendar cannot be read."""
    last = min(end or now.date(), now.date())
    first = last - timedelta(days=math.ceil(days * _DAYS_PER_SESSION) + 10)
    sessions = get_broker().get_calendar(start=first, end=last)
    finished = [s for s in sessions if s.close <= now and s.date <= last]
    return finished[-days:] if days > 0 else []


def latest_finished_session(*, now: datetime) -> date | None:
    """The most recent trading day whose session has closed (None if the calendar is empty)."""
    sessions = sessions_finished(days=1, now=now)
    return sessions[-1].date if sessions else None

"""The broker's market clock: forced open/closed or real session hours, and freezable time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from paperbroker.models import as_bool, invalid
from paperbroker.timeutil import (
    in_session,
    iso_et,
    iso_z,
    next_session_edge,
    parse_timestamp,
    trading_days,
)

CLOCK_MODES = ("open", "closed", "auto")


def parse_time(raw: Any, name: str) -> datetime:
    try:
        return parse_timestamp(str(raw))
    except ValueError:
        raise invalid(f"invalid format for {name}") from None


@dataclass
class MarketClock:
    """``mode``: open | closed | auto (regular NYSE hours). ``frozen_now`` stops time;
    ``next_open``/``next_close`` override what ``/v2/clock`` reports."""

    wall: Callable[[], datetime]
    mode: str = "open"
    next_open: datetime | None = None
    next_close: datetime | None = None
    frozen_now: datetime | None = None

    def now(self) -> datetime:
        return self.frozen_now or self.wall()

    def is_open(self) -> bool:
        if self.mode == "auto":
            return in_session(self.now())
        return self.mode == "open"

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``POST /_paper/clock``: is_open, auto, now, next_open, next_close."""
        if "now" in changes:
            raw = changes["now"]
            self.frozen_now = parse_time(raw, "now") if raw is not None else None
        if changes.get("auto"):
            self.mode = "auto"
        if "is_open" in changes:
            self.mode = "open" if as_bool(changes["is_open"], "is_open") else "closed"
        for name in ("next_open", "next_close"):
            if name in changes:
                raw = changes[name]
                setattr(self, name, parse_time(raw, name) if raw is not None else None)

    def to_json(self) -> dict[str, Any]:
        """``GET /v2/clock``: like Alpaca, in New York time with its offset."""
        now = self.now()
        next_open = self.next_open or next_session_edge(now, edge="open")
        next_close = self.next_close or next_session_edge(now, edge="close")
        return {
            "timestamp": iso_et(now),
            "is_open": self.is_open(),
            "next_open": iso_et(next_open),
            "next_close": iso_et(next_close),
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "next_open": iso_z(self.next_open),
            "next_close": iso_z(self.next_close),
            "frozen_now": iso_z(self.frozen_now),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.mode = data["mode"]
        for name in ("next_open", "next_close", "frozen_now"):
            setattr(self, name, parse_timestamp(data[name]) if data.get(name) else None)


def calendar(start: date, end: date) -> list[dict[str, Any]]:
    """``GET /v2/calendar``: trading days (weekdays less NYSE holidays), regular session."""
    days = trading_days(start, end)
    result = []
    for index, day in enumerate(days):
        settle = days[index + 1] if index + 1 < len(days) else day + timedelta(days=1)
        result.append(
            {
                "date": day.isoformat(),
                "open": "09:30",
                "close": "16:00",
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": settle.isoformat(),
            }
        )
    return result

"""Quotes as TradeOps uses them: one typed value, its age, its wire format, the ingestor's state.

Pure: no ORM, no clock, no network (``now`` is a parameter), so every rule here is tested
table-driven. The Redis key layout and the JSON written under it are documented in
docs/marketdata.md; consumers other than ``QuoteClient`` (signals, dashboards) read the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradeops.broker_types import QuoteReport
from tradeops.symbols import symbol_or_none

PRICE = Decimal("0.0001")

KEY_PREFIX = "quote:latest:"
CHANNEL_PREFIX = "quote:"

STREAMING, BUFFERING, DISCONNECTED, IDLE = "streaming", "buffering", "disconnected", "idle"
SOURCES = ("redis", "buffer", "broker")


def quote_key(symbol: str) -> str:
    """Redis key holding the newest quote of ``symbol`` (a JSON document, see encode_quote)."""
    return KEY_PREFIX + symbol


def quote_channel(symbol: str) -> str:
    """Redis channel every quote of ``symbol`` is PUBLISHed on (same JSON)."""
    return CHANNEL_PREFIX + symbol


@dataclass(frozen=True, slots=True)
class Quote:
    """A top-of-book quote. ``timestamp`` is the broker's quote time, ``received_at`` when
    TradeOps received it (both aware UTC). ``source`` and ``age_seconds`` are set when the
    quote is read (``QuoteClient``): which hop answered and how old the quote was then."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: int
    ask_size: int
    timestamp: datetime
    received_at: datetime
    source: str = ""
    age_seconds: float | None = None

    @property
    def mid(self) -> Decimal:
        """Mid price; one-sided quotes use the side that exists; 0 means no price at all."""
        if self.bid > 0 and self.ask > 0:
            return ((self.bid + self.ask) / 2).quantize(PRICE)
        return max(self.bid, self.ask, Decimal(0))

    @property
    def usable(self) -> bool:
        return self.mid > 0

    @classmethod
    def from_report(cls, report: QuoteReport, *, symbol: str, received_at: datetime) -> Quote:
        """A quote from the broker seam's report (stream or REST), received at ``received_at``."""
        return cls(
            symbol=symbol,
            bid=report.bid_price,
            ask=report.ask_price,
            bid_size=report.bid_size,
            ask_size=report.ask_size,
            timestamp=report.timestamp,
            received_at=received_at,
        )

    def read(self, *, source: str, now: datetime) -> Quote:
        """This quote as read from ``source`` at ``now``."""
        return replace(self, source=source, age_seconds=quote_age_seconds(self, now=now))


def quote_age_seconds(quote: Quote, *, now: datetime) -> float:
    """Seconds since the quote was made, never less than since it was received.

    The broker's timestamp is what says how old a price is; the received-at time bounds it when
    the broker's clock runs ahead of ours (a quote cannot be newer than its arrival). Clock
    skew the other way only makes quotes look older: that fails closed."""
    made = min(quote.timestamp, quote.received_at)
    return max((now - made).total_seconds(), 0.0)


def quote_is_fresh(quote: Quote, *, now: datetime, max_age_seconds: float) -> bool:
    return quote.usable and quote_age_seconds(quote, now=now) <= max_age_seconds


def newest(quotes: list[Quote]) -> Quote | None:
    """The quote with the latest broker timestamp (then the latest arrival)."""
    return max(quotes, key=lambda q: (q.timestamp, q.received_at), default=None)


def ingestor_state(*, has_symbols: bool, connected: bool, redis_ok: bool) -> str:
    """streaming: connected and writing to Redis; buffering: connected, Redis failing (quotes
    held in memory and served by the fallback endpoint); disconnected: the data stream is down
    (reconnecting); idle: no symbol to watch."""
    if not has_symbols:
        return IDLE
    if not connected:
        return DISCONNECTED
    return STREAMING if redis_ok else BUFFERING


@dataclass(frozen=True)
class IngestorStatus:
    """What the ingestor tells the database (heartbeat) and its /status endpoint."""

    state: str
    detail: str
    symbols: list[str]
    connected: bool
    redis_ok: bool
    quotes_received: int
    quotes_written: int
    quotes_buffered: int
    redis_errors: int
    buffer_depth: int
    last_quote_at: datetime | None


# --- wire format (Redis value, PUBLISH payload, fallback endpoint) -----------------------------
def _iso(moment: datetime) -> str:
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def quote_document(quote: Quote) -> dict[str, Any]:
    return {
        "symbol": quote.symbol,
        "bid": str(quote.bid),
        "ask": str(quote.ask),
        "bid_size": quote.bid_size,
        "ask_size": quote.ask_size,
        "timestamp": _iso(quote.timestamp),
        "received_at": _iso(quote.received_at),
    }


def encode_quote(quote: Quote) -> bytes:
    """``quote_document`` as compact JSON, formatted directly (the writer's hot path): every
    field is already safe for JSON without escaping (a validated ASCII symbol, Decimal and int
    text, ISO times). ``test_quoting`` checks it equals the json module's output."""
    return (
        f'{{"symbol":"{quote.symbol}","bid":"{quote.bid}","ask":"{quote.ask}",'
        f'"bid_size":{quote.bid_size},"ask_size":{quote.ask_size},'
        f'"timestamp":"{_iso(quote.timestamp)}","received_at":"{_iso(quote.received_at)}"}}'
    ).encode()


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{name} must be finite and >= 0")
    return number.quantize(PRICE)


def _size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0")
    return value


def _moment(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} is not an ISO-8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} has no UTC offset")
    return moment.astimezone(UTC)


def decode_quote(raw: bytes | str | dict[str, Any]) -> Quote:
    """The inverse of ``encode_quote``; ValueError on anything malformed (a corrupt Redis
    value or a foreign writer must never become a price)."""
    try:
        doc = raw if isinstance(raw, dict) else json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("quote is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("quote is not a JSON object")
    try:
        symbol = symbol_or_none(doc["symbol"])
        if symbol is None:
            raise ValueError(f"bad symbol {doc['symbol']!r}")
        return Quote(
            symbol=symbol,
            bid=_decimal(doc["bid"], "bid"),
            ask=_decimal(doc["ask"], "ask"),
            bid_size=_size(doc["bid_size"], "bid_size"),
            ask_size=_size(doc["ask_size"], "ask_size"),
            timestamp=_moment(doc["timestamp"], "timestamp"),
            received_at=_moment(doc["received_at"], "received_at"),
        )
    except KeyError as exc:
        raise ValueError(f"quote lacks {exc.args[0]!r}") from None

"""What the broker seam hands out: its error classes and small typed reports.

No alpaca-py import here: these are TradeOps' own types (Decimal money, int quantities, aware
UTC datetimes), built from alpaca-py's models in ``tradeops.broker`` (or from the broker's JSON
in ``tradeops.broker_listing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

PRICE = Decimal("0.0001")


# --- errors ----------------------------------------------------------------------------------
class BrokerError(Exception):
    """Base of everything the seam raises."""

    def __init__(self, message: str, *, status_code: int | None = None, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code


class BrokerUnavailable(BrokerError):
    """Ambiguous: the request may or may not have reached the broker. Retry-safe only by
    client_order_id."""


class BrokerRejected(BrokerError):
    """Definitive: the broker refused the request (4xx) and did nothing."""


class DuplicateClientOrderId(BrokerRejected):
    """Alpaca already holds an order with this client_order_id: look it up, never resend."""


class BrokerNotFound(BrokerError):
    """The broker does not know the object (404)."""


class BrokerListingIncomplete(BrokerError):
    """A full page of orders shares one timestamp: after/until paging cannot make progress."""


# --- reports ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderReport:
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: int
    order_type: str
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: int
    filled_avg_price: Decimal | None
    created_at: datetime
    submitted_at: datetime
    updated_at: datetime

    @property
    def remaining_qty(self) -> int:
        return max(self.qty - self.filled_qty, 0)


@dataclass(frozen=True)
class PositionReport:
    symbol: str
    qty: int  # signed: negative when short
    avg_entry_price: Decimal
    market_value: Decimal | None
    current_price: Decimal | None


@dataclass(frozen=True)
class ClockReport:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True)
class AccountReport:
    account_number: str
    status: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal


@dataclass(frozen=True)
class BarReport:
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    vwap: Decimal | None = None
    trade_count: int | None = None


@dataclass(frozen=True)
class SessionReport:
    """One trading day of the broker's calendar; open/close are aware UTC datetimes (alpaca-py
    hands out naive New York wall times)."""

    date: date
    open: datetime
    close: datetime


@dataclass(frozen=True)
class QuoteReport:
    symbol: str
    bid_price: Decimal
    ask_price: Decimal
    bid_size: int
    ask_size: int
    timestamp: datetime

    @property
    def mid(self) -> Decimal:
        if self.bid_price > 0 and self.ask_price > 0:
            return ((self.bid_price + self.ask_price) / 2).quantize(PRICE)
        return max(self.bid_price, self.ask_price)


@dataclass(frozen=True)
class AssetReport:
    """One asset as the broker lists it. Orders may trade it only while it is ``active`` and
    ``tradable``; a sell may open a short only if it is ``shortable`` and ``easy_to_borrow``
    (Alpaca opens shorts in easy-to-borrow securities only)."""

    symbol: str
    asset_id: str
    asset_class: str
    exchange: str
    name: str
    status: str
    tradable: bool
    marginable: bool
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool

    @property
    def is_tradable(self) -> bool:
        return self.status == "active" and self.tradable

    @property
    def can_open_short(self) -> bool:
        return self.shortable and self.easy_to_borrow


def asset_report_from_alpaca(asset: Any) -> AssetReport:
    return AssetReport(
        symbol=asset.symbol,
        asset_id=str(asset.id),
        asset_class=enum_value(asset.asset_class),
        exchange=enum_value(asset.exchange),
        name=asset.name or "",
        status=enum_value(asset.status),
        tradable=bool(asset.tradable),
        marginable=bool(asset.marginable),
        shortable=bool(asset.shortable),
        easy_to_borrow=bool(asset.easy_to_borrow),
        fractionable=bool(asset.fractionable),
    )


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def to_money(value: Any) -> Decimal | None:
    dec = to_decimal(value)
    return None if dec is None else dec.quantize(PRICE)


def to_qty(value: Any) -> int:
    dec = to_decimal(value)
    return 0 if dec is None else int(dec)


def as_aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def enum_value(value: Any) -> str:
    return getattr(value, "value", value) or ""


def order_report_from_alpaca(order: Any) -> OrderReport:
    return OrderReport(
        broker_order_id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=enum_value(order.side),
        qty=to_qty(order.qty),
        order_type=enum_value(order.type or order.order_type),
        time_in_force=enum_value(order.time_in_force),
        limit_price=to_money(order.limit_price),
        stop_price=to_money(order.stop_price),
        status=enum_value(order.status),
        filled_qty=to_qty(order.filled_qty),
        filled_avg_price=to_money(order.filled_avg_price),
        created_at=as_aware(order.created_at),
        submitted_at=as_aware(order.submitted_at),
        updated_at=as_aware(order.updated_at),
    )

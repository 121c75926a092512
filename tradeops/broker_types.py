"""What the broker seam hands out: its error classes and small typed reports.

No alpaca-py import here: these are TradeOps' own types (Decimal money, int quantities, aware
UTC datetimes), built from alpaca-py's models in ``tradeops.broker``, or, for the listings
reconciliation reads, from the JSON alpaca-py's transport returned (``*_from_json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

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


# --- JSON reports (the listings reconciliation reads) ------------------------------------------
# alpaca-py's enum values (alpaca.trading.enums). Reports read from JSON are checked against
# them as strictly as alpaca-py's Order and Position models check them, without importing
# alpaca.trading (it imports pandas: ~0.8 s of CPU in every startup reconciliation).
# tests/tradeops/test_broker_json.py fails if they drift from alpaca-py's.
ORDER_STATUSES = frozenset(
    {
        "new",
        "partially_filled",
        "filled",
        "done_for_day",
        "canceled",
        "expired",
        "replaced",
        "pending_cancel",
        "pending_replace",
        "pending_review",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "stopped",
        "rejected",
        "suspended",
        "calculated",
        "held",
    }
)
ORDER_SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIMES_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
POSITION_SIDES = frozenset({"long", "short"})


def _text(row: dict[str, Any], key: str) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise TypeError(f"{key}: expected a string, got {value!r}")
    return value


def _choice(row: dict[str, Any], key: str, allowed: frozenset[str], *, optional: bool) -> str:
    """A member of ``allowed``; missing, null or "" only if ``optional`` (alpaca-py maps ""
    to None for multi-leg orders), then ""."""
    value = row.get(key)
    if optional and value in (None, ""):
        return ""
    if value not in allowed:
        raise ValueError(f"{key}: unexpected value {value!r}")
    return value


def _number(row: dict[str, Any], key: str, *, required: bool = False) -> Decimal | None:
    """A decimal from a JSON string or number, as alpaca-py's ``str | float`` fields take it."""
    value = row.get(key) if not required else row[key]
    if value is None or value == "":
        if required:
            raise ValueError(f"{key}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"{key}: expected a number, got {value!r}")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:  # decimal.InvalidOperation: not a number
        raise ValueError(f"{key}: not a number: {value!r}") from exc


def _money(row: dict[str, Any], key: str) -> Decimal | None:
    dec = _number(row, key)
    return None if dec is None else dec.quantize(PRICE)


def _quantity(row: dict[str, Any], key: str) -> int:
    dec = _number(row, key)
    return 0 if dec is None else int(dec)


def _timestamp(row: dict[str, Any], key: str) -> datetime:
    return as_aware(datetime.fromisoformat(_text(row, key)))


def order_report_from_json(row: Any) -> OrderReport:
    """An order as the broker's JSON has it (``GET /v2/orders``). Raises ``KeyError``,
    ``TypeError`` or ``ValueError`` on anything alpaca-py's ``Order`` model would refuse
    among the fields read; the seam maps them to ``BrokerUnavailable`` (unreadable)."""
    if not isinstance(row, dict):
        raise TypeError(f"expected an order object, got {type(row).__name__}")
    order_type = _choice(row, "type", ORDER_TYPES, optional=True)
    return OrderReport(
        broker_order_id=str(UUID(_text(row, "id"))),
        client_order_id=_text(row, "client_order_id"),
        symbol=row.get("symbol") or "",
        side=_choice(row, "side", ORDER_SIDES, optional=True),
        qty=_quantity(row, "qty"),
        order_type=order_type or _choice(row, "order_type", ORDER_TYPES, optional=True),
        time_in_force=_choice(row, "time_in_force", TIMES_IN_FORCE, optional=False),
        limit_price=_money(row, "limit_price"),
        stop_price=_money(row, "stop_price"),
        status=_choice(row, "status", ORDER_STATUSES, optional=False),
        filled_qty=_quantity(row, "filled_qty"),
        filled_avg_price=_money(row, "filled_avg_price"),
        created_at=_timestamp(row, "created_at"),
        submitted_at=_timestamp(row, "submitted_at"),
        updated_at=_timestamp(row, "updated_at"),
    )


def position_report_from_json(row: Any) -> PositionReport:
    """A position as the broker's JSON has it (``GET /v2/positions``); quantity signed."""
    if not isinstance(row, dict):
        raise TypeError(f"expected a position object, got {type(row).__name__}")
    qty = int(_number(row, "qty", required=True) or 0)
    if _choice(row, "side", POSITION_SIDES, optional=False) == "short" and qty > 0:
        qty = -qty
    return PositionReport(
        symbol=_text(row, "symbol"),
        qty=qty,
        avg_entry_price=(_number(row, "avg_entry_price", required=True) or Decimal(0)).quantize(
            PRICE
        ),
        market_value=_money(row, "market_value"),
        current_price=_money(row, "current_price"),
    )


def json_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{what}: expected a JSON array, got {type(value).__name__}")
    return value

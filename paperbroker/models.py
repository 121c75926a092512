"""Broker records (orders, positions) and their Alpaca JSON shapes.

Money and quantities are ``Decimal``/``int`` inside and strings on the wire, because alpaca-py's
Position and TradeAccount models reject JSON numbers for money fields.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from paperbroker.timeutil import iso_z, parse_timestamp

# Alpaca's error codes (reference §4.2); the message is what clients branch on.
CODE_VALIDATION = 42210000
CODE_BAD_REQUEST = 40010001  # generic bad request, incl. duplicate client_order_id
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_UNAUTHORIZED = 40110000
CODE_RATE_LIMIT = 42910000
CODE_INTERNAL = 50010000

OPEN_STATUSES = frozenset(
    {
        "new",
        "partially_filled",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "pending_cancel",
        "pending_replace",
        "held",
        "stopped",
        "calculated",
        "suspended",
    }
)
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok")
SIDES = ("buy", "sell")
ASSET_NAMESPACE = uuid.UUID("6f3ed11f-6e66-4171-8000-7061706572b0")
PRICE_2DP = Decimal("0.01")
PRICE_4DP = Decimal("0.0001")


class ApiError(Exception):
    """A refusal with Alpaca's HTTP status and ``{"code", "message"}`` body."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def invalid(message: str) -> ApiError:
    return ApiError(422, CODE_VALIDATION, message)


def dstr(value: Decimal | int | None) -> str | None:
    """Render a number as Alpaca does: plain digits, no exponent, no trailing zeros."""
    if value is None:
        return None
    if isinstance(value, int):
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def tick_size(price: Decimal) -> Decimal:
    """The US equity tick (Reg NMS 612): cents at or above $1, 1/100 cent below."""
    return PRICE_2DP if price >= 1 else PRICE_4DP


def round_price(value: Decimal) -> Decimal:
    """Snap to the US equity tick."""
    step = tick_size(value)
    return max(value.quantize(step, rounding=ROUND_HALF_UP), step)


def to_decimal(value: Any, name: str) -> Decimal:
    """Accept JSON numbers or numeric strings (alpaca-py sends floats, curl users strings)."""
    if isinstance(value, bool) or value is None:
        raise invalid(f"invalid {name}")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise invalid(f"invalid {name}") from None
    if not number.is_finite():
        raise invalid(f"invalid {name}")
    return number


def to_whole(value: Any, name: str) -> int:
    """A whole number of shares from a JSON number or numeric string (422 otherwise)."""
    number = to_decimal(value, name)
    if number != number.to_integral_value():
        raise invalid(f"{name} must be a whole number of shares")
    return int(number)


def as_bool(value: Any, name: str) -> bool:
    """JSON booleans; also "true"/"false" in any case (requests renders query booleans as
    ``True``/``False``, curl users type ``true``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"{name} must be true or false")


@functools.lru_cache(maxsize=4096)
def asset_id_for(symbol: str) -> str:
    """Stable per-symbol asset id, so the same symbol keeps its id across restarts."""
    return str(uuid.uuid5(ASSET_NAMESPACE, symbol))


@dataclass(slots=True)
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: int
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    status: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    seq: int
    position_intent: str | None = None
    origin: str = "api"  # "api" (POST /v2/orders) or "control" (placed behind the client's back)
    filled_qty: int = 0
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    stop_triggered: bool = False
    planned_parts: list[int] = field(default_factory=list)
    last_fill_tick: int = -1

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    @property
    def sort_key(self) -> tuple[datetime, int]:
        return (self.submitted_at, self.seq)

    def to_json(self) -> dict[str, Any]:
        """The order as Alpaca's REST API and trade_updates stream send it."""
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso_z(self.created_at),
            "updated_at": iso_z(self.updated_at),
            "submitted_at": iso_z(self.submitted_at),
            "filled_at": iso_z(self.filled_at),
            "expired_at": iso_z(self.expired_at),
            "expires_at": None,
            "canceled_at": iso_z(self.canceled_at),
            "failed_at": iso_z(self.failed_at),
            "replaced_at": iso_z(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": asset_id_for(self.symbol),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(self.qty),
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": _avg(self.filled_avg_price),
            # Alpaca sends "" for simple orders; alpaca-py maps it to OrderClass.SIMPLE.
            "order_class": "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": dstr(self.limit_price),
            "stop_price": dstr(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }

    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild the order from a state file."""
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "time_in_force": self.time_in_force,
            "qty": self.qty,
            "limit_price": dstr(self.limit_price),
            "stop_price": dstr(self.stop_price),
            "extended_hours": self.extended_hours,
            "status": self.status,
            "created_at": iso_z(self.created_at),
            "updated_at": iso_z(self.updated_at),
            "submitted_at": iso_z(self.submitted_at),
            "seq": self.seq,
            "position_intent": self.position_intent,
            "origin": self.origin,
            "filled_qty": self.filled_qty,
            "filled_avg_price": dstr(self.filled_avg_price),
            "filled_at": iso_z(self.filled_at),
            "canceled_at": iso_z(self.canceled_at),
            "expired_at": iso_z(self.expired_at),
            "failed_at": iso_z(self.failed_at),
            "replaced_at": iso_z(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "stop_triggered": self.stop_triggered,
            "planned_parts": list(self.planned_parts),
            "last_fill_tick": self.last_fill_tick,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Order:
        values = dict(data)
        for name in ("limit_price", "stop_price", "filled_avg_price"):
            values[name] = Decimal(values[name]) if values.get(name) is not None else None
        for name in (
            "created_at",
            "updated_at",
            "submitted_at",
            "filled_at",
            "canceled_at",
            "expired_at",
            "failed_at",
            "replaced_at",
        ):
            raw = values.get(name)
            values[name] = parse_timestamp(raw) if raw else None
        return cls(**values)


@dataclass(slots=True)
class Position:
    """A signed position (negative = short) with its average entry price."""

    symbol: str
    qty: int
    avg_entry_price: Decimal

    def apply_fill(self, signed_qty: int, price: Decimal) -> None:
        """Standard average-cost rules: adding re-averages, reducing keeps the average,
        crossing zero starts a new average at the fill price."""
        new_qty = self.qty + signed_qty
        if self.qty == 0 or (self.qty > 0) == (signed_qty > 0):
            total = self.avg_entry_price * abs(self.qty) + price * abs(signed_qty)
            self.avg_entry_price = total / abs(new_qty)
        elif new_qty != 0 and (new_qty > 0) != (self.qty > 0):
            self.avg_entry_price = price
        self.qty = new_qty

    def to_json(self, current: Decimal, lastday: Decimal, held: int) -> dict[str, Any]:
        avg = self.avg_entry_price.quantize(PRICE_4DP)
        market_value = current * self.qty
        cost_basis = avg * self.qty
        unrealized = market_value - cost_basis
        intraday = (current - lastday) * self.qty
        return {
            "asset_id": asset_id_for(self.symbol),
            "symbol": self.symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": dstr(avg),
            "qty": str(self.qty),
            "qty_available": str(self.qty - held if self.qty > 0 else self.qty + held),
            "side": "long" if self.qty > 0 else "short",
            "market_value": dstr(market_value),
            "cost_basis": dstr(cost_basis),
            "unrealized_pl": dstr(unrealized),
            "unrealized_plpc": _ratio(unrealized, abs(cost_basis)),
            "unrealized_intraday_pl": dstr(intraday),
            "unrealized_intraday_plpc": _ratio(intraday, abs(lastday * self.qty)),
            "current_price": dstr(current),
            "lastday_price": dstr(lastday),
            "change_today": _ratio(current - lastday, lastday),
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "qty": self.qty,
            "avg_entry_price": str(self.avg_entry_price),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Position:
        return cls(data["symbol"], int(data["qty"]), Decimal(data["avg_entry_price"]))


def _avg(value: Decimal | None) -> str | None:
    """Average prices are exact inside; the wire gets 4 decimals."""
    return dstr(value.quantize(PRICE_4DP)) if value is not None else None


def _ratio(numerator: Decimal, denominator: Decimal) -> str:
    if not denominator:
        return "0"
    return dstr((numerator / denominator).quantize(Decimal("0.000001"))) or "0"

"""Validation of order requests the way Alpaca does it, before the broker changes any state.

Every refusal is a 422 ``{"code": 42210000, "message": ...}`` with a message that says what to
fix, so a TradeOps bug shows up as a readable broker rejection.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from paperbroker.clock import parse_time
from paperbroker.models import (
    ORDER_TYPES,
    SIDES,
    TIME_IN_FORCE,
    dstr,
    invalid,
    tick_size,
    to_decimal,
)

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,10}$")
MAX_CLIENT_ORDER_ID = 128


@dataclass(frozen=True, slots=True)
class OrderSpec:
    symbol: str
    qty: int
    side: str
    type: str
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    client_order_id: str
    submitted_at: datetime | None


def validate_symbol(raw: Any) -> str:
    if not isinstance(raw, str) or not _SYMBOL.match(raw.strip().upper()):
        raise invalid(f'asset "{raw}" not found')
    return raw.strip().upper()


def parse_order_request(payload: Mapping[str, Any], *, allow_submitted_at: bool) -> OrderSpec:
    """Turn a ``POST /v2/orders`` body into an ``OrderSpec`` or raise a 422 ``ApiError``."""
    if not isinstance(payload, Mapping):
        raise invalid("request body must be a JSON object")
    _refuse_unsupported(payload)
    order_type = payload.get("type") or payload.get("order_type")
    if order_type not in ORDER_TYPES:
        if order_type == "trailing_stop":
            raise invalid("trailing_stop orders are not supported by the paper broker")
        raise invalid(f"invalid order type: {order_type}")
    time_in_force = payload.get("time_in_force")
    if time_in_force in ("opg", "cls"):
        raise invalid(f"time_in_force {time_in_force} is not supported by the paper broker")
    if time_in_force not in TIME_IN_FORCE:
        raise invalid(f"invalid time_in_force: {time_in_force}")
    side = payload.get("side")
    if side not in SIDES:
        raise invalid(f"invalid side: {side}")
    limit_price = _price(payload, "limit_price", required=order_type in ("limit", "stop_limit"))
    stop_price = _price(payload, "stop_price", required=order_type in ("stop", "stop_limit"))
    if limit_price is not None and order_type not in ("limit", "stop_limit"):
        raise invalid(f"limit_price is not allowed for {order_type} orders")
    if stop_price is not None and order_type not in ("stop", "stop_limit"):
        raise invalid(f"stop_price is not allowed for {order_type} orders")
    extended_hours = payload.get("extended_hours") or False
    if not isinstance(extended_hours, bool):
        raise invalid("extended_hours must be true or false")
    if extended_hours and (order_type != "limit" or time_in_force != "day"):
        raise invalid("extended hours order must be DAY limit orders")
    return OrderSpec(
        symbol=validate_symbol(payload.get("symbol")),
        qty=_qty(payload),
        side=side,
        type=order_type,
        time_in_force=time_in_force,
        limit_price=limit_price,
        stop_price=stop_price,
        extended_hours=extended_hours,
        client_order_id=_client_order_id(payload.get("client_order_id")),
        submitted_at=_submitted_at(payload.get("submitted_at"), allow_submitted_at),
    )


def _refuse_unsupported(payload: Mapping[str, Any]) -> None:
    order_class = payload.get("order_class")
    if order_class not in (None, "", "simple"):
        raise invalid(f"order_class {order_class} is not supported by the paper broker")
    for key in ("legs", "take_profit", "stop_loss", "trail_price", "trail_percent"):
        if payload.get(key) is not None:
            raise invalid(f"{key} is not supported by the paper broker")


def _qty(payload: Mapping[str, Any]) -> int:
    if payload.get("notional") is not None:
        raise invalid("notional orders are not supported by the paper broker; send qty")
    if payload.get("qty") is None:
        raise invalid("qty is required")
    qty = to_decimal(payload["qty"], "qty")
    if qty <= 0:
        raise invalid("qty must be > 0")
    if qty != qty.to_integral_value():
        raise invalid(f"fractional orders are not supported: qty {dstr(qty)} is not whole")
    return int(qty)


def _price(payload: Mapping[str, Any], name: str, *, required: bool) -> Decimal | None:
    raw = payload.get(name)
    if raw is None:
        if required:
            raise invalid(f"{name} is required for {payload.get('type')} orders")
        return None
    price = to_decimal(raw, name)
    if price <= 0:
        raise invalid(f"{name} must be > 0")
    if price != price.quantize(tick_size(price)):
        raise invalid(
            f"invalid {name} {dstr(price)}. sub-penny increment does not fulfill minimum "
            "pricing criteria"
        )
    return price


def _client_order_id(raw: Any) -> str:
    if raw is None or raw == "":
        return str(uuid.uuid4())
    if not isinstance(raw, str):
        raise invalid("client_order_id must be a string")
    if len(raw) > MAX_CLIENT_ORDER_ID:
        raise invalid(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
    return raw


def _submitted_at(raw: Any, allowed: bool) -> datetime | None:
    if raw is None or not allowed:
        return None  # like any unknown field, /v2/orders ignores it
    return parse_time(raw, "submitted_at")

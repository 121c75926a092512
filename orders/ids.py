"""Deterministic client_order_ids: the same order request on the same UTC day is the same order.

Pure: no ORM, no clock (the trade date is a parameter). The id is sent to Alpaca, which refuses a
second order with the same id, so a retried request can never become a second order.

Prices are normalised to 4 decimal places before hashing (DESIGN §3 said 0.01; that would merge
two distinct sub-dollar limit prices such as 0.5012 and 0.5013 into one id, and the second order
would silently be answered with the first). 4 places is the precision we store, so "150",
"150.0" and "150.0000" still hash alike.
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

ID_LENGTH = 24
PRICE_QUANTUM = Decimal("0.0001")


def price_text(value: Decimal | None) -> str:
    """A price as it enters an id: 4 decimal places, empty for none."""
    if value is None:
        return ""
    return str(value.quantize(PRICE_QUANTUM))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def client_order_id_for(
    *,
    symbol: str,
    side: str,
    qty: int,
    order_type: str,
    time_in_force: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    strategy_id: str,
    trade_date: date,
    request_key: str = "",
) -> str:
    """24 lowercase hex chars of sha256(symbol|side|qty|limit|stop|type|tif|strategy|date),
    plus ``|request_key`` when one is given: an operator's form carries a nonce so that two
    forms with the same terms are two orders, while a re-POST of one form stays one."""
    fields = [
        symbol.upper(),
        side,
        str(int(qty)),
        price_text(limit_price),
        price_text(stop_price),
        order_type,
        time_in_force,
        strategy_id,
        trade_date.isoformat(),
    ]
    if request_key:
        fields.append(request_key)
    return _digest("|".join(fields))


def plan_key_for(**request_fields: object) -> str:
    """A TWAP plan's key: the same request fields on the same day give the same plan."""
    return _digest("twap|" + "|".join(f"{k}={request_fields[k]}" for k in sorted(request_fields)))


def slice_client_order_id(*, plan_key: str, slice_num: int) -> str:
    """A slice's id derives from its plan's deterministic key and its number, never from a
    database sequence: a restored or rebuilt database cannot reuse an id Alpaca already holds."""
    return _digest(f"{plan_key}|slice|{slice_num}")

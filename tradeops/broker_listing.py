"""The broker's listings as JSON: the query, paging without a page token, and reading.

Pure (no alpaca-py, no network): ``tradeops.broker`` fetches the pages through alpaca-py's
transport and hands them here. Read as JSON because alpaca-py's ``TradingClient`` imports
pandas (~0.8 s of CPU) and builds a pydantic ``Order`` per order: together most of a
10,000-order startup reconciliation (bench/cold_start.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from tradeops.broker_types import (
    PRICE,
    BrokerListingIncomplete,
    OrderReport,
    PositionReport,
    as_aware,
)

ONE_MICROSECOND = timedelta(microseconds=1)


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


def orders_query(
    status: str,
    after: datetime | None,
    until: datetime | None,
    direction: str,
    limit: int,
    symbols: list[str] | None,
) -> dict[str, Any]:
    """``GET /v2/orders``'s parameters as ``TradingClient.get_orders`` sends them (naive
    datetimes taken as UTC, at most 500 a page, no nesting)."""
    if status not in ("open", "closed", "all") or direction not in ("asc", "desc"):
        raise ValueError(f"list_orders: bad status {status!r} or direction {direction!r}")
    params: dict[str, Any] = {"status": status, "direction": direction}
    params["limit"] = min(limit, 500)
    params["nested"] = False
    for key, moment in (("after", after), ("until", until)):
        if moment is not None:
            params[key] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
    if symbols is not None:
        params["symbols"] = ",".join(symbols)
    return params


Page = Callable[[datetime | None, datetime | None], list[OrderReport]]


def orders_paged(
    page_of: Page,
    *,
    after: datetime | None,
    until: datetime | None,
    ascending: bool,
    page_size: int,
) -> Iterator[list[OrderReport]]:
    """Every order submitted in (after, until), each exactly once, page by page
    (``page_of(after, until)`` is one page).

    Alpaca pages only by ``submitted_at`` with exclusive bounds, and several orders can share
    one timestamp. So the next page starts 1 µs before the last timestamp seen (re-reading
    that instant) and the ids already yielded at that instant are dropped. A full page that
    is all one instant cannot be paged past: ``BrokerListingIncomplete`` (fail closed).
    """
    boundary_ids: set[str] = set()
    while True:
        page = page_of(after, until)
        fresh = [o for o in page if o.broker_order_id not in boundary_ids]
        if fresh:
            yield fresh
        if len(page) < min(page_size, 500):
            return
        edge = page[-1].submitted_at
        if page[0].submitted_at == edge:
            raise BrokerListingIncomplete(
                f"{len(page)} orders share submitted_at={edge.isoformat()}; "
                "cannot page past them with after/until"
            )
        boundary_ids = {o.broker_order_id for o in page if o.submitted_at == edge}
        if ascending:
            after = edge - ONE_MICROSECOND
        else:
            until = edge + ONE_MICROSECOND

"""The listings reconciliation reads as JSON (``tradeops.broker_listing``): the same
reports alpaca-py's models give, refused where alpaca-py's models refuse, and no pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alpaca.trading import enums
from alpaca.trading.models import Order, Position
from django.conf import settings

from tradeops import broker_listing
from tradeops.broker import BrokerUnavailable, get_broker
from tradeops.broker_listing import order_report_from_json, position_report_from_json
from tradeops.broker_types import order_report_from_alpaca

from .probe import fresh_process_json

BASE = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "abc-1",
    "created_at": "2026-11-20T14:30:00.123456789Z",
    "updated_at": "2026-11-20T14:30:01Z",
    "submitted_at": "2026-11-20T14:30:00.1234Z",
    "symbol": "AAPL",
    "qty": "10",
    "filled_qty": 4,
    "filled_avg_price": 101.5,
    "order_class": "simple",
    "type": "limit",
    "order_type": "limit",
    "side": "buy",
    "time_in_force": "gtc",
    "limit_price": "102.25",
    "stop_price": None,
    "status": "partially_filled",
    "extended_hours": False,
}


@pytest.mark.parametrize(
    ("mirror", "enum"),
    [
        (broker_listing.ORDER_STATUSES, enums.OrderStatus),
        (broker_listing.ORDER_SIDES, enums.OrderSide),
        (broker_listing.ORDER_TYPES, enums.OrderType),
        (broker_listing.TIMES_IN_FORCE, enums.TimeInForce),
        (broker_listing.POSITION_SIDES, enums.PositionSide),
    ],
)
def test_the_mirrored_values_are_alpaca_pys(mirror: frozenset[str], enum: Any) -> None:
    assert mirror == {member.value for member in enum}


def test_an_order_reads_as_alpaca_pys_model_reads_it() -> None:
    report = order_report_from_json(ORDER)
    assert report == order_report_from_alpaca(Order(**ORDER))
    assert (report.qty, report.filled_qty, str(report.filled_avg_price)) == (10, 4, "101.5000")
    assert report.created_at == datetime(2026, 11, 20, 14, 30, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "exploded"},
        {"status": None},
        {"side": "hold"},
        {"type": "iceberg"},
        {"time_in_force": "forever"},
        {"id": "not-a-uuid"},
        {"id": 17},
        {"client_order_id": None},
        {"submitted_at": "yesterday"},
        {"updated_at": None},
        {"limit_price": [1]},
    ],
)
def test_an_order_alpaca_py_would_refuse_is_refused(change: dict[str, Any]) -> None:
    row = {**ORDER, **change}
    with pytest.raises((ValueError, TypeError)):
        Order(**row)
    with pytest.raises((ValueError, TypeError)):
        order_report_from_json(row)


@pytest.mark.parametrize(
    "change", [{"qty": "ten"}, {"filled_qty": True}, {"filled_avg_price": "NaN?"}]
)
def test_a_number_that_is_none_is_refused_where_alpaca_py_keeps_the_string(
    change: dict[str, Any],
) -> None:
    """alpaca-py types these ``str | float`` and leaves them unparsed; read as Decimal, a
    non-number is an unreadable answer (before, it raised ``InvalidOperation`` outside the
    error mapping: an "unexpected" run failure)."""
    with pytest.raises((ValueError, TypeError)):
        order_report_from_json({**ORDER, **change})


@pytest.mark.parametrize("missing", ["id", "client_order_id", "status", "time_in_force"])
def test_an_order_without_a_required_field_is_refused(missing: str) -> None:
    row = {k: v for k, v in ORDER.items() if k != missing}
    with pytest.raises((KeyError, ValueError)):
        order_report_from_json(row)


def test_a_multi_leg_parent_with_empty_side_and_type_reads_as_alpaca_py_reads_it() -> None:
    row = {**ORDER, "side": "", "type": "", "order_type": "", "symbol": ""}
    assert order_report_from_json(row) == order_report_from_alpaca(Order(**row))


def test_a_short_position_is_signed() -> None:
    row = {
        "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "symbol": "TSLA",
        "exchange": "NASDAQ",
        "asset_class": "us_equity",
        "avg_entry_price": "250.5",
        "qty": "3",
        "side": "short",
        "cost_basis": "751.5",
        "market_value": "-750",
        "current_price": None,
    }
    Position(**row)  # alpaca-py accepts it too
    report = position_report_from_json(row)
    assert (report.symbol, report.qty, str(report.avg_entry_price)) == ("TSLA", -3, "250.5000")
    with pytest.raises(ValueError):
        position_report_from_json({**row, "side": "sideways"})
    with pytest.raises(KeyError):
        position_report_from_json({k: v for k, v in row.items() if k != "qty"})


def test_a_listing_reads_what_alpaca_pys_models_read(paper: Any) -> None:
    broker = get_broker()
    for i in range(3):
        broker.submit_order(
            client_order_id=f"json-{i}",
            symbol="AAPL",
            side="buy",
            qty=i + 1,
            order_type="market",
            time_in_force="day",
        )
    broker.submit_order(
        client_order_id="json-limit",
        symbol="MSFT",
        side="sell",
        qty=2,
        order_type="limit",
        time_in_force="gtc",
        limit_price=Decimal("999.99"),
    )
    from alpaca.trading.requests import GetOrdersRequest

    request = GetOrdersRequest(status="all", after=BASE - timedelta(days=3650), limit=500)
    modelled = [order_report_from_alpaca(o) for o in broker.trading.get_orders(request)]
    listed = broker.list_orders(status="all", after=BASE - timedelta(days=3650), direction="desc")
    assert len(listed) == 4
    assert listed == modelled
    assert broker.get_positions() == [broker.get_position(p.symbol) for p in broker.get_positions()]


def test_an_unreadable_listing_is_broker_unavailable(paper: Any, monkeypatch: Any) -> None:
    broker = get_broker()
    monkeypatch.setattr(broker._rest, "get", lambda *a, **k: {"orders": []})
    with pytest.raises(BrokerUnavailable, match="unreadable"):
        broker.list_orders(status="all")
    monkeypatch.setattr(broker._rest, "get", lambda *a, **k: [{**ORDER, "status": "??"}])
    with pytest.raises(BrokerUnavailable, match="unreadable"):
        broker.list_orders(status="all")
    with pytest.raises(BrokerUnavailable, match="unreadable"):
        broker.get_positions()


@pytest.mark.parametrize(
    ("calls", "imported"),
    [
        ("list(b.iter_orders(status='all')); b.get_positions()", []),
        ("b.get_clock()", ["alpaca.trading", "pandas"]),  # the probe can see the import
    ],
)
def test_listing_orders_and_positions_imports_no_pandas(
    paper: Any, calls: str, imported: list[str]
) -> None:
    """What the startup reconciliation reads costs no alpaca.trading import (pandas, ~0.8 s)."""
    code = (
        "import django, json, sys; django.setup(); "
        f"from tradeops.broker import get_broker; b = get_broker(); {calls}; "
        "print(json.dumps(sorted(m for m in ('pandas', 'alpaca.trading') if m in sys.modules)))"
    )
    assert fresh_process_json(code, ALPACA_BASE_URL=settings.ALPACA_BASE_URL) == imported

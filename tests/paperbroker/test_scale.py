"""Thousands of orders: bulk creation through the control API, and ``GET /v2/orders`` with the
real client paging them in order (speed is measured by hand, not asserted here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alpaca.trading.requests import GetOrdersRequest

START = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def test_ten_thousand_orders_bulk_create_and_list(trading, control):
    control.reset(fill_model="manual")
    orders = [
        {
            "symbol": "AAPL" if i % 2 else "MSFT",
            "qty": 1,
            "side": "buy",
            "type": "market",
            "time_in_force": "gtc",
            "client_order_id": f"bulk-{i:05d}",
            # 100 orders share each submitted_at, like a burst at one broker timestamp
            "submitted_at": (START + timedelta(seconds=i // 100)).isoformat(),
        }
        for i in range(10_000)
    ]
    created = control.place_orders(orders)
    assert len(created) == 10_000

    page = trading.get_orders(GetOrdersRequest(status="all", limit=500))
    assert len(page) == 500
    assert page[0].client_order_id == "bulk-09999"  # newest first, ties in reverse order

    window = trading.get_orders(
        GetOrdersRequest(
            status="open",
            after=START + timedelta(seconds=49),
            until=START + timedelta(seconds=51),
            direction="asc",
            symbols=["AAPL"],
        )
    )
    assert [o.client_order_id for o in window][:2] == ["bulk-05001", "bulk-05003"]
    assert len(window) == 50

"""A double click on "Place order", for real: the same form posted three times at once on
PostgreSQL is one order at the broker, and every click lands on its result page."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from orders.models import Order
from orders.strategies import manual_strategy_ensure
from tests.orders.test_admin_place import review, submit
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_same_form_posted_at_once_is_one_order(
    trading_ready: None, ops_admin: Any, fat_finger_configured: Any, paper: Any
) -> None:
    manual_strategy_ensure()
    _, token = review(ops_admin, qty="70")  # a warning, confirmed in every click
    barrier = threading.Barrier(3)
    locations: list[str] = []

    def click() -> None:
        client = Client()
        client.cookies = ops_admin.cookies  # the same browser session
        barrier.wait()
        try:
            response = submit(client, token, qty="70", confirm="on")
            locations.append(response["Location"] if response.status_code == 302 else "")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    order = Order.objects.get()
    assert len(locations) == 3
    assert {loc.split("?")[0] for loc in locations} == {
        f"/admin/orders/order/place/result/order/{order.pk}/"
    }
    posts = [r for r in paper.requests() if r["path"] == "/v2/orders" and r["method"] == "POST"]
    assert [r.get("client_order_id") for r in posts] == [order.client_order_id]
    assert AuditEvent.objects.filter(action="order.manual_place").count() == 1

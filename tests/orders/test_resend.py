"""An order that failed because it never reached the broker is sent again when the client asks
again (issue 9, point 2): same request -> same client_order_id -> checks again -> sent once
more, never twice at the broker, also when two re-sends race."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from orders.models import Order, OrderEvent
from tests.helpers import metric, place, reconcile, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failed_order(trader: Any, paper: Any, settings: Any) -> Order:
    """A 10-share AAPL buy whose submit got a 5xx (ambiguous) and that reconciliation then
    did not find at the broker: failed, never placed."""
    settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = 0
    paper.add_fault(method="POST", path="/v2/orders", mode="error500", count=1)
    first = place(trader)
    assert first.status_code == 202
    assert first.json()["status"] == "submitted_unconfirmed"
    assert "failed 1" in reconcile()
    order = Order.objects.get()
    assert (order.status, order.broker_order_id) == ("failed", None)
    return order


def held_by_broker(paper: Any, coid: str) -> int:
    return sum(o["client_order_id"] == coid for o in paper.state()["orders"])


def test_asking_again_places_a_failed_order_once(
    trader: Any, paper: Any, failed_order: Order
) -> None:
    coid = failed_order.client_order_id
    resent = metric("orders_resent_total")
    again = place(trader)
    assert again.status_code == 201, again.json()
    body = again.json()
    assert (body["client_order_id"], body["status"], body["filled_qty"]) == (coid, "filled", 10)
    assert paper.submit_count(coid) == 2  # the 5xx, then the re-send
    assert held_by_broker(paper, coid) == 1
    assert metric("orders_resent_total") == resent + 1
    events = OrderEvent.objects.filter(order=failed_order).order_by("id")
    assert [(e.status, e.reason) for e in events] == [
        ("submitted_unconfirmed", "advanced"),
        ("failed", "advanced"),
        ("pending_new", "resend"),
        ("filled", "first_broker_report"),
    ]
    failed_order.refresh_from_db()
    assert failed_order.reject_reason == ""
    # once placed, the same request is an ordinary replay again
    replay = place(trader)
    assert (replay.status_code, replay.json()["status"]) == (200, "filled")
    assert paper.submit_count(coid) == 2


def test_a_resend_of_an_order_the_broker_got_after_all_is_a_lookup(
    trader: Any, paper: Any, settings: Any
) -> None:
    settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = 0
    paper.add_fault(method="POST", path="/v2/orders", mode="slow", delay=120)
    limit = {"type": "limit", "limit_price": "90.00"}
    assert place(trader, **limit).status_code == 202  # timed out (1 s) while the broker sat
    reconcile()
    order = Order.objects.get()
    assert order.status == "failed"
    paper.clear_faults()  # the broker takes the held submit now: it has the order
    wait_for(lambda: held_by_broker(paper, order.client_order_id) == 1)
    again = place(trader, **limit)
    assert again.status_code == 201
    assert again.json()["status"] == "new"
    assert held_by_broker(paper, order.client_order_id) == 1  # the re-send met a 422: looked up
    assert OrderEvent.objects.filter(order=order, note__contains="duplicate").exists()


def test_the_checks_run_again_before_a_resend(
    trader: Any, paper: Any, failed_order: Order, settings: Any
) -> None:
    settings.RISK_DEFAULT_MAX_ORDER_QTY = 5  # tightened since the first attempt
    refused = place(trader)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "risk_limit"
    failed_order.refresh_from_db()
    assert failed_order.status == "failed"
    assert paper.submit_count(failed_order.client_order_id) == 1


def test_two_concurrent_resends_send_at_most_once(
    trader: Any, paper: Any, failed_order: Order
) -> None:
    coid = failed_order.client_order_id
    # The re-send is answered late, so the rival request arrives while it is in flight.
    paper.add_fault(method="POST", path="/v2/orders", mode="slow", delay=0.5, count=1)
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def again() -> None:
        barrier.wait()
        try:
            codes.append(place(trader).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=again) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(codes) == [200, 201]
    assert paper.submit_count(coid) == 2  # the 5xx and ONE re-send
    assert held_by_broker(paper, coid) == 1
    assert OrderEvent.objects.filter(order=failed_order, reason="resend").count() == 1
    failed_order.refresh_from_db()
    assert failed_order.status == "filled"

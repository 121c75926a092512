"""A status we decided locally never outvotes the broker (issue 9, point 1): an order that
reconciliation marked ``failed`` while the broker was still taking it is reopened by the
broker's first report; its shares count in risk checks, its fills reach the position, a TWAP
plan ended by it becomes active again; and the API never answers 2xx for a failed order.

Reproduced with the paper broker's ``slow`` fault on ``POST /v2/orders``: the broker holds the
request (until the test clears the fault), then processes it like any other."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from orders.models import Order, OrderEvent, PlanStatus, Position, SlicingPlan
from tests.helpers import metric, place, reconcile, wait_for
from tests.orders.twap_support import run_once, twap

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT_BUY = {"type": "limit", "limit_price": "90.00", "qty": 10}  # rests below AAPL's 100


class Post(threading.Thread):
    """``POST /api/v1/orders`` in the background (the request waits for the slow broker)."""

    def __init__(self, client: Any, **body: Any) -> None:
        super().__init__()
        self.client, self.body, self.response = client, body, None

    def run(self) -> None:
        try:
            self.response = place(self.client, **self.body)
        finally:
            connection.close()


def in_flight(paper: Any) -> Order:
    """Once the broker holds the submit: the order, claimed and not answered yet."""
    wait_for(lambda: paper.requests(method="POST", path="/v2/orders"), timeout=10)
    return wait_for(lambda: Order.objects.filter(send_claimed_at__isnull=False).first())


def at_broker(paper: Any, coid: str) -> dict:
    def find() -> dict | None:
        return next((o for o in paper.state()["orders"] if o["client_order_id"] == coid), None)

    return wait_for(find, timeout=10)


def reasons(order: Order) -> list[tuple[str, str, bool]]:
    rows = OrderEvent.objects.filter(order=order).order_by("id")
    return list(rows.values_list("status", "reason", "applied"))


@pytest.fixture
def short_grace(settings: Any) -> None:
    """The issue's setting, shorter still: reconciliation gives up on an unknown order at once."""
    settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = 0


def test_a_failed_order_the_broker_takes_late_is_reopened_counted_and_filled(
    trader: Any, paper: Any, settings: Any, short_grace: None
) -> None:
    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 4.0  # the request gives up after 4 s
    settings.RISK_DEFAULT_MAX_POSITION_QTY = 15
    paper.add_fault(method="POST", path="/v2/orders", mode="slow", delay=120)
    post = Post(trader, **LIMIT_BUY)
    post.start()
    order = in_flight(paper)
    assert "failed 1" in reconcile()  # the broker does not know it (yet): failed
    post.join(30)
    # The API never says "created" for an order that is not placed.
    assert post.response.status_code == 503
    error = post.response.json()["error"]
    assert error["code"] == "order_failed"
    assert error["details"]["order"]["client_order_id"] == order.client_order_id
    assert error["details"]["order"]["status"] == "failed"
    assert post.response["Retry-After"] == str(settings.GATE_RETRY_AFTER_SECONDS)

    paper.clear_faults()  # the broker gets round to it now: it holds the order, new
    assert at_broker(paper, order.client_order_id)["status"] == "new"
    reopened_before = metric("orders_reopened_total", source="reconciliation")
    kind_before = metric("reconciliation_mismatches_total", kind="reopened")
    assert "reopened 1" in reconcile()
    order.refresh_from_db()
    assert (order.status, order.is_terminal, order.broker_order_id is not None) == (
        "new",
        False,
        True,
    )
    assert reasons(order)[-1] == ("new", "reopened_by_broker", True)
    assert metric("orders_reopened_total", source="reconciliation") == reopened_before + 1
    assert metric("reconciliation_mismatches_total", kind="reopened") == kind_before + 1
    # Its 10 shares count again: another 10 would exceed the max position of 15.
    refused = place(trader, type="limit", limit_price="91.00", qty=10)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["open_buy"] == 10

    paper.fill(order.client_order_id, price="90.00")
    reconcile()
    order.refresh_from_db()
    assert (order.status, order.filled_qty) == ("filled", 10)
    assert Position.objects.get(symbol="AAPL").qty == 10  # through the one update path
    assert "positions 0" in reconcile()  # and the broker agrees


def test_the_submit_answer_reopens_an_order_failed_while_it_was_in_flight(
    trader: Any, paper: Any, settings: Any, short_grace: None
) -> None:
    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 30.0  # this request waits for the answer
    paper.add_fault(method="POST", path="/v2/orders", mode="slow", delay=120)
    post = Post(trader, **LIMIT_BUY)
    post.start()
    order = in_flight(paper)
    reconcile()
    order.refresh_from_db()
    assert order.status == "failed"
    paper.clear_faults()  # the broker answers the waiting request: the order is new
    post.join(30)
    assert post.response.status_code == 201, post.response.json()
    assert post.response.json()["status"] == "new"
    order.refresh_from_db()
    assert order.status == "new"
    assert [r[:2] for r in reasons(order)] == [
        ("failed", "advanced"),
        ("new", "reopened_by_broker"),
    ]


def test_a_twap_plan_failed_by_a_locally_failed_slice_follows_it_back(
    trader: Any, paper: Any, short_grace: None, start_not_gating: None
) -> None:
    created = twap(trader, **LIMIT_BUY, duration_minutes=1, interval_seconds=60)
    assert created.status_code == 201
    plan_id = created.json()["id"]
    paper.add_fault(method="POST", path="/v2/orders", mode="slow", delay=120)
    run_once()  # the slice's submit times out (1 s): submitted_unconfirmed
    reconcile()  # not at the broker: failed; the plan's only slice ended with 0 filled
    plan = SlicingPlan.objects.get(pk=plan_id)
    assert plan.status == PlanStatus.FAILED
    slice_ = Order.objects.get(plan_id=plan_id)
    paper.clear_faults()
    at_broker(paper, slice_.client_order_id)
    reconcile()
    plan.refresh_from_db()
    slice_.refresh_from_db()
    assert slice_.status == "new"
    assert (plan.status, plan.ended_at) == (PlanStatus.ACTIVE, None)
    assert "reopened" in plan.status_reason
    paper.fill(slice_.client_order_id, price="90.00")
    reconcile()
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    assert plan.status_reason == "all 1 slices ended; 10 of 10 shares filled"

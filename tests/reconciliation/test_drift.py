"""Drift drills: the broker changes behind the database's back; one `reconcile --once` later the
database agrees again (or the drift is fenced), and the right metric moved."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from orders.models import Order, OrderEvent, Position
from reconciliation.models import (
    OrphanOrder,
    PositionMismatch,
    Quarantine,
    ReconciliationRun,
    ReconciliationState,
)
from tests.helpers import metric, place, reconcile

pytestmark = pytest.mark.django_db


def mismatches(kind: str) -> float:
    return metric("reconciliation_mismatches_total", kind=kind)


def resting(trader: Any, **kw: Any) -> dict:
    """A limit buy far below the market: it rests at the broker as `new`."""
    body = place(trader, type="limit", limit_price="50.00", time_in_force="gtc", **kw)
    assert body.status_code == 201, body.json()
    return body.json()


def test_silent_fill(paper: Any, trading_ready: None, trader: Any) -> None:
    order = resting(trader)
    paper.fill(order["broker_order_id"], qty=10, price="50.00", silent=True)
    before = mismatches("fill")
    output = reconcile()
    row = Order.objects.get()
    assert (row.status, row.filled_qty, str(row.filled_avg_price)) == ("filled", 10, "50.0000")
    assert mismatches("fill") == before + 1
    assert "update" in output and row.client_order_id in output
    event = OrderEvent.objects.filter(order=row, source="reconciliation").get()
    assert event.applied
    assert Position.objects.get(symbol="AAPL").qty == 10


def test_silent_partial_fill(paper: Any, trading_ready: None, trader: Any) -> None:
    order = resting(trader)
    paper.fill(order["broker_order_id"], qty=4, price="50.00", silent=True)
    reconcile()
    row = Order.objects.get()
    assert (row.status, row.filled_qty) == ("partially_filled", 4)
    assert ReconciliationRun.objects.first().fills_corrected == 1


def test_silent_cancel(paper: Any, trading_ready: None, trader: Any) -> None:
    order = resting(trader)
    paper.cancel(order["broker_order_id"], silent=True)
    before = mismatches("order_status")
    reconcile()
    assert Order.objects.get().status == "canceled"
    assert mismatches("order_status") == before + 1


def test_an_order_the_database_never_heard_of_is_an_orphan_and_quarantined(
    paper: Any, trading_ready: None, trader: Any, outsider: Any
) -> None:
    broker_side = paper.place_order(
        "MSFT",
        7,
        "sell",
        type="limit",
        limit_price="400.00",
        time_in_force="gtc",
        client_order_id="someone-else",
    )
    before = metric("symbols_quarantined_total")
    output = reconcile()
    orphan = OrphanOrder.objects.get()
    assert (orphan.broker_order_id, orphan.strategy_id, orphan.status) == (
        broker_side["id"],
        "external",
        "untracked",
    )
    assert str(orphan.estimated_notional) == "2800.00"
    quarantine = Quarantine.objects.active().get()
    assert (quarantine.key, quarantine.orphan) == ("*:MSFT", orphan)
    assert metric("symbols_quarantined_total") == before + 1
    assert "orphan" in output and "*:MSFT" in output
    for client in (trader, outsider):
        refused = place(client, symbol="MSFT", qty=1)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "quarantined"
    assert place(trader, symbol="AAPL", qty=1).status_code == 201  # other symbols trade on
    reconcile()  # seen again: no second orphan, no second quarantine
    assert OrphanOrder.objects.count() == 1 and Quarantine.objects.count() == 1


def test_a_database_order_the_broker_never_received_fails_after_the_grace_period(
    paper: Any, trading_ready: None, trader: Any, settings: Any
) -> None:
    paper.add_fault(method="POST", path="/v2/orders", mode="timeout", count=1, delay=2)
    assert place(trader).status_code == 202  # timed out: the broker never processed it
    reconcile()
    assert Order.objects.get().status == "submitted_unconfirmed"  # inside the grace period
    settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = 0
    before = mismatches("never_submitted")
    output = reconcile()
    order = Order.objects.get()
    assert order.status == "failed"
    assert "not found at the broker" in order.reject_reason
    assert mismatches("never_submitted") == before + 1
    assert "never reached the broker" in output
    assert paper.submit_count(order.client_order_id) == 1  # asked, never re-sent


def test_a_submit_whose_response_was_lost_is_resolved_from_the_broker(
    paper: Any, trading_ready: None, trader: Any
) -> None:
    paper.add_fault(method="POST", path="/v2/orders", mode="drop_response_after_commit")
    assert place(trader).status_code == 202
    reconcile()
    order = Order.objects.get()
    assert (order.status, order.filled_qty) == ("filled", 10)
    assert order.broker_order_id
    assert ReconciliationRun.objects.first().unconfirmed_resolved == 1
    assert paper.submit_count(order.client_order_id) == 1


def test_a_position_changed_at_the_broker_is_recorded_and_corrected(
    paper: Any, trading_ready: None, trader: Any
) -> None:
    assert place(trader, qty=10).status_code == 201
    assert Position.objects.get(symbol="AAPL").qty == 10
    paper.place_order("AAPL", 5, "buy")  # someone bought 5 more: filled at once
    before = mismatches("position")
    reconcile()
    mismatch = PositionMismatch.objects.get()
    assert (mismatch.symbol, mismatch.db_qty, mismatch.broker_qty) == ("AAPL", 10, 15)
    assert Position.objects.get(symbol="AAPL").qty == 15
    assert mismatches("position") == before + 1
    reconcile()
    assert PositionMismatch.objects.count() == 1  # in step now


def test_dry_run_prints_the_diff_and_changes_nothing(
    paper: Any, trading_ready: None, trader: Any
) -> None:
    order = resting(trader)
    paper.fill(order["broker_order_id"], silent=True)
    hwm = ReconciliationState.objects.get().high_water_mark
    output = reconcile("--dry-run")
    assert f"update   {order['client_order_id']} -> filled" in output
    assert "would change 1 orders" in output
    assert Order.objects.get().status == "new"
    assert ReconciliationState.objects.get().high_water_mark == hwm


def test_a_broker_outage_fails_the_run_and_keeps_the_state(
    paper: Any, trading_ready: None, settings: Any
) -> None:
    state = ReconciliationState.objects.get()
    paper.add_fault(method="GET", path="/v2/positions", mode="error500", count=-1)
    out, err = StringIO(), StringIO()
    call_command("reconcile", "--once", stdout=out, stderr=err)
    assert "FAILED" in err.getvalue()
    run = ReconciliationRun.objects.first()
    assert run.status == "failed" and "500" in run.error_text
    after = ReconciliationState.objects.get()
    assert after.last_success_at == state.last_success_at
    assert after.last_run_status == "failed"

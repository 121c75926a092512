"""The gauges the alert rules watch (deploy/prometheus/alerts.yml), read through GET /metrics:
orders in doubt, overdue TWAP slices, the dispatcher's heartbeat, failed reconciliations in a
row, and the broker's 429 answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from orders.dispatch import dispatcher_register
from orders.models import DispatcherRun, Order
from reconciliation.engine import reconciliation_run
from tests.helpers import metric, place, scraped
from tests.orders.twap_support import make_plan

pytestmark = pytest.mark.django_db


def test_an_unconfirmed_order_shows_with_its_age_until_it_is_settled(
    paper: Any, trader: Any, client: Any
) -> None:
    status = "submitted_unconfirmed"
    assert scraped(client, "orders_unconfirmed", status=status) == 0.0
    assert scraped(client, "orders_unconfirmed_oldest_age_seconds", status=status) == 0.0
    paper.add_fault(method="POST", path="/v2/orders", mode="error500", count=-1)
    assert place(trader).status_code == 202
    paper.clear_faults()
    order = Order.objects.get()
    assert order.status == status
    assert scraped(client, "orders_unconfirmed", status=status) == 1.0
    later = timezone.now() + timedelta(seconds=600)
    with time_machine.travel(later, tick=False):
        age = scraped(client, "orders_unconfirmed_oldest_age_seconds", status=status)
        assert age == pytest.approx((later - order.created_at).total_seconds(), abs=1)
        assert scraped(client, "orders_unconfirmed", status="pending_new") == 0.0
    # The broker never got it; once the grace is over reconciliation fails it: settled.
    with time_machine.travel(later, tick=False):
        assert reconciliation_run(kind="manual").succeeded
    assert Order.objects.get().status == "failed"
    assert scraped(client, "orders_unconfirmed", status=status) == 0.0
    assert scraped(client, "orders_unconfirmed_oldest_age_seconds", status=status) == 0.0


def test_waiting_twap_slices_are_not_in_doubt_but_overdue_ones_are_counted(
    trading_ready: None, client: Any
) -> None:
    from tests.helpers import token_client

    token_client("alpha")  # the strategy
    now = timezone.now()
    plan = make_plan(start=now + timedelta(seconds=5), qty=4, interval_seconds=20)
    assert Order.objects.filter(plan=plan).count() == 3  # due at +0 s, +20 s, +40 s
    assert scraped(client, "orders_unconfirmed", status="pending_new") == 0.0
    assert scraped(client, "twap_slices_overdue") == 0.0
    # 45 s after the start only slice 0 is more than 30 s late (slice 1: 25 s); nobody has
    # claimed any: no run_slices is running.
    with time_machine.travel(plan.start_at + timedelta(seconds=45), tick=False):
        assert scraped(client, "twap_slices_overdue") == 1.0
        assert client.get("/health").json()["checks"]["twap_dispatch"]["status"] == "degraded"
    with time_machine.travel(plan.start_at + timedelta(seconds=95), tick=False):
        assert scraped(client, "twap_slices_overdue") == 3.0
        assert scraped(client, "orders_unconfirmed", status="pending_new") == 0.0


def test_dispatcher_heartbeat_shows_running_and_silent_dispatchers(db: Any, client: Any) -> None:
    assert scraped(client, "twap_dispatchers_running") == 0.0
    assert scraped(client, "twap_dispatcher_heartbeat_age_seconds") is None  # none ever ran
    run = dispatcher_register()
    assert scraped(client, "twap_dispatchers_running") == 1.0
    assert scraped(client, "twap_dispatcher_heartbeat_age_seconds") < 5
    # Killed (no stopped_at): its heartbeat ages; after three missed beats it is gone.
    with time_machine.travel(run.heartbeat_at + timedelta(seconds=16), tick=False):
        assert scraped(client, "twap_dispatchers_running") == 0.0
        assert scraped(client, "twap_dispatcher_heartbeat_age_seconds") == pytest.approx(16)
    DispatcherRun.objects.filter(pk=run.pk).update(stopped_at=timezone.now())
    assert scraped(client, "twap_dispatchers_running") == 0.0


def test_failed_reconciliations_in_a_row_are_counted_until_one_succeeds(
    trading_ready: None, paper: Any, client: Any
) -> None:
    assert scraped(client, "reconciliation_consecutive_failures") == 0.0
    paper.add_fault(method="*", path="/v2/*", mode="error500", count=-1)
    assert not reconciliation_run(kind="manual").succeeded
    assert not reconciliation_run(kind="manual").succeeded
    assert reconciliation_run(kind="manual", dry_run=True).succeeded is False
    assert scraped(client, "reconciliation_consecutive_failures") == 2.0  # dry runs aside
    paper.clear_faults()
    assert reconciliation_run(kind="manual").succeeded
    assert scraped(client, "reconciliation_consecutive_failures") == 0.0


def test_every_429_is_counted_even_when_alpaca_py_retries_it_away(
    trading_ready: None, paper: Any, trader: Any
) -> None:
    before = metric("broker_rate_limited_total")
    errors_before = metric("broker_errors_total", kind="unavailable")
    paper.add_fault(method="POST", path="/v2/orders", mode="rate_limit", count=2, delay=0)
    assert place(trader).status_code == 201  # alpaca-py retried twice, then it went through
    assert metric("broker_rate_limited_total") == before + 2
    assert metric("broker_errors_total", kind="unavailable") == errors_before


def test_alerted_counters_are_exported_at_zero_before_their_first_increment(client: Any) -> None:
    """increase() needs a sample before the first error, or the first one is never seen."""
    assert scraped(client, "broker_errors_total", kind="unavailable") is not None
    assert scraped(client, "reconciliation_run_errors_total", cause="unexpected") is not None
    assert scraped(client, "quote_reads_total", source="stale") is not None
    assert scraped(client, "broker_rate_limited_total") is not None


def test_operators_see_trade_stream_heartbeats_in_the_admin(ops_admin: Any) -> None:
    from orders.stream import trade_stream_heartbeat, trade_stream_register

    run = trade_stream_register()
    trade_stream_heartbeat(run_id=run.pk, connected=True, connects=1, events=7)
    assert scraped(ops_admin, "trade_streams_connected") == 1.0
    page = ops_admin.get("/admin/orders/tradestreamrun/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Alive and connected" in html and 'alt="True"' in html
    trade_stream_heartbeat(run_id=run.pk, connected=False, connects=1, events=7)
    assert scraped(ops_admin, "trade_streams_connected") == 0.0
    assert 'alt="False"' in ops_admin.get("/admin/orders/tradestreamrun/").content.decode()

"""Orphans -> quarantine -> adopt / cancel / narrow / resolve, through the admin, the
management commands and the API; orphan exposure in the position limit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.models import Order, Position, RiskLimit
from reconciliation.models import OrphanOrder, PositionMismatch, Quarantine
from tests.helpers import next_code, place, reconcile
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


def orphan_on(paper: Any, symbol: str = "MSFT", **kw: Any) -> OrphanOrder:
    fields = {"type": "limit", "limit_price": "100.00", "time_in_force": "gtc", **kw}
    paper.place_order(symbol, fields.pop("qty", 7), fields.pop("side", "buy"), **fields)
    reconcile()
    return OrphanOrder.objects.get(symbol=symbol)


def otp(user: Any) -> tuple[str, ...]:
    """The step-up options of a command that lifts a fence: the operator and a fresh code."""
    return ("--user", user.username, "--otp", next_code(user.totpdevice_set.get()))


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_adopting_in_the_admin_lifts_the_quarantine(
    paper: Any, trader: Any, outsider: Any, ops_admin: Any
) -> None:
    orphan = orphan_on(paper)
    assert place(trader, symbol="MSFT", qty=1).json()["error"]["code"] == "quarantined"
    page = ops_admin.post(
        "/admin/reconciliation/orphanorder/", {"action": "adopt", "_selected_action": [orphan.pk]}
    )
    assert page.status_code == 200 and b"strategy" in page.content
    done = ops_admin.post(
        "/admin/reconciliation/orphanorder/",
        {
            "action": "adopt",
            "_selected_action": [orphan.pk],
            "confirmed": "yes",
            "strategy": "alpha",
            "reason": "our manual hedge",
            "otp_token": next_code(ops_admin.user.totpdevice_set.get()),
        },
    )
    assert done.status_code == 302
    orphan.refresh_from_db()
    assert orphan.status == "adopted" and orphan.resolved_by == "ops"
    order = orphan.adopted_order
    assert (order.strategy_id, order.origin, order.status, order.qty) == (
        "alpha",
        "adopted",
        "new",
        7,
    )
    assert not Quarantine.objects.active().exists()
    for client in (trader, outsider):
        assert (
            place(client, symbol="MSFT", qty=1, type="limit", limit_price="90.00").status_code
            == 201
        )
    assert AuditEvent.objects.filter(action="orphan.adopt", actor=ops_admin.user).exists()
    reconcile()  # the adopted order is an ordinary order now: no new orphan
    assert OrphanOrder.objects.count() == 1
    assert trader.get(f"/api/v1/orders/{order.client_order_id}").status_code == 200


def test_the_same_flows_through_the_management_commands(
    paper: Any, trader: Any, trading_ready: None, ops_user: Any
) -> None:
    adoptee = orphan_on(paper, "MSFT")
    cancelee = orphan_on(paper, "TSLA", side="sell", limit_price="500.00")
    listing = run("orphans", "list")
    assert adoptee.broker_order_id in listing and "2 orphan(s)" in listing
    assert "2 quarantine(s)" in run("quarantines", "list")
    q = Quarantine.objects.get(orphan=cancelee)
    with pytest.raises(CommandError, match="unresolved"):
        call_command("quarantines", "clear", str(q.pk), "--reason", "just because", *otp(ops_user))
    out = run(
        "orphans",
        "adopt",
        adoptee.broker_order_id,
        "--strategy",
        "alpha",
        "--reason",
        "verified: ours",
        *otp(ops_user),
    )
    assert "adopted as order" in out
    assert place(trader, symbol="MSFT", qty=1, type="limit", limit_price="90.00").status_code == 201
    out = run("orphans", "cancel", cancelee.broker_order_id, "--reason", "not ours, kill it")
    assert "canceled" in out
    cancelee.refresh_from_db()
    assert (cancelee.status, cancelee.broker_status) == ("canceled", "canceled")
    assert not Quarantine.objects.active().exists()
    broker_view = {o["id"]: o["status"] for o in paper.state()["orders"]}
    assert broker_view[cancelee.broker_order_id] == "canceled"
    with pytest.raises(CommandError, match="already"):
        call_command("orphans", "cancel", cancelee.broker_order_id, "--reason", "twice now")
    assert AuditEvent.objects.filter(action__in=["orphan.adopt", "orphan.cancel"]).count() == 2


def test_narrowing_frees_other_strategies_but_keeps_the_exposure(
    paper: Any, trader: Any, trading_ready: None, ops_user: Any
) -> None:
    orphan = orphan_on(paper, "AAPL", qty=100, limit_price="50.00")  # resting buy 100
    assert place(trader, qty=1, type="limit", limit_price="40.00").json()["error"]["code"] == (
        "quarantined"
    )
    assert "narrowed 1" in run(
        "orphans",
        "narrow",
        orphan.broker_order_id,
        "--reason",
        "verified by the desk",
        *otp(ops_user),
    )
    assert Quarantine.objects.active().get().key == "external:AAPL"
    RiskLimit.objects.filter(symbol="*").update(max_position_qty=150)
    refused = place(trader, qty=60, type="limit", limit_price="40.00")
    assert refused.status_code == 422
    details = refused.json()["error"]["details"]
    assert (details["extra_buy"], details["projected"]) == (100, 160)
    assert place(trader, qty=50, type="limit", limit_price="40.00").status_code == 201


def test_a_finished_orphan_is_resolved_then_its_quarantine_is_gone(
    paper: Any, trading_ready: None
) -> None:
    orphan = orphan_on(paper, "MSFT", limit_price="300.00")  # marketable: fills at once
    assert orphan.broker_status == "filled"
    out = run("orphans", "resolve", orphan.broker_order_id, "--reason", "filled, desk knows")
    assert "resolved" in out
    assert not Quarantine.objects.active().exists()
    resting = orphan_on(paper, "TSLA", limit_price="10.00")
    with pytest.raises(CommandError, match="still new"):
        call_command("orphans", "resolve", resting.broker_order_id, "--reason", "too early")


def test_unfilled_orphans_are_auto_canceled_when_the_policy_is_on(
    paper: Any, trading_ready: None, settings: Any
) -> None:
    orphan = orphan_on(paper, "MSFT", limit_price="10.00")
    settings.ORPHAN_AUTO_CANCEL_SECONDS = 60
    reconcile()
    assert OrphanOrder.objects.get().status == "untracked"  # too young
    with time_machine.travel(timezone.now() + timedelta(seconds=120), tick=False):
        reconcile()
    orphan.refresh_from_db()
    assert (orphan.status, orphan.broker_status) == ("canceled", "canceled")
    assert "auto-cancel" in orphan.resolution_note


def test_orphan_and_quarantine_listings(paper: Any, trader: Any, trading_ready: None) -> None:
    orphan = orphan_on(paper)
    orphans = trader.get("/api/v1/orphans", {"status": "untracked"}).json()["results"]
    assert [o["broker_order_id"] for o in orphans] == [orphan.broker_order_id]
    assert orphans[0]["remaining_qty"] == 7 and orphans[0]["strategy_id"] == "external"
    active = trader.get("/api/v1/quarantines", {"active": "true"}).json()["results"]
    assert [q["key"] for q in active] == ["*:MSFT"]
    assert trader.get("/api/v1/orphans", {"status": "bogus"}).status_code == 400


def test_an_adopted_order_keeps_its_broker_client_order_id(
    paper: Any, trader: Any, trading_ready: None, ops_user: Any
) -> None:
    paper.place_order(
        "MSFT",
        3,
        "buy",
        type="limit",
        limit_price="10.00",
        time_in_force="gtc",
        client_order_id="desk-hedge-42",
    )
    reconcile()
    orphan = OrphanOrder.objects.get()
    run(
        "orphans",
        "adopt",
        orphan.broker_order_id,
        "--strategy",
        "alpha",
        "--reason",
        "desk hedge, ours",
        *otp(ops_user),
    )
    assert Order.objects.get().client_order_id == "desk-hedge-42"


def test_an_adopted_partly_filled_orphan_is_stored_as_the_update_path_stores_it(
    paper: Any, trader: Any, trading_ready: None, ops_user: Any
) -> None:
    orphan = orphan_on(paper, "MSFT", qty=7)
    paper.fill(orphan.broker_order_id, qty=3, price="100.00")
    reconcile()  # the orphan's fill reaches our position as the broker's figure
    assert Position.objects.get(symbol="MSFT").qty == 3
    run(
        "orphans",
        "adopt",
        orphan.broker_order_id,
        "--strategy",
        "alpha",
        "--reason",
        "ours, verified",
        *otp(ops_user),
    )
    order = Order.objects.get(broker_order_id=orphan.broker_order_id)
    stored = (order.status, order.status_rank, order.is_terminal, order.source_strength)
    assert stored == ("partially_filled", 3, False, 3)  # as apply_order_update(manual) would
    assert (order.filled_qty, order.filled_avg_price) == (3, Decimal("100.0000"))
    event = order.events.get()
    assert (event.reason, event.status, event.filled_qty) == ("adopted", "partially_filled", 3)
    # the event says which broker state was adopted
    assert event.broker_updated_at == order.broker_updated_at
    assert event.filled_avg_price == Decimal("100.0000")
    assert Position.objects.get(symbol="MSFT").qty == 3  # adoption does not count fills twice
    paper.fill(orphan.broker_order_id, price="100.00")
    reconcile()
    order.refresh_from_db()
    assert (order.status, order.filled_qty) == ("filled", 7)
    assert Position.objects.get(symbol="MSFT").qty == 7  # the new shares only
    assert not PositionMismatch.objects.filter(symbol="MSFT", broker_qty=7).exists()

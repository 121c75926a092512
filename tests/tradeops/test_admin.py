"""The operators' admin: OTP everywhere, audited changes, confirmation pages, step-up."""

from __future__ import annotations

import time
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from orders.models import RiskLimit, TradingSwitch
from tests.helpers import place, totp_now
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_the_console_address_leads_to_the_admin(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_admin_index_links_the_reconciliation_gate_page(ops_admin: Any) -> None:
    index = ops_admin.get("/admin/")
    assert index.status_code == 200
    gate_page = reverse("admin:reconciliation_status")
    assert f'<a href="{gate_page}">Reconciliation gate</a>' in index.content.decode()
    assert "Gate: CLOSED" in ops_admin.get(gate_page).content.decode()


def test_password_alone_does_not_open_the_admin(ops_user: Any) -> None:
    client = Client()
    client.force_login(ops_user)  # password accepted, no OTP device verified
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_login_form_needs_the_otp_code(ops_user: Any) -> None:
    client = Client()
    device = ops_user.totpdevice_set.get()
    denied = client.post(
        "/admin/login/",
        {
            "username": "ops",
            "password": "pw-ops-123456",
            "otp_device": device.persistent_id,
            "otp_token": "000000",
        },
    )
    assert denied.status_code == 200  # the form again, with an error
    assert client.get("/admin/").status_code == 302
    # django-otp throttles a device after a failure (1 s after the first); let that pass.
    with time_machine.travel(time.time() + 3, tick=True):
        ok = client.post(
            "/admin/login/",
            {
                "username": "ops",
                "password": "pw-ops-123456",
                "otp_device": device.persistent_id,
                "otp_token": totp_now(device),
            },
        )
    assert ok.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_order_changelist_query_count_does_not_grow(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def changelist_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert ops_admin.get("/admin/orders/order/").status_code == 200
        return len(ctx.captured_queries)

    for qty in range(1, 4):
        assert place(trader, qty=qty).status_code == 201
    few = changelist_queries()
    for qty in range(4, 24):
        assert place(trader, qty=qty).status_code == 201
    assert changelist_queries() == few
    assert few <= 15


def test_order_ledger_cannot_be_edited_or_deleted(paper: Any, trader: Any, ops_admin: Any) -> None:
    assert place(trader).status_code == 201
    from orders.models import Order

    order = Order.objects.get()
    events = list(order.events.all())
    assert events  # at least the submit's update
    page = ops_admin.get(f"/admin/orders/order/{order.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    # one read-only inline row per event, labelled with the event itself
    assert f'name="events-TOTAL_FORMS" value="{len(events)}"' in html
    for event in events:  # e.g. "submit filled applied (first_broker_report)"
        assert str(event) in html
    assert ops_admin.post(f"/admin/orders/order/{order.pk}/delete/").status_code == 403
    assert ops_admin.get("/admin/orders/order/add/").status_code == 403


def test_risk_limit_change_needs_a_reason_and_is_audited(ops_admin: Any) -> None:
    row = RiskLimit.objects.get(symbol="*")
    url = f"/admin/orders/risklimit/{row.pk}/change/"
    no_reason = ops_admin.post(url, {"max_order_qty": "500"})
    assert no_reason.status_code == 200  # form redisplayed
    assert RiskLimit.objects.get(pk=row.pk).max_order_qty is None
    done = ops_admin.post(url, {"max_order_qty": "500", "audit_reason": "tighten for the drill"})
    assert done.status_code == 302
    assert RiskLimit.objects.get(pk=row.pk).max_order_qty == 500
    event = AuditEvent.objects.get(action="risk_limit.change")
    assert event.actor == ops_admin.user
    assert event.reason == "tighten for the drill"
    assert event.before["max_order_qty"] is None and event.after["max_order_qty"] == 500


def _action(client: Any, name: str, action: str, **extra: str) -> Any:
    return client.post(
        "/admin/orders/tradingswitch/",
        {
            "action": action,
            "_selected_action": [name],
            **extra,
        },
    )


def test_kill_switch_engage_asks_for_confirmation_then_halts(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    page = _action(ops_admin, "kill_switch", "engage")
    assert page.status_code == 200 and b"Confirm" in page.content
    assert not TradingSwitch.objects.get(name="kill_switch").engaged
    done = _action(ops_admin, "kill_switch", "engage", confirmed="yes", reason="fat finger drill")
    assert done.status_code == 302
    assert TradingSwitch.objects.get(name="kill_switch").engaged
    assert place(trader).status_code == 503
    assert AuditEvent.objects.filter(action="kill_switch.engage", actor=ops_admin.user).exists()


def test_releasing_the_kill_switch_needs_a_fresh_otp_code(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    from orders.controls import trading_switch_set

    trading_switch_set(name="kill_switch", engaged=True, actor="test", reason="halt drill")
    device = ops_admin.user.totpdevice_set.get()
    wrong = _action(
        ops_admin, "kill_switch", "release", confirmed="yes", reason="all clear", otp_token="123456"
    )
    assert wrong.status_code == 200 and b"Invalid or already used OTP code" in wrong.content
    assert TradingSwitch.objects.get(name="kill_switch").engaged
    with time_machine.travel(time.time() + 3, tick=True):  # past the 1 s failure throttle
        ok = _action(
            ops_admin,
            "kill_switch",
            "release",
            confirmed="yes",
            reason="all clear",
            otp_token=totp_now(device),
        )
    assert ok.status_code == 302
    assert not TradingSwitch.objects.get(name="kill_switch").engaged
    assert place(trader).status_code == 201


def test_cancel_action_cancels_at_the_broker(paper: Any, trader: Any, ops_admin: Any) -> None:
    from orders.models import Order

    place(trader, type="limit", limit_price="50.00", time_in_force="gtc")
    order = Order.objects.get()
    response = ops_admin.post(
        "/admin/orders/order/",
        {
            "action": "cancel_orders",
            "_selected_action": [order.pk],
            "confirmed": "yes",
            "reason": "operator cleanup",
        },
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == "canceled"
    assert AuditEvent.objects.filter(action="order.cancel_requested", actor=ops_admin.user).exists()


def test_issue_token_action_shows_the_key_once(ops_admin: Any, trader: Any) -> None:
    response = ops_admin.post(
        "/admin/orders/strategy/",
        {
            "action": "issue_token",
            "_selected_action": ["alpha"],
        },
        follow=True,
    )
    assert b"tok_" in response.content
    assert AuditEvent.objects.filter(action="strategy_token.issue", actor=ops_admin.user).exists()

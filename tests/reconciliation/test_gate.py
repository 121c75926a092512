"""The reconciliation gate: closed on a fresh install and after a process start, open after a
reconciliation, closed again when the last success is too old; while closed only cancels and
reduce-only orders (judged from LIVE broker data) pass; the force-complete override."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from orders.models import Order
from reconciliation.gate import process_start_record
from reconciliation.models import ReconciliationState
from tests.helpers import place, reconcile, token_client, totp_now
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


def code(response: Any) -> str:
    return response.json()["error"]["code"]


def test_a_fresh_install_is_gated_until_a_reconciliation_and_again_when_stale(
    paper: Any, trading_switches: None, settings: Any
) -> None:
    trader = token_client("alpha")
    refused = place(trader)
    assert refused.status_code == 503
    assert code(refused) == "gated"
    assert refused["Retry-After"] == str(settings.GATE_RETRY_AFTER_SECONDS)
    assert "no reconciliation has succeeded yet" in refused.json()["error"]["details"]["gate"]
    reconcile()
    assert place(trader).status_code == 201
    later = timezone.now() + timedelta(seconds=settings.RECONCILIATION_MAX_AGE_SECONDS + 5)
    # Limit orders: judged on their own price (the broker's quotes do not travel in time).
    limit = {"qty": 2, "type": "limit", "limit_price": "100.00"}
    with time_machine.travel(later, tick=False):
        stale = place(trader, **limit)
        assert stale.status_code == 503
        assert "exceeds the maximum age" in stale.json()["error"]["message"]
        reconcile()
        assert place(trader, **limit).status_code == 201


def test_a_process_start_closes_the_gate_until_the_next_reconciliation(
    trader: Any, paper: Any
) -> None:
    assert place(trader, qty=1).status_code == 201
    process_start_record(kind="stream")
    assert code(place(trader, qty=2)) == "gated"
    status = trader.get("/api/v1/reconciliation/status").json()
    assert status["gate"]["open"] is False
    assert status["last_process_start_kind"] == "stream"
    reconcile()
    assert place(trader, qty=2).status_code == 201


def test_while_gated_only_reduce_only_orders_pass_judged_from_the_broker(
    trader: Any, paper: Any
) -> None:
    assert place(trader, qty=50).status_code == 201  # long 50
    resting = place(trader, type="limit", limit_price="50.00", qty=5, time_in_force="gtc").json()
    process_start_record(kind="dispatcher")  # gate closed
    paper.place_order("AAPL", 10, "buy")  # the broker now holds 60; the database says 50
    assert place(trader, side="sell", qty=55).status_code == 201  # reduces the LIVE 60
    flip = place(trader, side="sell", qty=6)  # 5 left: 6 would flip to short
    assert flip.status_code == 422
    assert code(flip) == "reduce_only_violation"
    assert flip.json()["error"]["details"]["available_to_close"] == 5
    buy = place(trader, qty=1)
    assert buy.status_code == 503 and code(buy) == "gated"
    cancel = trader.post(f"/api/v1/orders/{resting['client_order_id']}/cancel", {}, format="json")
    assert cancel.status_code == 200  # cancels always pass
    paper.add_fault(method="GET", path="/v2/positions/AAPL", mode="error500", count=-1)
    down = place(trader, side="sell", qty=1)
    assert down.status_code == 503 and code(down) == "gated"
    assert "500" in down.json()["error"]["details"]["broker"]


def test_gate_in_health_and_metrics(
    paper: Any, trading_switches: None, client: Any, settings: Any
) -> None:
    health = client.get("/health").json()
    assert health["checks"]["reconciliation_gate"]["status"] == "degraded"
    process_start_record(kind="cluster")
    later = timezone.now() + timedelta(seconds=settings.RECONCILIATION_TIMEOUT_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        detail = client.get("/health").json()["checks"]["reconciliation_gate"]["detail"]
    assert "startup reconciliation overdue" in detail
    assert client.get("/ready").status_code == 200
    assert "reconciliation_gate_open 0.0" in client.get("/metrics").content.decode()
    reconcile()
    assert "reconciliation_gate_open 1.0" in client.get("/metrics").content.decode()


def _staff_client(*, superuser: bool) -> tuple[Client, Any]:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    User = get_user_model()
    name = "root" if superuser else "viewer"
    user = (
        User.objects.create_superuser(name, f"{name}@x.test", "pw-123456-xyz")
        if superuser
        else User.objects.create_user(name, password="pw-123456-xyz", is_staff=True)
    )
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client, device


def test_force_complete_needs_permission_reason_and_otp(
    paper: Any, trading_switches: None, caplog: pytest.LogCaptureFixture
) -> None:
    url = "/api/v1/reconciliation/force-complete"
    trader = token_client("alpha")
    assert (
        trader.post(url, {"reason": "x" * 10, "otp_token": "1"}, format="json").status_code == 403
    )
    viewer, viewer_device = _staff_client(superuser=False)
    denied = viewer.post(
        url,
        {"reason": "broker list is down", "otp_token": totp_now(viewer_device)},
        content_type="application/json",
    )
    assert denied.status_code == 403
    root, device = _staff_client(superuser=True)
    no_reason = root.post(
        url, {"reason": "", "otp_token": "123456"}, content_type="application/json"
    )
    assert no_reason.status_code == 400
    bad_otp = root.post(
        url,
        {"reason": "broker list is down", "otp_token": "000000"},
        content_type="application/json",
    )
    assert bad_otp.status_code == 403
    with time_machine.travel(time.time() + 3, tick=True):  # past the failure throttle
        ok = root.post(
            url,
            {"reason": "broker list is down", "otp_token": totp_now(device)},
            content_type="application/json",
        )
    assert ok.status_code == 200, ok.json()
    assert ok.json()["gate"] == {
        "open": True,
        "reason": "force-complete override in effect",
        "by_override": True,
    }
    assert AuditEvent.objects.filter(
        action="reconciliation.force_complete", reason="broker list is down"
    ).exists()
    assert place(trader).status_code == 201
    assert Order.objects.get().placed_under_override is True
    assert "ORDER UNDER RECONCILIATION OVERRIDE" in caplog.text


def test_the_override_ages_out_like_a_reconciliation(
    paper: Any, trading_switches: None, settings: Any
) -> None:
    _, device = _staff_client(superuser=True)
    call_command(
        "force_complete_reconciliation",
        "--reason",
        "manual check of the account",
        "--user",
        "root",
        "--otp",
        totp_now(device),
        stdout=StringIO(),
    )
    trader = token_client("alpha")
    assert place(trader).status_code == 201
    later = timezone.now() + timedelta(seconds=settings.RECONCILIATION_MAX_AGE_SECONDS + 5)
    with time_machine.travel(later, tick=False):
        assert code(place(trader, qty=2)) == "gated"
    reconcile()
    assert place(trader, qty=3).status_code == 201
    assert Order.objects.get(qty=3).placed_under_override is False  # a real success now


def test_force_complete_command_refuses_without_permission_or_otp(
    paper: Any, trading_switches: None
) -> None:
    _staff_client(superuser=False)
    with pytest.raises(CommandError, match="manage_reconciliation"):
        call_command(
            "force_complete_reconciliation",
            "--reason",
            "because",
            "--user",
            "viewer",
            "--otp",
            "123456",
        )
    _staff_client(superuser=True)
    with pytest.raises(CommandError, match="OTP"):
        call_command(
            "force_complete_reconciliation",
            "--reason",
            "because",
            "--user",
            "root",
            "--otp",
            "000000",
        )


def test_run_now_endpoint_is_for_verified_staff(paper: Any, trading_switches: None) -> None:
    root, _ = _staff_client(superuser=True)
    response = root.post("/api/v1/reconciliation/run", {}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.json()["kind"] == "manual"
    trader = token_client("alpha")
    assert trader.post("/api/v1/reconciliation/run", {}, format="json").status_code == 403
    status = trader.get("/api/v1/reconciliation/status").json()
    assert status["gate"]["open"] is True
    assert status["last_run"]["id"] == response.json()["id"]


def test_force_complete_while_the_gate_is_open_is_refused_everywhere(
    trading_ready: None, paper: Any
) -> None:
    root, device = _staff_client(superuser=True)
    reason = "verified the account by hand"
    api = root.post(
        "/api/v1/reconciliation/force-complete",
        {"reason": reason, "otp_token": totp_now(device)},
        content_type="application/json",
    )
    assert api.status_code == 409
    assert code(api) == "conflict"
    assert api.json()["error"]["details"] == {"gate": "reconciled", "by_override": False}
    with pytest.raises(CommandError, match="already open"):
        call_command(
            "force_complete_reconciliation", "--reason", reason, "--user", "root", "--otp", "1"
        )
    page_url = "/admin/reconciliation/reconciliationrun/status/"
    assert b"nothing to override" in root.get(page_url).content
    page = root.post(page_url, {"force": "1", "reason": reason, "otp_token": totp_now(device)})
    assert page.status_code == 200
    assert b"already open" in page.content
    state = ReconciliationState.objects.get()
    assert (state.override_active, state.override_at) == (False, None)
    assert not AuditEvent.objects.filter(action="reconciliation.force_complete").exists()
    trader = token_client("alpha")
    assert place(trader).status_code == 201
    assert Order.objects.get().placed_under_override is False


def test_an_override_in_effect_is_not_extended_by_a_second_force_complete(
    paper: Any, trading_switches: None
) -> None:
    root, device = _staff_client(superuser=True)
    url = "/api/v1/reconciliation/force-complete"
    first = root.post(
        url,
        {"reason": "broker list is down", "otp_token": totp_now(device)},
        content_type="application/json",
    )
    assert first.status_code == 200
    given_at = ReconciliationState.objects.get().override_at
    with time_machine.travel(time.time() + 31, tick=True):  # the next OTP step
        again = root.post(
            url,
            {"reason": "still down", "otp_token": totp_now(device)},
            content_type="application/json",
        )
    assert again.status_code == 409
    assert again.json()["error"]["details"]["by_override"] is True
    assert ReconciliationState.objects.get().override_at == given_at

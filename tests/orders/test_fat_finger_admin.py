"""Issue 12 point 1 (per-symbol fat-finger thresholds and the strategies' unconfirmed allowance,
edited in the admin with an audited reason) and issue 10 point 11 (the RiskLimit change list
runs a constant number of queries, whatever the number of rows)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.limits import effective_limits, fat_finger_thresholds
from orders.models import RiskLimit, Strategy
from tests.helpers import next_code, place
from tradeops.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fat_finger_configured")]

BLANK_LIMITS = {
    "max_order_qty": "",
    "max_order_notional": "",
    "max_position_qty": "",
    "fat_finger_warn_notional": "",
    "fat_finger_warn_qty": "",
    "fat_finger_step_up_notional": "",
    "fat_finger_collar_pct": "",
    "fat_finger_warn_pct_adv": "",
    "fat_finger_max_pct_adv": "",
}


def edit_limits(client: Any, row: RiskLimit, **fields: str) -> Any:
    url = f"/admin/orders/risklimit/{row.pk}/change/"
    return client.post(url, {**BLANK_LIMITS, **fields})


def test_a_symbol_override_is_audited_with_its_reason_and_applies(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    row, _ = RiskLimit.objects.get_or_create(symbol="AAPL")
    no_reason = edit_limits(ops_admin, row, fat_finger_warn_notional="1000")
    assert no_reason.status_code == 200  # the form again: a reason is required
    assert RiskLimit.objects.get(pk=row.pk).fat_finger_warn_notional is None

    done = edit_limits(
        ops_admin,
        row,
        fat_finger_warn_notional="1000",
        fat_finger_collar_pct="0.02",
        audit_reason="AAPL is halted-prone this week",
    )
    assert done.status_code == 302
    event = AuditEvent.objects.get(action="risk_limit.change", object_id=str(row.pk))
    assert event.actor == ops_admin.user and event.reason == "AAPL is halted-prone this week"
    assert event.before["fat_finger_warn_notional"] is None
    assert Decimal(event.after["fat_finger_warn_notional"]) == Decimal("1000")
    assert Decimal(event.after["fat_finger_collar_pct"]) == Decimal("0.02")

    aapl, msft = fat_finger_thresholds("AAPL"), fat_finger_thresholds("MSFT")
    assert (aapl.warn_notional, aapl.collar_pct) == (Decimal("1000"), Decimal("0.02"))
    assert (msft.warn_notional, msft.collar_pct) == (Decimal("5000"), Decimal("0.10"))
    # through the API: $1,500 now warns on AAPL, a limit 3 % through the ask is refused
    warned = place(trader, qty=15)
    assert warned.status_code == 201
    assert warned.json()["warnings"] == [
        "notional $1,500.30 exceeds the warning threshold $1,000.00"
    ]
    through = place(trader, qty=1, type="limit", limit_price="103.00")
    assert through.status_code == 422 and through.json()["error"]["code"] == "fat_finger"


def test_the_global_row_overrides_the_settings_and_a_symbol_row_the_global(ops_admin: Any) -> None:
    glob = RiskLimit.objects.get(symbol="*")
    assert (
        edit_limits(
            ops_admin, glob, fat_finger_warn_qty="500", audit_reason="desk-wide tighter"
        ).status_code
        == 302
    )
    RiskLimit.objects.create(symbol="TSLA", fat_finger_warn_qty=50)
    assert fat_finger_thresholds("MSFT").warn_qty == 500
    assert fat_finger_thresholds("TSLA").warn_qty == 50


def test_a_fraction_above_one_is_a_field_error(ops_admin: Any) -> None:
    glob = RiskLimit.objects.get(symbol="*")
    page = edit_limits(ops_admin, glob, fat_finger_collar_pct="1.5", audit_reason="ten percent?")
    assert page.status_code == 200
    assert "Ensure this value is less than or equal to 1" in page.content.decode()
    assert RiskLimit.objects.get(pk=glob.pk).fat_finger_collar_pct is None


def test_a_strategys_unconfirmed_allowance_is_edited_with_an_audited_reason(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    url = "/admin/orders/strategy/alpha/change/"
    form = {
        "name": "",
        "is_active": "on",
        "max_unconfirmed_notional": "20000",
        "tokens-TOTAL_FORMS": "0",
        "tokens-INITIAL_FORMS": "0",
    }
    assert ops_admin.post(url, form).status_code == 200  # no reason: the form again
    assert Strategy.objects.get(pk="alpha").max_unconfirmed_notional is None
    assert place(trader, qty=110).status_code == 422  # step-up tier, not allowed

    # raising the allowance relaxes a control: a step-up (fresh OTP code) as well
    no_code = ops_admin.post(url, {**form, "audit_reason": "alpha sizes up after review #42"})
    assert no_code.status_code == 200 and b"needs a fresh OTP code" in no_code.content
    assert Strategy.objects.get(pk="alpha").max_unconfirmed_notional is None
    code = next_code(ops_admin.user.totpdevice_set.get())
    done = ops_admin.post(
        url, {**form, "audit_reason": "alpha sizes up after review #42", "otp_token": code}
    )
    assert done.status_code == 302, done.content.decode()[:2000]
    event = AuditEvent.objects.get(action="strategy.change", object_id="alpha")
    assert event.after["step_up"]["action"] == "strategy.raise_limit"
    assert event.reason == "alpha sizes up after review #42"
    assert event.before["max_unconfirmed_notional"] is None
    assert Decimal(event.after["max_unconfirmed_notional"]) == Decimal("20000")
    assert place(trader, qty=110).status_code == 201  # $11,002.20 <= $20,000


def test_risk_limit_changelist_query_count_does_not_grow(ops_admin: Any) -> None:
    def changelist() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as ctx:
            page = ops_admin.get("/admin/orders/risklimit/")
            assert page.status_code == 200
        return len(ctx.captured_queries), page.content.decode()

    RiskLimit.objects.filter(symbol="*").update(max_order_qty=700, fat_finger_warn_qty=70)
    RiskLimit.objects.create(symbol="AAA", max_order_qty=5)
    few, _ = changelist()
    for i in range(20):
        RiskLimit.objects.create(symbol=f"S{i:02d}", fat_finger_warn_notional=Decimal(i + 1))
    many, html = changelist()
    assert many == few
    assert few <= 12
    # the effective columns are still right: own value, else the global row's, else settings
    assert effective_limits("AAA").max_order_qty == 5 and "qty ≤ 5," in html
    assert "qty ≤ 700," in html  # S00..S19 inherit the global row
    assert (
        "warn &gt; $20.00 or &gt; 70 sh, OTP &gt; $10,000.00" in html
    )  # S19's own notional, the global qty
    assert "collar 10 %" in html  # from the settings

"""Step-up everywhere risk is relaxed (issue 12 point 5): every operator action that relaxes a
control needs a reason and a fresh OTP code of the operator's own device, through the admin (and
the API where it offers the action). No code: refused, nothing changes. A wrong code: refused,
audited as a failed attempt, counted in ``step_up_failures_total{action}``. The right code: done
and audited with the step-up. ``STEP_UP_WINDOW_SECONDS`` lets a session reuse a step-up only when
configured."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from orders.controls import trading_switch_set
from orders.models import PlanStatus, RiskLimit, SlicingPlan, Strategy, TradingSwitch
from reconciliation.gate import gate_verdict, process_start_record
from reconciliation.models import OrphanOrder, Quarantine
from tests.helpers import metric, next_code, reconcile, totp_now
from tests.orders.twap_support import make_plan
from tradeops.models import AuditEvent
from tradeops.otp import STEP_UP_ACTIONS

# the configured fat-finger thresholds: blank allowance = the $10,000 step-up threshold
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fat_finger_configured")]

NEEDS_CODE = b"needs a fresh OTP code"
WRONG_CODE = b"Invalid or already used OTP code"


def wrong_code(device: Any) -> str:
    """A code the device refuses: none of the steps it would accept now."""
    accepted = {totp_now(device, offset_steps=k) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in accepted)


# --- the actions, each through its admin page ------------------------------------------------
@dataclass(frozen=True)
class Case:
    action: str  # the step-up action (STEP_UP_ACTIONS key, metric label)
    arrange: Callable[[Any], Any]  # (paper) -> the object acted on
    post: Callable[[Any, Any, dict[str, str]], Any]  # (client, object, otp fields) -> response
    done: Callable[[Any], bool]  # (object) -> was the control relaxed?
    audit: str  # the action's own audit row


def changelist_action(url: str, name: str, **fields: str) -> Callable[[Any, Any, dict], Any]:
    def post(client: Any, obj: Any, otp: dict[str, str]) -> Any:
        pk = obj if isinstance(obj, str) else obj.pk
        body = {"action": name, "_selected_action": [pk], "confirmed": "yes", **fields, **otp}
        return client.post(url, body)

    return post


def engaged_kill_switch(paper: Any) -> str:
    trading_switch_set(name="kill_switch", engaged=True, actor="test", reason="drill: halt")
    return "kill_switch"


def paused_plan(paper: Any) -> SlicingPlan:
    plan = make_plan(start=timezone.now() + timedelta(minutes=5), qty=2, interval_seconds=30)
    SlicingPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.PAUSED)
    return plan


def orphan(paper: Any) -> OrphanOrder:
    paper.place_order("MSFT", 7, "buy", type="limit", limit_price="100.00", time_in_force="gtc")
    reconcile()
    return OrphanOrder.objects.get()


def drift_quarantine(paper: Any) -> Quarantine:
    return Quarantine.objects.create(strategy_id="*", symbol="TSLA", reason="drift found")


def closed_gate(paper: Any) -> None:
    process_start_record(kind="test")
    assert not gate_verdict().open


def force_complete_in_admin(client: Any, obj: Any, otp: dict[str, str]) -> Any:
    body = {"force": "1", "reason": "broker list down, verified by hand", **otp}
    return client.post("/admin/reconciliation/reconciliationrun/status/", body)


def global_limits(paper: Any) -> RiskLimit:
    row, _ = RiskLimit.objects.update_or_create(
        symbol="*",
        defaults={"max_order_qty": 1000, "max_order_notional": "50000", "max_position_qty": 5000},
    )
    return row


def raise_order_qty(client: Any, row: RiskLimit, otp: dict[str, str]) -> Any:
    body = {
        "max_order_qty": "2000",
        "max_order_notional": "50000",
        "max_position_qty": "5000",
        "audit_reason": "desk asked for bigger clips",
        **otp,
    }
    return client.post(f"/admin/orders/risklimit/{row.pk}/change/", body)


def raise_allowance(client: Any, strategy_id: str, otp: dict[str, str]) -> Any:
    body = {
        "name": "",
        "is_active": "on",
        "max_unconfirmed_notional": "20000",  # blank = the $10,000 step-up threshold
        "tokens-TOTAL_FORMS": "0",
        "tokens-INITIAL_FORMS": "0",
        "audit_reason": "alpha sizes up after review",
        **otp,
    }
    return client.post(f"/admin/orders/strategy/{strategy_id}/change/", body)


CASES = [
    Case(
        "trading_switch.release",
        engaged_kill_switch,
        changelist_action("/admin/orders/tradingswitch/", "release", reason="all clear now"),
        lambda name: not TradingSwitch.objects.get(name=name).engaged,
        "kill_switch.release",
    ),
    Case(
        "plan.resume",
        paused_plan,
        changelist_action("/admin/orders/slicingplan/", "resume", reason="news digested"),
        lambda plan: SlicingPlan.objects.get(pk=plan.pk).status == PlanStatus.ACTIVE,
        "plan.resume",
    ),
    Case(
        "orphan.adopt",
        orphan,
        changelist_action(
            "/admin/reconciliation/orphanorder/", "adopt", strategy="alpha", reason="our hedge"
        ),
        lambda o: OrphanOrder.objects.get(pk=o.pk).status == "adopted",
        "orphan.adopt",
    ),
    Case(
        "quarantine.narrow",
        orphan,
        changelist_action(
            "/admin/reconciliation/orphanorder/", "narrow_quarantine", reason="desk verified"
        ),
        lambda o: Quarantine.objects.active().get(orphan=o).strategy_id == "external",
        "quarantine.narrow",
    ),
    Case(
        "quarantine.clear",
        drift_quarantine,
        changelist_action("/admin/reconciliation/quarantine/", "clear", reason="drift explained"),
        lambda q: not Quarantine.objects.get(pk=q.pk).is_active,
        "quarantine.clear",
    ),
    Case(
        "reconciliation.force_complete",
        closed_gate,
        force_complete_in_admin,
        lambda _: gate_verdict().open,
        "reconciliation.force_complete",
    ),
    Case(
        "risk_limit.raise",
        global_limits,
        raise_order_qty,
        lambda row: RiskLimit.objects.get(pk=row.pk).max_order_qty == 2000,
        "risk_limit.change",
    ),
    Case(
        "strategy.raise_limit",
        lambda paper: "alpha",
        raise_allowance,
        lambda sid: Strategy.objects.get(pk=sid).max_unconfirmed_notional == 20000,
        "strategy.change",
    ),
]
IDS = [c.action for c in CASES]


def test_every_step_up_action_is_exercised_here_or_in_its_app() -> None:
    # the model override is exercised in tests/signals/test_admin.py (it needs trained models);
    # a large manual order in tests/orders/test_admin_place.py (it needs the Place order page)
    elsewhere = {"model.activate_unvalidated", "order.place_large"}
    assert set(STEP_UP_ACTIONS) == set(IDS) | elsewhere


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_without_a_code_the_action_is_refused_and_nothing_changes(
    case: Case, paper: Any, trader: Any, ops_admin: Any
) -> None:
    obj = case.arrange(paper)
    page = case.post(ops_admin, obj, {})
    assert page.status_code == 200 and NEEDS_CODE in page.content
    assert not case.done(obj)
    assert not AuditEvent.objects.filter(action=case.audit).exists()
    assert not AuditEvent.objects.filter(action="step_up.failed").exists()  # not an attempt


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_wrong_code_is_refused_audited_and_counted(
    case: Case, paper: Any, trader: Any, ops_admin: Any
) -> None:
    obj = case.arrange(paper)
    before = metric("step_up_failures_total", action=case.action)
    device = ops_admin.user.totpdevice_set.get()
    page = case.post(ops_admin, obj, {"otp_token": wrong_code(device)})
    assert page.status_code == 200 and WRONG_CODE in page.content
    assert not case.done(obj)
    assert not AuditEvent.objects.filter(action=case.audit).exists()
    failed = AuditEvent.objects.get(action="step_up.failed")
    assert (failed.actor, failed.object_id) == (ops_admin.user, case.action)
    assert metric("step_up_failures_total", action=case.action) == before + 1
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # django-otp's throttle counted it too


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_right_code_relaxes_the_control_and_audits_the_step_up(
    case: Case, paper: Any, trader: Any, ops_admin: Any
) -> None:
    obj = case.arrange(paper)
    device = ops_admin.user.totpdevice_set.get()
    page = case.post(ops_admin, obj, {"otp_token": next_code(device)})
    assert page.status_code == 302, page.content[-2000:]
    assert case.done(obj)
    event = AuditEvent.objects.get(action=case.audit)
    assert event.actor == ops_admin.user and event.reason
    step_up = event.after["step_up"]
    assert (step_up["action"], step_up["device"], step_up["reused"]) == (
        case.action,
        device.persistent_id,
        False,
    )


def test_the_code_used_to_log_in_cannot_step_up(paper: Any, trader: Any, ops_admin: Any) -> None:
    """django-otp refuses a code at or before the device's last used step: the login code."""
    device = ops_admin.user.totpdevice_set.get()
    login_code = next_code(device)
    from django_otp import verify_token

    assert verify_token(ops_admin.user, device.persistent_id, login_code) is not None  # logged in
    name = engaged_kill_switch(paper)
    post = CASES[0].post
    page = post(ops_admin, name, {"otp_token": login_code})
    assert page.status_code == 200 and WRONG_CODE in page.content
    assert TradingSwitch.objects.get(name=name).engaged


def test_wrong_codes_are_throttled_by_django_otp(paper: Any, trader: Any, ops_admin: Any) -> None:
    device = ops_admin.user.totpdevice_set.get()
    name = engaged_kill_switch(paper)
    post = CASES[0].post
    post(ops_admin, name, {"otp_token": wrong_code(device)})
    before = metric("step_up_failures_total", action="trading_switch.release")
    page = post(ops_admin, name, {"otp_token": next_code(device)})  # within the 1 s wait
    assert page.status_code == 200 and b"Too many wrong OTP codes" in page.content
    assert TradingSwitch.objects.get(name=name).engaged
    assert metric("step_up_failures_total", action="trading_switch.release") == before + 1
    with time_machine.travel(time.time() + 3, tick=True):  # the wait is over
        assert post(ops_admin, name, {"otp_token": next_code(device)}).status_code == 302
    assert not TradingSwitch.objects.get(name=name).engaged


# --- tightening needs a reason, never a code ---------------------------------------------------
def test_engaging_a_switch_and_pausing_a_plan_need_a_reason_but_no_code(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    plan = make_plan(start=timezone.now() + timedelta(minutes=5), qty=2, interval_seconds=30)
    pause = changelist_action("/admin/orders/slicingplan/", "pause", reason="news pending")
    assert pause(ops_admin, plan, {}).status_code == 302
    assert SlicingPlan.objects.get(pk=plan.pk).status == PlanStatus.PAUSED
    engage = changelist_action("/admin/orders/tradingswitch/", "engage", reason="halt")
    short = engage(ops_admin, "kill_switch", {})
    assert short.status_code == 200 and b"5 to 1000 characters" in short.content
    assert not TradingSwitch.objects.get(name="kill_switch").engaged
    engage = changelist_action("/admin/orders/tradingswitch/", "engage", reason="halt drill")
    assert engage(ops_admin, "kill_switch", {}).status_code == 302
    assert TradingSwitch.objects.get(name="kill_switch").engaged


def test_lowering_a_risk_limit_needs_no_code(paper: Any, trader: Any, ops_admin: Any) -> None:
    row = global_limits(paper)
    body = {
        "max_order_qty": "500",
        "max_order_notional": "50000",
        "max_position_qty": "5000",
        "audit_reason": "tighter after the incident",
    }
    page = ops_admin.post(f"/admin/orders/risklimit/{row.pk}/change/", body)
    assert page.status_code == 302
    assert RiskLimit.objects.get(pk=row.pk).max_order_qty == 500
    assert "step_up" not in AuditEvent.objects.get(action="risk_limit.change").after


def test_blanking_a_symbol_limit_that_then_inherits_more_is_raising(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    global_limits(paper)
    row = RiskLimit.objects.create(symbol="AAPL", max_order_qty=100)
    body = {"max_order_qty": "", "audit_reason": "inherit the global limit"}
    page = ops_admin.post(f"/admin/orders/risklimit/{row.pk}/change/", body)
    assert page.status_code == 200 and NEEDS_CODE in page.content
    assert b"max_order_qty" in page.content  # the page names what the change raises
    assert RiskLimit.objects.get(pk=row.pk).max_order_qty == 100


def test_a_new_symbol_row_above_the_effective_limit_needs_a_code(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    global_limits(paper)
    below = {"symbol": "AAPL", "max_order_qty": "10", "audit_reason": "small clips only"}
    assert ops_admin.post("/admin/orders/risklimit/add/", below).status_code == 302
    above = {"symbol": "MSFT", "max_order_qty": "5000", "audit_reason": "bigger clips"}
    page = ops_admin.post("/admin/orders/risklimit/add/", above)
    assert page.status_code == 200 and NEEDS_CODE in page.content
    assert not RiskLimit.objects.filter(symbol="MSFT").exists()
    device = ops_admin.user.totpdevice_set.get()
    done = ops_admin.post("/admin/orders/risklimit/add/", {**above, "otp_token": next_code(device)})
    assert done.status_code == 302
    assert RiskLimit.objects.get(symbol="MSFT").max_order_qty == 5000


def test_raising_a_fat_finger_threshold_needs_a_code_lowering_it_does_not(
    paper: Any, trader: Any, ops_admin: Any, settings: Any
) -> None:
    row = RiskLimit.objects.create(symbol="TSLA")  # everything inherited: collar 0.10
    url = f"/admin/orders/risklimit/{row.pk}/change/"
    tighter = {"fat_finger_collar_pct": "0.05", "audit_reason": "tighter collar on TSLA"}
    assert ops_admin.post(url, tighter).status_code == 302
    looser = {"fat_finger_collar_pct": "0.20", "audit_reason": "TSLA moves a lot today"}
    page = ops_admin.post(url, looser)
    assert page.status_code == 200 and NEEDS_CODE in page.content
    assert b"fat_finger_collar_pct" in page.content
    code = next_code(ops_admin.user.totpdevice_set.get())
    assert ops_admin.post(url, {**looser, "otp_token": code}).status_code == 302
    assert str(RiskLimit.objects.get(pk=row.pk).fat_finger_collar_pct) == "0.200000"


def test_deactivating_a_strategy_needs_no_code_reactivating_it_does(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    url = "/admin/orders/strategy/alpha/change/"
    form = {"name": "", "tokens-TOTAL_FORMS": "0", "tokens-INITIAL_FORMS": "0"}
    off = ops_admin.post(url, {**form, "audit_reason": "alpha misbehaves"})  # unticked
    assert off.status_code == 302 and not Strategy.objects.get(pk="alpha").is_active
    on = {**form, "is_active": "on", "audit_reason": "alpha fixed and reviewed"}
    page = ops_admin.post(url, on)
    assert page.status_code == 200 and NEEDS_CODE in page.content
    assert not Strategy.objects.get(pk="alpha").is_active
    code = next_code(ops_admin.user.totpdevice_set.get())
    assert ops_admin.post(url, {**on, "otp_token": code}).status_code == 302
    assert Strategy.objects.get(pk="alpha").is_active


# --- the API: force-complete --------------------------------------------------------------------
FORCE_URL = "/api/v1/reconciliation/force-complete"


def force_via_api(client: Any, **body: str) -> Any:
    body = {"reason": "broker list down, verified by hand", **body}
    return client.post(FORCE_URL, body, content_type="application/json")


def test_force_complete_through_the_api_needs_a_fresh_code(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    closed_gate(paper)
    device = ops_admin.user.totpdevice_set.get()
    missing = force_via_api(ops_admin)
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "otp_required"
    before = metric("step_up_failures_total", action="reconciliation.force_complete")
    wrong = force_via_api(ops_admin, otp_token=wrong_code(device))
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "otp_invalid"
    assert not gate_verdict().open
    assert metric("step_up_failures_total", action="reconciliation.force_complete") == before + 1
    assert AuditEvent.objects.filter(action="step_up.failed").count() == 1
    with time_machine.travel(time.time() + 3, tick=True):  # past the throttle
        done = force_via_api(ops_admin, otp_token=next_code(device))
    assert done.status_code == 200 and done.json()["gate"]["open"]
    event = AuditEvent.objects.get(action="reconciliation.force_complete")
    assert event.after["step_up"]["action"] == "reconciliation.force_complete"


def test_the_api_refuses_a_short_reason_with_the_rule(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    closed_gate(paper)
    device = ops_admin.user.totpdevice_set.get()
    response = force_via_api(ops_admin, reason="   ok   ", otp_token=next_code(device))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "5 to 1000 characters" in error["message"]
    assert not gate_verdict().open
    assert not AuditEvent.objects.filter(action="step_up.failed").exists()  # no code spent


# --- the window -------------------------------------------------------------------------------
def test_by_default_every_action_asks_for_a_new_code(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    device = ops_admin.user.totpdevice_set.get()
    release = CASES[0].post
    name = engaged_kill_switch(paper)
    assert release(ops_admin, name, {"otp_token": next_code(device)}).status_code == 302
    engaged_kill_switch(paper)
    again = release(ops_admin, name, {})
    assert again.status_code == 200 and NEEDS_CODE in again.content
    assert TradingSwitch.objects.get(name=name).engaged


def test_a_configured_window_reuses_a_step_up_in_the_same_session_only(
    paper: Any, trader: Any, ops_admin: Any, settings: Any, client_factory: Any
) -> None:
    settings.STEP_UP_WINDOW_SECONDS = 120
    device = ops_admin.user.totpdevice_set.get()
    release = CASES[0].post
    name = engaged_kill_switch(paper)
    assert release(ops_admin, name, {"otp_token": next_code(device)}).status_code == 302
    plan = paused_plan(paper)
    resume = CASES[1].post
    assert resume(ops_admin, plan, {}).status_code == 302  # another action, same session
    reused = AuditEvent.objects.get(action="plan.resume").after["step_up"]
    assert reused["reused"] is True and reused["action"] == "plan.resume"
    # another browser of the same operator has not stepped up
    other = client_factory()
    engaged_kill_switch(paper)
    page = release(other, name, {})
    assert page.status_code == 200 and NEEDS_CODE in page.content
    # and the window ends
    with time_machine.travel(time.time() + 121, tick=True):
        late = release(ops_admin, name, {})
    assert late.status_code == 200 and NEEDS_CODE in late.content
    assert TradingSwitch.objects.get(name=name).engaged


@pytest.fixture
def client_factory(ops_user: Any) -> Callable[[], Any]:
    """Another OTP-verified admin session of the same operator (another browser)."""
    from django.test import Client

    def make() -> Any:
        other = Client()
        other.force_login(ops_user)
        session = other.session
        session["otp_device_id"] = ops_user.totpdevice_set.get().persistent_id
        session.save()
        return other

    return make

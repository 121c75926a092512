"""TWAP plans in the operators' admin: list, detail with the progress chart, cancel-remaining."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.charts import cumulative, progress_svg
from orders.models import PlanStatus, SlicingPlan
from tests.orders.twap_support import make_plan, run_once, statuses
from tradeops.models import AuditEvent

# In-process dispatchers ask for a reconciliation when they start; q_sync runs it inline,
# as a job cluster would.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("q_sync")]


def test_plan_changelist_query_count_does_not_grow(paper: Any, trader: Any, ops_admin: Any) -> None:
    def changelist_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert ops_admin.get("/admin/orders/slicingplan/").status_code == 200
        return len(ctx.captured_queries)

    start = timezone.now() - timedelta(seconds=5)
    for qty in range(60, 63):
        make_plan(start=start, qty=qty, interval_seconds=30)
    few = changelist_queries()
    for qty in range(63, 80):
        make_plan(start=start, qty=qty, interval_seconds=30)
    assert changelist_queries() == few
    page = ops_admin.get("/admin/orders/slicingplan/").content.decode()
    for plan in SlicingPlan.objects.all():  # every plan is a row of the list
        assert f"/admin/orders/slicingplan/{plan.pk}/change/" in page


def test_plan_detail_shows_planned_vs_filled_chart(paper: Any, trader: Any, ops_admin: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=25), qty=6, interval_seconds=10)
    run_once()
    page = ops_admin.get(f"/admin/orders/slicingplan/{plan.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and 'class="planned"' in html and 'class="filled"' in html
    assert "planned: 6 shares" in html and "filled: 3 shares" in html
    assert "<script" not in html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert html.count("slice") >= 6  # the slices inline


def test_progress_chart_is_a_staircase_of_cumulative_shares() -> None:
    t0 = timezone.now()
    events = [(t0 + timedelta(seconds=20), 5), (t0, 3), (t0 + timedelta(seconds=10), 2)]
    assert [q for _, q in cumulative(events)] == [3, 5, 10]
    svg = progress_svg(planned=events, filled=events[1:2], total=10, now=t0)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "filled: 3 shares" in svg and "planned: 10 shares" in svg


def test_cancel_remaining_asks_for_a_reason_then_cancels_and_audits(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=5), qty=4, interval_seconds=15)
    done = make_plan(start=timezone.now(), qty=1, interval_seconds=60, symbol="MSFT")
    SlicingPlan.objects.filter(pk=done.pk).update(status=PlanStatus.COMPLETED)
    url = "/admin/orders/slicingplan/"
    form = {"action": "cancel_remaining", "_selected_action": [plan.pk, done.pk]}
    page = ops_admin.post(url, form)
    assert page.status_code == 200 and b"Confirm" in page.content
    assert SlicingPlan.objects.get(pk=plan.pk).status == PlanStatus.ACTIVE
    no_reason = ops_admin.post(url, {**form, "confirmed": "yes", "reason": ""})
    assert no_reason.status_code == 200  # the form again
    response = ops_admin.post(
        url, {**form, "confirmed": "yes", "reason": "strategy misbehaving"}, follow=True
    )
    assert response.status_code == 200
    assert b"4 pending slice(s) canceled." in response.content
    assert b"already completed" in response.content
    assert statuses(plan) == {"canceled": 4}
    event = AuditEvent.objects.get(action="plan.cancel")
    assert (event.actor, event.reason) == (ops_admin.user, "strategy misbehaving")
    assert event.object_id == str(plan.pk)


def test_dispatcher_runs_are_listed(paper: Any, ops_admin: Any) -> None:
    from orders.dispatch import dispatcher_register

    dispatcher_register()
    page = ops_admin.get("/admin/orders/dispatcherrun/")
    assert page.status_code == 200 and b"icon-yes" in page.content


def test_pause_keeps_slices_and_resume_restarts_the_schedule_from_now(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    from tests.helpers import totp_now

    plan = make_plan(start=timezone.now() - timedelta(seconds=55), qty=6, interval_seconds=10)
    url = "/admin/orders/slicingplan/"
    form = {"_selected_action": [plan.pk], "confirmed": "yes"}
    ops_admin.post(url, {**form, "action": "pause", "reason": "news pending"})
    assert SlicingPlan.objects.get(pk=plan.pk).status == PlanStatus.PAUSED
    run_once()
    assert statuses(plan) == {"pending_new": 6}  # all overdue, none sent while paused

    device = ops_admin.user.totpdevice_set.get()
    before = timezone.now()
    done = ops_admin.post(
        url, {**form, "action": "resume", "reason": "news out", "otp_token": totp_now(device)}
    )
    assert done.status_code == 302
    rows = list(plan.slices.order_by("slice_num"))
    assert before <= rows[0].scheduled_time <= timezone.now()
    assert [(r.scheduled_time - rows[0].scheduled_time).seconds for r in rows] == [
        0,
        10,
        20,
        30,
        40,
        50,
    ]  # spacing kept: no burst of six overdue slices
    audit = AuditEvent.objects.filter(object_type="slicing_plan", object_id=str(plan.pk))
    assert sorted(audit.values_list("action", flat=True)) == ["plan.pause", "plan.resume"]
    run_once()
    assert statuses(plan) == {"filled": 1, "pending_new": 5}


def test_resume_needs_a_valid_otp_code(paper: Any, trader: Any, ops_admin: Any) -> None:
    plan = make_plan(start=timezone.now(), qty=2, interval_seconds=30)
    SlicingPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.PAUSED)
    page = ops_admin.post(
        "/admin/orders/slicingplan/",
        {
            "action": "resume",
            "_selected_action": [plan.pk],
            "confirmed": "yes",
            "reason": "try it again",
            "otp_token": "123456",
        },
    )
    assert page.status_code == 200 and b"Invalid or already used OTP code" in page.content
    assert SlicingPlan.objects.get(pk=plan.pk).status == PlanStatus.PAUSED


def test_health_degrades_when_slices_are_overdue(paper: Any, trader: Any, client: Any) -> None:
    make_plan(start=timezone.now() - timedelta(seconds=45), qty=2, interval_seconds=30)
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert "1 TWAP slices overdue" in health["checks"]["twap_dispatch"]["detail"]
    assert client.get("/ready").status_code == 200
    run_once()
    assert client.get("/health").json()["checks"]["twap_dispatch"]["status"] == "ok"

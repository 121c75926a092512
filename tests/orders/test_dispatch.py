"""The slice dispatcher (``manage.py run_slices``) against the paper broker through the real
alpaca-py client: timing, pre-send checks, the misfire rule, plan status, signals."""

from __future__ import annotations

import signal
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orders.controls import trading_switch_set
from orders.models import DispatcherRun, Order, PlanStatus, SlicingPlan
from tests.helpers import metric, step_up_of, wait_for
from tests.orders.twap_support import (
    make_plan,
    posts_by_coid,
    reconcile_startup,
    run_once,
    slices,
    start_manage,
    statuses,
)

# The dispatcher's own checks, in isolation: its start does not close the gate here (the
# start -> reconciliation -> recovery interplay: tests/reconciliation/test_slices_gate.py).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("start_not_gating")]


def test_due_slices_are_sent_and_later_ones_wait(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=25), qty=6, interval_seconds=10)
    output = run_once()
    rows = slices(plan)
    assert [s.status for s in rows] == ["filled"] * 3 + ["pending_new"] * 3
    assert posts_by_coid(paper) == {s.client_order_id: 1 for s in rows[:3]}
    assert all(s.send_claimed_at is None for s in rows[3:])
    assert "3 submitted" in output and "stopped after" in output
    body = trader.get(f"/api/v1/plans/{plan.pk}").json()
    assert (body["status"], body["filled_qty"]) == ("active", 3)


def test_plan_completes_when_its_last_slice_fills(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=50), qty=7, interval_seconds=20)
    run_once()
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    assert plan.status_reason == "all 3 slices ended; 7 of 7 shares filled"
    assert plan.ended_at is not None
    assert trader.get(f"/api/v1/plans/{plan.pk}").json()["filled_qty"] == 7


def test_plan_whose_slices_all_fail_is_failed(paper: Any, trader: Any) -> None:
    paper.set_prices({"AAPL": "200000.00"})  # more than the account's buying power
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=2, interval_seconds=30)
    output = run_once()
    assert statuses(plan) == {"rejected": 2}
    assert "insufficient buying power" in slices(plan)[0].reject_reason
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason) == (
        PlanStatus.FAILED,
        "all 2 slices ended; 0 of 2 shares filled",
    )
    assert "2 rejected" in output


@pytest.mark.parametrize(
    ("switch", "status"),
    [("kill_switch", "blocked_kill_switch"), ("circuit_breaker", "blocked_circuit_breaker")],
)
def test_engaged_switch_blocks_due_slices_right_before_sending(
    paper: Any, trader: Any, ops_user: Any, switch: str, status: str
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=25), qty=3, interval_seconds=20)
    before = metric("twap_slices_total", outcome=status)
    trading_switch_set(name=switch, engaged=True, actor="test", reason="drill")
    run_once()
    assert [s.status for s in slices(plan)] == [status, status, "pending_new"]
    assert posts_by_coid(paper) == {}
    assert metric("twap_slices_total", outcome=status) == before + 2
    # Released: the remaining slice goes out when due; the blocked ones stay blocked.
    trading_switch_set(
        name=switch,
        engaged=False,
        actor=ops_user,
        reason="all clear",
        step_up=step_up_of(ops_user, "trading_switch.release"),
    )
    Order.objects.filter(plan=plan, slice_num=2).update(scheduled_time=timezone.now())
    run_once()
    assert [s.status for s in slices(plan)] == [status, status, "filled"]
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED  # some shares filled


def test_slices_of_a_plan_that_ended_are_canceled_not_sent(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=25), qty=3, interval_seconds=20)
    # The plan was canceled but its slices were not (a cancel that died half-way).
    SlicingPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.CANCELED)
    output = run_once()
    assert [s.status for s in slices(plan)] == ["canceled", "canceled", "pending_new"]
    assert "plan" in slices(plan)[0].events.last().note
    assert posts_by_coid(paper) == {}
    assert "2 canceled" in output


def test_other_presend_rejections_leave_the_slice_pending(
    paper: Any, trader: Any, settings: Any
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=5), qty=2, interval_seconds=30)
    settings.SLICE_PRESEND_CHECKS = [
        *settings.SLICE_PRESEND_CHECKS,
        "tests.orders.twap_support.check_gated",
    ]
    before = metric("twap_slices_total", outcome="deferred_gated")
    output = run_once()
    first = slices(plan)[0]
    assert (first.status, first.send_claimed_at) == ("pending_new", None)  # free for a retry
    assert "1 deferred_gated" in output
    assert metric("twap_slices_total", outcome="deferred_gated") == before + 1
    assert posts_by_coid(paper) == {}
    settings.SLICE_PRESEND_CHECKS = settings.SLICE_PRESEND_CHECKS[:-1]  # the gate opens
    run_once()
    assert slices(plan)[0].status == "filled"


def test_paused_plan_keeps_its_slices(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=5), qty=2, interval_seconds=30)
    SlicingPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.PAUSED)
    assert "no slices handled" in run_once()
    assert statuses(plan) == {"pending_new": 2}


def test_slice_later_than_the_grace_is_sent_with_a_warning_when_open(
    paper: Any, trader: Any, caplog: Any
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(minutes=10), qty=1, interval_seconds=60)
    run_once()
    assert statuses(plan) == {"filled": 1}
    assert "late (grace 60s): sending now, the market is open" in caplog.text


def test_due_slices_while_closed_move_to_the_next_open_keeping_spacing(
    paper: Any, trader: Any
) -> None:
    opens = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    paper.set_clock(is_open=False, next_open=opens)
    plan = make_plan(start=timezone.now() - timedelta(seconds=25), qty=6, interval_seconds=10)
    coids = [s.client_order_id for s in slices(plan)]
    output = run_once()
    rows = slices(plan)
    assert [s.scheduled_time for s in rows] == [opens + timedelta(seconds=10 * i) for i in range(6)]
    assert [s.client_order_id for s in rows] == coids  # ids never change
    assert {s.status for s in rows} == {"pending_new"}
    assert all(s.send_claimed_at is None for s in rows)
    assert posts_by_coid(paper) == {}
    assert "rescheduled" in output


def test_unknown_clock_counts_as_closed_and_holds(paper: Any, trader: Any) -> None:
    paper.add_fault("GET", "/v2/clock", "error500", count=-1)
    plan = make_plan(start=timezone.now() - timedelta(seconds=5), qty=2, interval_seconds=30)
    due_at = slices(plan)[0].scheduled_time
    output = run_once()
    first = slices(plan)[0]
    assert (first.status, first.send_claimed_at, first.scheduled_time) == (
        "pending_new",
        None,
        due_at,
    )
    assert "1 held" in output
    assert posts_by_coid(paper) == {}


def test_ambiguous_submit_leaves_the_slice_unconfirmed_and_never_resends(
    paper: Any, trader: Any
) -> None:
    paper.add_fault("POST", "/v2/orders", "timeout", delay=3)
    plan = make_plan(start=timezone.now() - timedelta(seconds=5), qty=2, interval_seconds=30)
    run_once()
    first = slices(plan)[0]
    assert first.status == "submitted_unconfirmed"
    run_once()
    assert posts_by_coid(paper)[first.client_order_id] == 1


def test_dry_run_lists_due_slices_and_sends_nothing(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=15), qty=6, interval_seconds=10)
    out = StringIO()
    call_command("run_slices", "--dry-run", stdout=out)
    assert f"plan {plan.pk} slice 1" in out.getvalue()
    assert "2 slices due now" in out.getvalue()
    assert statuses(plan) == {"pending_new": 6}
    assert posts_by_coid(paper) == {}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_slices_falling_due_are_never_sent_early(paper: Any, trader: Any) -> None:
    # 30 slices 2 s apart: 22 overdue at once, the last 8 fall due over the next 15 s.
    # How late they go out is a speed target: bench/twap_lateness.py measures it.
    plan = make_plan(start=timezone.now() - timedelta(seconds=44), qty=30, interval_seconds=2)
    proc = start_manage(paper, "run_slices", "--until-idle", MISFIRE_GRACE_SECONDS="3600")
    try:
        run = wait_for(lambda: DispatcherRun.objects.first(), timeout=30)
        reconcile_startup()  # the job cluster's part: it opens the gate the start closed
        output = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    arrivals = {
        r["client_order_id"]: parse_datetime(r["timestamp"])
        for r in paper.requests(method="POST", path="/v2/orders")
    }
    # The slices that fell due once the dispatcher was up and idle.
    live = [s for s in slices(plan) if s.scheduled_time > run.started_at + timedelta(seconds=1)]
    assert len(live) >= 4
    lateness = [(arrivals[s.client_order_id] - s.scheduled_time).total_seconds() for s in live]
    assert all(late >= 0 for late in lateness), lateness  # never sent before its time
    assert statuses(plan) == {"filled": 30}
    assert "30 submitted" in output


@pytest.mark.django_db(transaction=True)
def test_sigterm_stops_the_dispatcher_cleanly(paper: Any, trader: Any) -> None:
    proc = start_manage(paper, "run_slices")
    try:
        wait_for(_started, timeout=20)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "stopped after" in output and "no slices handled" in output
    run = DispatcherRun.objects.get()
    assert run.stopped_at is not None


def test_run_slices_prints_what_changed_and_nothing_while_idle(paper: Any, trader: Any) -> None:
    # Two slices due now, the next one 5 s away: one busy tick, then only idle ones.
    make_plan(start=timezone.now() - timedelta(seconds=15), qty=6, interval_seconds=10)
    out = StringIO()
    call_command(
        "run_slices",
        *("--seconds", "1", "--poll", "0.05", "--workers", "1", "--report-seconds", "0"),
        stdout=out,
    )
    started, *reports, stopped = out.getvalue().splitlines()
    assert started.startswith("run_slices #")
    assert reports == ["run_slices: +2 submitted"]  # once, not on each of the ~20 idle ticks
    assert "stopped after" in stopped and stopped.endswith(": 2 submitted")


def _started() -> bool:
    return DispatcherRun.objects.exists()


def test_limit_plan_slices_carry_the_limit_price(paper: Any, trader: Any) -> None:
    plan = make_plan(
        start=timezone.now() - timedelta(seconds=5),
        qty=2,
        interval_seconds=30,
        order_type="limit",
        limit_price=Decimal("99.00"),
        time_in_force="gtc",
    )
    run_once()
    first = slices(plan)[0]
    assert first.status == "new"  # resting below the market
    broker = [o for o in paper.state()["orders"] if o["client_order_id"] == first.client_order_id]
    assert broker[0]["limit_price"] == "99"


def test_twap_metrics_are_exported(paper: Any, trader: Any, client: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=25), qty=6, interval_seconds=10)
    sent = metric("twap_slices_total", outcome="submitted")
    observed = metric("twap_slice_lateness_seconds_count")
    run_once()
    assert statuses(plan)["filled"] == 3
    assert metric("twap_slices_total", outcome="submitted") == sent + 3
    assert metric("twap_slice_lateness_seconds_count") == observed + 3
    samples = client.get("/metrics").content.decode().splitlines()
    for sample, value in (
        ('twap_slices_total{outcome="submitted"}', sent + 3),
        ('twap_slice_lateness_seconds_bucket{le="+Inf"}', observed + 3),
        ("twap_slice_lateness_seconds_count", observed + 3),
        ("twap_slices_recovered_total", metric("twap_slices_recovered_total")),
        (
            "twap_slices_skipped_parent_invalid_total",
            metric("twap_slices_skipped_parent_invalid_total"),
        ),
    ):
        assert f"{sample} {value}" in samples, sample


@pytest.mark.parametrize("cause", ["gated", "clock_unknown"])
def test_a_deferred_or_held_plan_is_not_retried_on_every_tick(
    paper: Any, trader: Any, settings: Any, cause: str
) -> None:
    from orders.dispatch import SliceDispatcher

    if cause == "gated":
        settings.SLICE_PRESEND_CHECKS = [
            *settings.SLICE_PRESEND_CHECKS,
            "tests.orders.twap_support.check_gated",
        ]
    else:
        paper.add_fault("GET", "/v2/clock", "error500", count=-1)
    settings.TWAP_DISPATCH_RETRY_SECONDS = 5
    make_plan(start=timezone.now() - timedelta(seconds=5), qty=2, interval_seconds=30)
    make_plan(start=timezone.now() - timedelta(seconds=5), qty=3, interval_seconds=30)
    dispatcher = SliceDispatcher(batch=1, workers=1, poll_seconds=60)
    assert dispatcher.tick() == 1  # claimed, deferred or held, handed back
    # Nothing can go out (gate closed / clock unknown): the other plan is not even claimed,
    # and the loop sleeps until the hold ends instead of spinning on the overdue slices.
    assert dispatcher.tick() == 0
    assert 4 < dispatcher.sleep_seconds() <= 5
    assert SliceDispatcher(batch=10, workers=1, poll_seconds=0.1).tick() == 2  # not a lock


def test_a_plan_deferred_for_its_own_reason_waits_while_others_go(
    paper: Any, trader: Any, settings: Any, trading_ready: Any
) -> None:
    from orders.dispatch import SliceDispatcher

    settings.TWAP_DISPATCH_RETRY_SECONDS = 5
    settings.SLICE_PRESEND_CHECKS = [
        *settings.SLICE_PRESEND_CHECKS,
        "tests.orders.twap_support.check_not_msft",
    ]
    msft = make_plan(
        start=timezone.now() - timedelta(seconds=5), qty=2, interval_seconds=30, symbol="MSFT"
    )
    aapl = make_plan(start=timezone.now() + timedelta(seconds=2), qty=2, interval_seconds=30)
    dispatcher = SliceDispatcher(batch=10, workers=1, poll_seconds=60)
    assert dispatcher.tick() == 1  # MSFT's due slice: deferred, its plan held
    assert dispatcher.tick() == 0
    # it sleeps until AAPL's slice is due (about 2 s), not until MSFT's hold ends (5 s)
    assert 0 < dispatcher.sleep_seconds() <= 2
    wait_for(lambda: dispatcher.tick() == 1, timeout=5)
    assert statuses(aapl) == {"filled": 1, "pending_new": 1}
    assert statuses(msft) == {"pending_new": 2}

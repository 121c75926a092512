"""Zombie-slice recovery (``manage.py recover_slices`` and after reconciliation), one test per
rule of issue 5 with the paper broker's clock set open or closed."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import hooks
from orders.controls import trading_switch_set
from orders.dispatch import dispatcher_register
from orders.models import Order, PlanStatus, SlicingPlan
from tests.helpers import metric
from tests.orders.twap_support import make_plan, posts_by_coid, run_once, slices, statuses

# In-process dispatchers ask for a reconciliation when they start; q_sync runs it inline,
# as a job cluster would.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("q_sync")]

CLOCKS = ["open", "closed"]


def set_market(paper: Any, state: str) -> Any:
    """Open or close the paper broker's market; closed opens again in 3 hours."""
    opens = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    paper.set_clock(is_open=state == "open", next_open=opens)
    return opens


def recover(*args: str) -> str:
    out = StringIO()
    call_command("recover_slices", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("market", CLOCKS)
def test_slices_of_an_ended_plan_are_canceled(paper: Any, trader: Any, market: str) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=4, interval_seconds=15)
    SlicingPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.CANCELED)
    set_market(paper, market)
    before = metric("twap_slices_skipped_parent_invalid_total")
    output = recover()
    assert statuses(plan) == {"canceled": 4}  # due and future alike
    assert metric("twap_slices_skipped_parent_invalid_total") == before + 4
    assert "4 canceled (plan ended)" in output
    assert posts_by_coid(paper) == {}


@pytest.mark.parametrize("market", CLOCKS)
def test_tripped_breaker_blocks_every_pending_slice(paper: Any, trader: Any, market: str) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=4, interval_seconds=15)
    set_market(paper, market)
    trading_switch_set(name="circuit_breaker", engaged=True, actor="test", reason="drill")
    output = recover()
    assert statuses(plan) == {"blocked_circuit_breaker": 4}
    assert "4 blocked (breaker)" in output
    plan.refresh_from_db()
    assert plan.status == PlanStatus.FAILED  # every slice ended, none filled


def test_past_due_within_grace_with_the_market_open_runs_now(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=4, interval_seconds=15)
    set_market(paper, "open")
    due = [s.scheduled_time for s in slices(plan)]
    before = metric("twap_slices_recovered_total")
    output = recover()
    assert "3 due now (0 beyond grace)" in output and "1 not yet due" in output
    assert [s.scheduled_time for s in slices(plan)] == due  # untouched: due already
    assert metric("twap_slices_recovered_total") == before + 3
    run_once()  # the dispatcher's next tick sends them
    assert [s.status for s in slices(plan)] == ["filled"] * 3 + ["pending_new"]


def test_beyond_grace_with_the_market_open_runs_now_with_a_warning(
    paper: Any, trader: Any, caplog: Any
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(minutes=5), qty=2, interval_seconds=30)
    set_market(paper, "open")
    output = recover()
    assert "2 due now (2 beyond grace)" in output
    assert "later than the 60s grace" in caplog.text
    run_once()
    assert statuses(plan) == {"filled": 2}


@pytest.mark.parametrize("late_seconds", [20, 600])  # within and beyond the grace period
def test_market_closed_moves_the_plan_to_the_next_open(
    paper: Any, trader: Any, late_seconds: int
) -> None:
    start = timezone.now() - timedelta(seconds=late_seconds)
    plan = make_plan(start=start, qty=12, duration_minutes=12, interval_seconds=60)
    opens = set_market(paper, "closed")
    coids = [s.client_order_id for s in slices(plan)]
    output = recover()
    rows = slices(plan)
    # Every pending slice moves, the due ones and those after them, keeping the minute apart:
    # they must not all fire together at the open.
    assert [s.scheduled_time for s in rows] == [opens + timedelta(minutes=i) for i in range(12)]
    assert [s.client_order_id for s in rows] == coids  # ids never change
    assert {s.status for s in rows} == {"pending_new"}
    assert "12 moved to the next open" in output
    run_once()
    assert posts_by_coid(paper) == {}  # nothing is due any more


def test_unknown_clock_is_treated_as_closed_and_holds(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=4, interval_seconds=15)
    paper.add_fault("GET", "/v2/clock", "error500", count=-1)
    due = [s.scheduled_time for s in slices(plan)]
    output = recover()
    assert "broker clock unknown: treated as closed" in output
    assert "3 held (clock unknown or stale)" in output
    assert [s.scheduled_time for s in slices(plan)] == due
    assert statuses(plan) == {"pending_new": 4}


@pytest.mark.parametrize("market", CLOCKS)
def test_a_dead_dispatchers_slice_that_reached_the_broker_is_applied_not_resent(
    paper: Any, trader: Any, market: str
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=10), qty=2, interval_seconds=30)
    first = slices(plan)[0]
    claimed = timezone.now() - timedelta(seconds=5)
    Order.objects.filter(pk=first.pk).update(send_claimed_at=claimed)  # claimed, then...
    paper.place_order("AAPL", 1, "buy", client_order_id=first.client_order_id)  # ...sent, died
    dispatcher_register()  # a new dispatcher started after the claim
    set_market(paper, market)
    output = recover()
    first.refresh_from_db()
    assert first.status == "filled" and first.filled_qty == 1
    assert "1 found at the broker" in output
    run_once()
    assert posts_by_coid(paper) == {}  # never submitted again through the API


@pytest.mark.parametrize("market", CLOCKS)
def test_a_dead_dispatchers_unsent_slice_is_released_and_sent_once_under_its_id(
    paper: Any, trader: Any, market: str
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=10), qty=2, interval_seconds=30)
    first = slices(plan)[0]
    Order.objects.filter(pk=first.pk).update(send_claimed_at=timezone.now() - timedelta(seconds=5))
    dispatcher_register()
    opens = set_market(paper, market)
    output = recover()
    assert "1 released" in output
    first.refresh_from_db()
    assert first.send_claimed_at is None
    if market == "closed":
        assert first.scheduled_time == opens  # released, then moved like any due slice
        paper.set_clock(is_open=True)
        Order.objects.filter(pk=first.pk).update(scheduled_time=timezone.now())
    run_once()
    first.refresh_from_db()
    assert first.status == "filled"
    assert posts_by_coid(paper) == {first.client_order_id: 1}


def test_a_live_dispatchers_fresh_claim_is_left_alone(paper: Any, trader: Any) -> None:
    dispatcher_register(now=timezone.now() - timedelta(seconds=30))
    plan = make_plan(start=timezone.now() - timedelta(seconds=10), qty=2, interval_seconds=30)
    first = slices(plan)[0]
    Order.objects.filter(pk=first.pk).update(send_claimed_at=timezone.now())
    output = recover()
    first.refresh_from_db()
    assert first.send_claimed_at is not None and first.status == "pending_new"
    assert "0 released" in output and "0 found at the broker" in output
    assert paper.requests(path="/v2/orders:by_client_order_id") == []


def test_a_claim_older_than_the_staleness_bound_is_examined(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.TWAP_CLAIM_STALE_SECONDS = 60
    dispatcher_register(now=timezone.now() - timedelta(hours=1))
    plan = make_plan(start=timezone.now() - timedelta(seconds=10), qty=2, interval_seconds=30)
    first = slices(plan)[0]
    Order.objects.filter(pk=first.pk).update(send_claimed_at=timezone.now() - timedelta(minutes=5))
    assert "1 released" in recover()


def test_broker_down_leaves_a_stale_claim_claimed(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=10), qty=2, interval_seconds=30)
    first = slices(plan)[0]
    Order.objects.filter(pk=first.pk).update(send_claimed_at=timezone.now() - timedelta(seconds=5))
    dispatcher_register()
    paper.add_fault("GET", "/v2/orders:by_client_order_id", "error500", count=-1)
    output = recover()
    first.refresh_from_db()
    assert first.send_claimed_at is not None
    assert "1 unresolved" in output


def test_future_slices_and_paused_plans_are_left_alone(paper: Any, trader: Any) -> None:
    future = make_plan(start=timezone.now() + timedelta(minutes=5), qty=2, interval_seconds=30)
    paused = make_plan(start=timezone.now() - timedelta(seconds=10), qty=3, interval_seconds=20)
    SlicingPlan.objects.filter(pk=paused.pk).update(status=PlanStatus.PAUSED)
    set_market(paper, "closed")
    before = {s.pk: s.scheduled_time for s in Order.objects.all()}
    output = recover()
    assert {s.pk: s.scheduled_time for s in Order.objects.all()} == before
    assert "2 not yet due" in output and "3 paused" in output
    assert statuses(future) == {"pending_new": 2}


def test_dry_run_writes_nothing(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=4, interval_seconds=15)
    set_market(paper, "closed")
    trading_switch_set(name="circuit_breaker", engaged=True, actor="test", reason="drill")
    output = recover("--dry-run")
    assert "nothing written" in output and "4 blocked (breaker)" in output
    assert statuses(plan) == {"pending_new": 4}


def test_recovery_is_idempotent(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=4, interval_seconds=15)
    set_market(paper, "closed")
    recover()
    after_first = [(s.scheduled_time, s.status) for s in slices(plan)]
    recover()
    assert [(s.scheduled_time, s.status) for s in slices(plan)] == after_first


# --- after reconciliation (the signal reconciliation sends) ---------------------------------
def test_startup_reconciliation_triggers_recovery(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=4, interval_seconds=15)
    SlicingPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.CANCELED)
    hooks.reconciliation_succeeded.send(sender=None, kind="periodic", run_id=1)
    assert statuses(plan) == {"pending_new": 4}  # nothing stale: a periodic run does nothing
    hooks.reconciliation_succeeded.send(sender=None, kind="startup", run_id=2)
    assert statuses(plan) == {"canceled": 4}


def test_any_reconciliation_recovers_a_dead_dispatchers_claims(paper: Any, trader: Any) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=10), qty=2, interval_seconds=30)
    first = slices(plan)[0]
    Order.objects.filter(pk=first.pk).update(send_claimed_at=timezone.now() - timedelta(seconds=5))
    dispatcher_register()  # the dispatcher restarted; the job cluster did not
    hooks.reconciliation_succeeded.send(sender=None, kind="periodic", run_id=3)
    first.refresh_from_db()
    assert first.send_claimed_at is None


def test_recovery_failure_never_breaks_reconciliation(
    paper: Any, trader: Any, monkeypatch: Any, caplog: Any
) -> None:
    def explode(**_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("orders.recovery.slices_recover", explode)
    hooks.reconciliation_succeeded.send(sender=None, kind="startup", run_id=4)
    assert "TWAP recovery after startup reconciliation 4 failed" in caplog.text

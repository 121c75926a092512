"""A paused plan's overdue slices neither get claimed nor keep the dispatcher awake."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from orders.dispatch import SliceDispatcher
from orders.models import PlanStatus
from orders.plans import plan_set_paused
from tests.helpers import step_up_of
from tests.orders.twap_support import make_plan, statuses

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_paused_plans_overdue_slices_do_not_make_the_loop_spin(
    paper: Any, trader: Any, trading_ready: Any
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=20), qty=2, interval_seconds=30)
    plan_set_paused(plan=plan, paused=True, actor="test", reason="halt drill")
    dispatcher = SliceDispatcher(batch=10, workers=1, poll_seconds=7)
    assert dispatcher.tick() == 0
    assert dispatcher.sleep_seconds() == pytest.approx(7, abs=0.5)  # the poll, not 0
    assert statuses(plan) == {"pending_new": 2}


def test_resume_moves_overdue_slices_before_any_can_be_claimed(
    paper: Any, trader: Any, trading_ready: Any, ops_user: Any
) -> None:
    plan = make_plan(start=timezone.now() - timedelta(seconds=40), qty=2, interval_seconds=30)
    plan_set_paused(plan=plan, paused=True, actor="test", reason="halt drill")
    before = timezone.now()
    plan = plan_set_paused(
        plan=plan,
        paused=False,
        actor=ops_user,
        reason="resume drill",
        step_up=step_up_of(ops_user, "plan.resume"),
    )
    assert plan.status == PlanStatus.ACTIVE
    times = sorted(plan.slices.values_list("scheduled_time", flat=True))
    # restarted from now with the plan's spacing: at most one slice is due at once
    assert times[0] >= before
    assert (times[1] - times[0]).total_seconds() == 30
    assert SliceDispatcher(batch=10, workers=1, poll_seconds=1).tick() <= 1

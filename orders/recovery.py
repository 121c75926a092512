"""Zombie-slice recovery (fix plan §1): after a restart, and only after reconciliation has
brought the database in line with the broker, every ``pending_new`` slice is re-examined.

1. A slice claimed by a dispatcher that may have died (claimed before the latest dispatcher
   start, or longer ago than ``TWAP_CLAIM_STALE_SECONDS``) is looked up at the broker by its
   client_order_id: found -> the broker's state is applied (it went out before the crash);
   not found -> the claim is released so a dispatcher sends it, under the SAME id (if it was
   in flight after all, Alpaca's 422 for the duplicate id turns the resend into a lookup).
2. Then every free pending slice, in the issue's order: plan ended -> canceled; breaker tripped
   -> ``blocked_circuit_breaker``; due -> the misfire rule shared with the dispatcher
   (``orders.slicing.slice_timing``): market open -> due now (the dispatcher sends it on its
   next tick; beyond the grace period with a warning), market closed -> moved to the next open
   keeping the plan's spacing, clock unknown -> treated as closed and left for later.
   Slices not yet due and slices of paused plans are left alone.

The client_order_id of a slice never changes. Recovery never sends: sending stays with the
dispatcher's claims, so one mechanism decides who sends what.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from orders.dispatch import market_clock_get
from orders.models import DispatcherRun, Order, PlanStatus, SlicingPlan, TradingSwitch
from orders.plans import plan_reschedule_pending, slice_unclaim
from orders.risk import switch_engaged
from orders.services import order_end_locally
from orders.slicing import MarketClock, Timing, slice_timing
from orders.status import OrderStatus, Source
from orders.updates import apply_broker_report, plan_status_follow
from tradeops import metrics
from tradeops.broker import BrokerNotFound, BrokerUnavailable, get_broker

logger = logging.getLogger(__name__)

S = OrderStatus


@dataclass
class RecoveryReport:
    examined: int = 0
    found_at_broker: int = 0  # claimed slices that had reached the broker: state applied
    released: int = 0  # claimed slices not at the broker: handed back to the dispatchers
    unresolved: int = 0  # claimed slices the broker could not be asked about
    canceled_plan_ended: int = 0
    blocked_breaker: int = 0
    due_now: int = 0
    misfired: int = 0  # of due_now: later than MISFIRE_GRACE_SECONDS
    rescheduled: int = 0
    held: int = 0
    not_due: int = 0
    paused: int = 0
    plans_finished: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{self.examined} pending slices examined",
            f"{self.found_at_broker} found at the broker",
            f"{self.released} released",
            f"{self.unresolved} unresolved",
            f"{self.canceled_plan_ended} canceled (plan ended)",
            f"{self.blocked_breaker} blocked (breaker)",
            f"{self.due_now} due now ({self.misfired} beyond grace)",
            f"{self.rescheduled} moved to the next open",
            f"{self.held} held (clock unknown or stale)",
            f"{self.not_due} not yet due",
            f"{self.paused} paused",
            f"{self.plans_finished} idle plans finished",
        ]
        return ", ".join(parts)


def stale_claim_cutoff(now: datetime) -> datetime:
    """Claims older than this may belong to a dead dispatcher."""
    cutoff = now - timedelta(seconds=settings.TWAP_CLAIM_STALE_SECONDS)
    latest_start = DispatcherRun.objects.aggregate(latest=Max("started_at"))["latest"]
    return max(cutoff, latest_start) if latest_start else cutoff


def slices_recover(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RecoveryReport:
    """Re-examine every pending slice (see the module docstring). Idempotent: running it twice
    changes nothing the first run did not. ``dry_run`` asks the broker but writes nothing."""
    now = now or timezone.now()
    report = RecoveryReport()

    def note(line: str) -> None:
        report.notes.append(line)
        if progress is not None:
            progress(line)

    report.examined = Order.objects.filter(plan__isnull=False, status=S.PENDING_NEW).count()
    _resolve_stale_claims(report, now=now, dry_run=dry_run, note=note)
    clock = market_clock_get()
    if clock is None:
        note("broker clock unknown: treated as closed")
    else:
        state = "open" if clock.is_open else "closed"
        note(f"market {state}, next open {clock.next_open.isoformat()}")
    breaker = switch_engaged(TradingSwitch.Name.CIRCUIT_BREAKER)
    pending = (
        Order.objects.slices_unclaimed().select_related("plan").order_by("plan_id", "slice_num")
    )
    for _, group in groupby(pending, key=lambda o: o.plan_id):
        slices = list(group)
        _recover_plan(slices[0].plan, slices, report, now, clock, breaker, dry_run, note)
    if not dry_run:
        report.plans_finished = _finish_idle_plans(now)
    return report


def _resolve_stale_claims(
    report: RecoveryReport, *, now: datetime, dry_run: bool, note: Callable[[str], None]
) -> None:
    stale = Order.objects.filter(
        plan__isnull=False, status=S.PENDING_NEW, send_claimed_at__lt=stale_claim_cutoff(now)
    ).order_by("scheduled_time")
    broker = get_broker()
    for order in stale:
        coid = order.client_order_id
        try:
            found = broker.get_order_by_client_id(coid)
        except BrokerNotFound:
            found = None
        except BrokerUnavailable as exc:
            report.unresolved += 1
            note(f"slice {coid}: claimed, broker cannot be asked ({exc.message}); left claimed")
            continue
        if found is not None:
            report.found_at_broker += 1
            note(f"slice {coid}: claimed and already at the broker ({found.status}): applied")
            if not dry_run:
                apply_broker_report(found, Source.SUBMIT, note="recovery: found at the broker")
            continue
        report.released += 1
        note(f"slice {coid}: claimed but not at the broker: released for sending (same id)")
        if not dry_run and slice_unclaim(order_id=order.pk, token=order.send_claimed_at):
            metrics.TWAP_SLICES_RECOVERED.inc()


def _recover_plan(
    plan: SlicingPlan,
    slices: list[Order],
    report: RecoveryReport,
    now: datetime,
    clock: MarketClock | None,
    breaker: bool,
    dry_run: bool,
    note: Callable[[str], None],
) -> None:
    if plan.is_terminal:
        report.canceled_plan_ended += len(slices)
        note(f"plan {plan.pk} is {plan.status}: {len(slices)} pending slices canceled")
        if not dry_run:
            for order in slices:
                reason = f"recovery: plan {plan.status}"
                if order_end_locally(order=order, status=S.CANCELED, note=reason):
                    metrics.TWAP_SLICES_SKIPPED_PARENT_INVALID.inc()
        return
    if plan.status == PlanStatus.PAUSED:
        report.paused += len(slices)
        return
    if breaker:
        report.blocked_breaker += len(slices)
        note(f"plan {plan.pk}: breaker tripped: {len(slices)} slices blocked")
        if not dry_run:
            for order in slices:
                order_end_locally(
                    order=order, status=S.BLOCKED_CIRCUIT_BREAKER, note="recovery: breaker tripped"
                )
        return
    due = [o for o in slices if o.scheduled_time <= now]
    report.not_due += len(slices) - len(due)
    if not due:
        return
    decision = slice_timing(
        scheduled_time=due[0].scheduled_time,
        now=now,
        grace_seconds=settings.MISFIRE_GRACE_SECONDS,
        clock=clock,
    )
    if decision.timing is Timing.SEND:
        grace = timedelta(seconds=settings.MISFIRE_GRACE_SECONDS)
        misfired = sum(now - o.scheduled_time > grace for o in due)
        report.due_now += len(due)
        report.misfired += misfired
        line = f"plan {plan.pk}: {len(due)} due slices run now (market open)"
        if misfired:
            line += f"; {misfired} are later than the {settings.MISFIRE_GRACE_SECONDS}s grace"
            logger.warning("TWAP recovery: %s", line)
        note(line)
        metrics.TWAP_SLICES_RECOVERED.inc(len(due))
    elif decision.timing is Timing.RESCHEDULE:
        assert clock is not None  # noqa: S101 - RESCHEDULE needs a known clock
        moved = len(slices)
        if not dry_run:
            moved = plan_reschedule_pending(plan=plan, next_open=clock.next_open)
            metrics.TWAP_SLICES_RECOVERED.inc(moved)
        report.rescheduled += moved
        note(f"plan {plan.pk}: market closed: {moved} pending slices moved to the next open")
    else:
        report.held += len(due)
        note(f"plan {plan.pk}: {len(due)} due slices held: {decision.reason}")


def _finish_idle_plans(now: datetime) -> int:
    """Active plans whose slices have all ended but whose status did not follow (a crash
    between the two is impossible, the follow-up shares the slice's transaction; this heals
    rows written before that rule or by hand)."""
    idle = SlicingPlan.objects.filter(status__in=[PlanStatus.ACTIVE, PlanStatus.PAUSED]).exclude(
        slices__is_terminal=False
    )
    finished = 0
    for plan_id in idle.values_list("pk", flat=True):
        with transaction.atomic():
            finished += plan_status_follow(plan_id=plan_id, now=now) is not None
    return finished


def stale_claims_exist(now: datetime | None = None) -> bool:
    """Is there a claimed, unsent slice whose dispatcher may have died?"""
    now = now or timezone.now()
    return Order.objects.filter(
        plan__isnull=False, status=S.PENDING_NEW, send_claimed_at__lt=stale_claim_cutoff(now)
    ).exists()

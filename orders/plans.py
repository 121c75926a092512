"""TWAP plan writes: create a plan with all its slices, cancel what has not gone out, and the
local slice transitions the dispatcher and recovery share (block, cancel, unclaim, reschedule).

A plan is ONE pre-trade decision (DESIGN §5): the checks run once, under the symbol lock, on
the plan's total quantity (every pending slice is a working order from then on) and on its
largest slice for the per-order size limits; then the plan and every slice are inserted in the
same transaction. Slices are never re-derived: their sizes and client_order_ids are fixed here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from marketdata.services import LiquidityConstraint, liquidity_constraint
from orders import risk
from orders.ids import plan_key_for, price_text, slice_client_order_id
from orders.models import Order, Origin, PlanStatus, SlicingPlan
from orders.services import order_end_locally, strategy_require_active
from orders.slicing import SlicePlan, SlicingError, plan_slices, rescheduled_time
from orders.status import OrderStatus
from tradeops import metrics
from tradeops.audit import actor_label, audit_record
from tradeops.errors import Conflict, ValidationFailed
from tradeops.otp import StepUp, step_up_require
from tradeops.permissions import strategy_scope
from tradeops.reasons import reason_clean

logger = logging.getLogger(__name__)

S = OrderStatus


@dataclass
class PlanOutcome:
    plan: SlicingPlan
    created: bool
    warnings: list[str] = field(default_factory=list)


def plan_key(
    request: risk.OrderIntent, *, duration_minutes: int, interval_seconds: int, now: datetime
) -> str:
    """Same request fields on the same UTC day -> the same plan (and the same slice ids); the
    admin form's nonce (``request_key``) joins them when set."""
    extra = {"request_key": request.request_key} if request.request_key else {}
    return plan_key_for(
        strategy=request.strategy_id,
        symbol=request.symbol.upper(),
        side=request.side,
        qty=int(request.qty),
        type=request.order_type,
        tif=request.time_in_force,
        limit=price_text(request.limit_price),
        stop=price_text(request.stop_price),
        duration_minutes=int(duration_minutes),
        interval_seconds=int(interval_seconds),
        trade_date=now.date().isoformat(),
        **extra,
    )


def _slice(
    request: risk.OrderIntent,
    now: datetime,
    *,
    duration_minutes: int,
    interval_seconds: int,
    max_slice_qty: int | None,
) -> SlicePlan:
    """The pure slicer, its refusals turned into a 400 that names the field."""
    try:
        return plan_slices(
            request.qty,
            duration_minutes,
            interval_seconds,
            now,
            max_slice_qty,
            order_type=request.order_type,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            max_slices=settings.TWAP_MAX_SLICES,
        )
    except SlicingError as exc:
        raise ValidationFailed(
            exc.message, details={"fields": {exc.field: [exc.message]}}
        ) from None


def plan_sizing(
    request: risk.OrderIntent, *, duration_minutes: int, interval_seconds: int, now: datetime
) -> tuple[LiquidityConstraint, SlicePlan, risk.OrderIntent]:
    """The plan's liquidity cap (may ask the broker: outside any transaction), its slices, and
    the intent the pre-trade checks judge (``size_qty`` = the largest slice). The admin's
    review step calls it to show the verdict the plan's checks will reach."""
    liquidity = liquidity_constraint(symbol=request.symbol, now=now)
    sliced = _slice(
        request,
        now,
        duration_minutes=duration_minutes,
        interval_seconds=interval_seconds,
        max_slice_qty=liquidity.max_slice_qty,
    )
    return liquidity, sliced, dataclasses.replace(request, size_qty=sliced.largest_slice)


def plan_create(
    *,
    request: risk.OrderIntent,
    duration_minutes: int,
    interval_seconds: int,
    actor: Any,
    now: datetime | None = None,
    on_write: Callable[[PlanOutcome], None] | None = None,
) -> PlanOutcome:
    """Record a TWAP plan and all its ``pending_new`` slices after one pre-trade decision.

    Idempotent like single orders: the same request on the same UTC day returns the existing
    plan (``created=False``), whatever the liquidity figures say by then. ``now`` is the plan's
    start (slice 0 is due at once). ``on_write`` runs inside the insert's transaction.
    """
    now = now or timezone.now()
    strategy_require_active(request.strategy_id)
    key = plan_key(
        request, duration_minutes=duration_minutes, interval_seconds=interval_seconds, now=now
    )
    existing = SlicingPlan.objects.filter(key=key).first()
    if existing is not None:
        metrics.ORDERS_IDEMPOTENT_REPLAYS.inc()
        return PlanOutcome(existing, created=False)
    liquidity, sliced, intent = plan_sizing(
        request, duration_minutes=duration_minutes, interval_seconds=interval_seconds, now=now
    )
    ctx = risk.prepare_context(intent, now)
    outcome = risk.pretrade_write(
        intent,
        ctx,
        label=f"TWAP plan {key}",
        write=lambda: PlanOutcome(
            _plan_insert(
                request,
                key,
                sliced,
                liquidity,
                ctx,
                now,
                duration_minutes=duration_minutes,
                interval_seconds=interval_seconds,
            ),
            created=True,
        ),
        replay=lambda: PlanOutcome(SlicingPlan.objects.get(key=key), created=False),
        on_write=on_write,
    )
    if not outcome.created:
        return outcome
    plan = outcome.plan
    warnings = plan.warnings
    for warning in warnings:
        logger.warning("TWAP plan %s (%s): %s", plan.pk, actor_label(actor), warning)
    logger.info(
        "TWAP plan %s: %s %s %s in %d slices every %ss (cap %s, %s)",
        plan.pk,
        plan.side,
        plan.qty,
        plan.symbol,
        plan.slice_count,
        plan.slice_interval_seconds,
        plan.max_slice_qty,
        plan.liquidity_source,
    )
    return PlanOutcome(plan, created=True, warnings=warnings)


def _plan_warnings(ctx: risk.RiskContext, liquidity: LiquidityConstraint) -> list[str]:
    warnings = list(ctx.warnings)
    if liquidity.source == "unavailable":
        warnings.append(f"liquidity: {liquidity.note}")
    return warnings


def _plan_insert(
    request: risk.OrderIntent,
    key: str,
    sliced: SlicePlan,
    liquidity: LiquidityConstraint,
    ctx: risk.RiskContext,
    now: datetime,
    *,
    duration_minutes: int,
    interval_seconds: int,
) -> SlicingPlan:
    terms = request.terms()
    plan = SlicingPlan.objects.create(
        key=key,
        **terms,
        duration_minutes=duration_minutes,
        interval_seconds=interval_seconds,
        slice_interval_seconds=sliced.interval_seconds,
        slice_count=len(sliced.slices),
        start_at=now,
        origin=request.origin,
        trade_date=now.date(),
        adv=liquidity.adv,
        adv_pct=liquidity.pct,
        max_slice_qty=liquidity.max_slice_qty,
        liquidity_source=liquidity.source,
        liquidity_computed_at=liquidity.computed_at,
        liquidity_note=liquidity.note,
        warnings=_plan_warnings(ctx, liquidity),
        created_at=now,
        updated_at=now,
    )
    under_override = bool(ctx.extras.get("placed_under_override"))
    Order.objects.bulk_create(
        Order(
            client_order_id=slice_client_order_id(plan_key=key, slice_num=s.slice_num),
            **{**terms, "qty": s.qty},
            plan=plan,
            slice_num=s.slice_num,
            scheduled_time=s.scheduled_time,
            origin=Origin.TWAP,
            trade_date=now.date(),
            placed_under_override=under_override,
            created_at=now,
            updated_at=now,
        )
        for s in sliced.slices
    )
    return plan


# --- cancel --------------------------------------------------------------------------------
@dataclass
class PlanCancelOutcome:
    plan: SlicingPlan
    canceled: int  # slices canceled here (they never reached the broker)
    in_flight: int  # slices already claimed by a dispatcher or at the broker, left alone


def plan_cancel(*, plan: SlicingPlan, actor: Any, reason: str = "") -> PlanCancelOutcome:
    """Cancel the plan and every slice that has not gone out. Never blocked by the gate, kill
    switch or breaker: it only removes risk.

    Slices already at the broker are not touched (cancel them as orders); a slice a dispatcher
    has claimed is canceled by that dispatcher's pre-send check, which sees the plan canceled.
    Cancelling a canceled plan again cancels whatever is still pending (normally nothing);
    a completed or failed plan is a conflict.
    """
    now = timezone.now()
    # an operator says why; a strategy's program cancelling its own plan may not
    reason = reason_clean(reason, optional=strategy_scope(actor) is not None) or "canceled"
    with transaction.atomic():
        locked = SlicingPlan.objects.select_for_update().get(pk=plan.pk)
        if locked.status in (PlanStatus.COMPLETED, PlanStatus.FAILED):
            raise Conflict(
                f"TWAP plan {plan.pk} is already {locked.status}.",
                details={"status": locked.status},
            )
        if locked.status != PlanStatus.CANCELED:
            pending = Order.objects.filter(plan=locked, status=S.PENDING_NEW).count()
            audit_record(
                actor=actor,
                action="plan.cancel",
                object_type="slicing_plan",
                object_id=locked.pk,
                reason=reason,
                before={"status": locked.status, "pending_slices": pending},
                after={"status": PlanStatus.CANCELED},
            )
            locked.status, locked.status_reason = PlanStatus.CANCELED, reason
            locked.ended_at = locked.updated_at = now
            locked.save(update_fields=["status", "status_reason", "ended_at", "updated_at"])
    # Each slice in its own transaction, after the plan lock is released: ending a slice locks
    # the slice, then its plan (apply_order_update), so holding the plan here could deadlock
    # with recovery ending the same slice. The plan is canceled already, so no dispatcher will
    # send what is left, and calling this again finishes the job.
    canceled = sum(
        order_end_locally(order=o, status=S.CANCELED, note=f"plan canceled: {reason}")
        for o in _pending_unclaimed(locked)
    )
    in_flight = Order.objects.filter(plan=locked, is_terminal=False).count()
    logger.info(
        "TWAP plan %s canceled by %s: %d slices canceled, %d in flight",
        plan.pk,
        actor_label(actor),
        canceled,
        in_flight,
    )
    return PlanCancelOutcome(locked, canceled, in_flight)


def plan_set_paused(
    *, plan: SlicingPlan, paused: bool, actor: Any, reason: str, step_up: StepUp | None = None
) -> SlicingPlan:
    """Pause an active plan (its slices stay pending; no dispatcher claims them) or resume a
    paused one. On resume, if slices fell due during the pause, the remaining slices are
    rescheduled to start now, keeping the plan's spacing, so they do not go out in one burst;
    the plan ends correspondingly later. Audited with the reason; resuming puts money at risk
    again, so it needs a step-up."""
    reason = reason_clean(reason)
    if not paused:
        step_up_require(step_up, actor=actor, action="plan.resume")
    now = timezone.now()
    have = PlanStatus.ACTIVE if paused else PlanStatus.PAUSED
    want = PlanStatus.PAUSED if paused else PlanStatus.ACTIVE
    if not paused and SlicingPlan.objects.filter(pk=plan.pk, status=PlanStatus.PAUSED).exists():
        # Reschedule BEFORE the plan is active again: no dispatcher claims a paused plan's
        # slices, so none of the overdue ones can be claimed (and sent in a burst) in between.
        # Not under the plan lock: moving slices locks them, and the update path locks a slice
        # before its plan.
        first_due = Order.objects.filter(plan_id=plan.pk, status=S.PENDING_NEW).aggregate(
            first=Min("scheduled_time")
        )["first"]
        if first_due is not None and first_due < now:
            plan_reschedule_pending(plan=plan, next_open=now)
    with transaction.atomic():
        locked = SlicingPlan.objects.select_for_update().get(pk=plan.pk)
        if locked.status != have:
            raise Conflict(
                f"TWAP plan {plan.pk} is {locked.status}, not {have}.",
                details={"status": locked.status},
            )
        audit_record(
            actor=actor,
            action="plan.pause" if paused else "plan.resume",
            object_type="slicing_plan",
            object_id=locked.pk,
            reason=reason,
            before={"status": have},
            after={"status": want, **({"step_up": step_up.as_audit()} if step_up else {})},
        )
        locked.status, locked.updated_at = want, now
        locked.save(update_fields=["status", "updated_at"])
    logger.info("TWAP plan %s %s by %s: %s", plan.pk, want, actor_label(actor), reason)
    return locked


def _pending_unclaimed(plan: SlicingPlan) -> list[Order]:
    return list(
        Order.objects.slices_unclaimed()
        .filter(plan=plan)
        .only("id", "client_order_id", "status", "send_claimed_at")
        .order_by("slice_num")
    )


# --- local slice transitions (dispatcher, recovery, cancel) --------------------------------
def slice_unclaim(*, order_id: int, token: datetime) -> bool:
    """Give a claimed, unsent slice back (deferred, or found not at the broker): a conditional
    UPDATE that only succeeds for the claim it names."""
    return bool(
        Order.objects.filter(pk=order_id, status=S.PENDING_NEW, send_claimed_at=token).update(
            send_claimed_at=None
        )
    )


def plan_reschedule_pending(
    *, plan: SlicingPlan, next_open: datetime, token: datetime | None = None
) -> int:
    """Move every pending slice of ``plan`` that is free (or claimed with ``token``) to the next
    open (on resume: to now), keeping the plan's spacing (``orders.slicing.rescheduled_time``);
    the client_order_ids stay. Returns how many moved. The new times depend only on the plan,
    the slice numbers and the open, so two dispatchers doing this at once agree."""
    now = timezone.now()
    free = Q(send_claimed_at__isnull=True)
    if token is not None:
        free |= Q(send_claimed_at=token)
    with transaction.atomic():
        pending = Order.objects.filter(plan=plan, status=S.PENDING_NEW)
        first = pending.aggregate(first=Min("slice_num"))["first"]
        rows = list(pending.select_for_update().filter(free).only("id", "slice_num"))
        for row in rows:
            row.scheduled_time = rescheduled_time(
                slice_num=row.slice_num,
                first_pending_num=first,
                next_open=next_open,
                interval_seconds=plan.slice_interval_seconds,
            )
            row.send_claimed_at = None
            row.updated_at = now
        Order.objects.bulk_update(rows, ["scheduled_time", "send_claimed_at", "updated_at"])
    return len(rows)

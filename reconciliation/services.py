"""Reconciliation writes: orphans and quarantines, operators' resolutions (the gate's inputs
are in ``reconciliation.gate``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.models import RESERVED_STRATEGY_ID, Order, Strategy
from orders.services import order_adopt
from orders.status import is_terminal
from reconciliation.models import (
    ANY_STRATEGY,
    OrphanOrder,
    Quarantine,
)
from tradeops import metrics
from tradeops.audit import actor_label, audit_record
from tradeops.broker import (
    BrokerError,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
    OrderReport,
    get_broker,
)
from tradeops.errors import (
    Conflict,
    ServiceUnavailable,
    ValidationFailed,
)
from tradeops.otp import StepUp, step_up_require
from tradeops.reasons import reason_clean

logger = logging.getLogger(__name__)
Status = OrphanOrder.Status


# --- orphans found by a run -------------------------------------------------------------------
def _notional(report: OrderReport) -> Decimal:
    price = report.limit_price or report.stop_price or report.filled_avg_price or Decimal(0)
    return (price * max(report.qty - report.filled_qty, 0)).quantize(Decimal("0.01"))


def orphans_record(new: list[OrderReport], known: list[OrderReport], *, now: datetime) -> int:
    """Record broker orders nobody here placed, each fenced by a ``*:{symbol}`` quarantine
    (fail closed: the strategy is unknown), and refresh the ones already recorded."""
    with transaction.atomic():
        OrphanOrder.objects.bulk_create(
            [
                OrphanOrder(
                    broker_order_id=o.broker_order_id,
                    client_order_id=o.client_order_id,
                    symbol=o.symbol,
                    side=o.side,
                    qty=o.qty,
                    filled_qty=o.filled_qty,
                    order_type=o.order_type,
                    limit_price=o.limit_price,
                    estimated_notional=_notional(o),
                    broker_status=o.status,
                    broker_submitted_at=o.submitted_at,
                    broker_updated_at=o.updated_at,
                    detected_at=now,
                    last_seen_at=now,
                )
                for o in new
            ],
            ignore_conflicts=True,
        )
        fresh = list(
            OrphanOrder.objects.filter(
                broker_order_id__in=[o.broker_order_id for o in new],
                detected_at=now,
            )
        )
        Quarantine.objects.bulk_create(
            [
                Quarantine(
                    strategy_id=ANY_STRATEGY,
                    symbol=o.symbol,
                    orphan=o,
                    created_at=now,
                    reason=f"orphan order {o.broker_order_id} ({o.side} {o.qty} "
                    f"{o.symbol}, {o.broker_status}) at the broker",
                )
                for o in fresh
            ],
            ignore_conflicts=True,
        )
        _orphans_refresh(known, now=now)
    for o in fresh:
        logger.warning(
            "ORPHAN order at the broker: %s %s %s %s (%s); %s quarantined for all strategies",
            o.broker_order_id,
            o.side,
            o.qty,
            o.symbol,
            o.broker_status,
            o.symbol,
        )
    metrics.SYMBOLS_QUARANTINED.inc(len(fresh))
    return len(fresh)


def _broker_facts(report: OrderReport, *, now: datetime) -> dict[str, Any]:
    """What an orphan row records of the broker's order (never its resolution)."""
    return {
        "broker_status": report.status,
        "filled_qty": report.filled_qty,
        "broker_updated_at": report.updated_at,
        "estimated_notional": _notional(report),
        "last_seen_at": now,
    }


def _is_older(row: OrphanOrder, report: OrderReport) -> bool:
    return row.broker_updated_at is not None and report.updated_at < row.broker_updated_at


def _orphans_refresh(known: list[OrderReport], *, now: datetime) -> None:
    """Write only the recorded orphans whose broker state moved (one read, one bulk write), in
    the caller's transaction. The rows are locked (in id order, so two writers cannot
    deadlock) and a report older than what a row holds (an operator's cancel wrote a newer
    one meanwhile) is skipped. Only broker facts are written, never the resolution."""
    if not known:
        return
    by_id = {o.broker_order_id: o for o in known}
    changed = []
    rows = OrphanOrder.objects.select_for_update().filter(broker_order_id__in=list(by_id))
    for row in rows.order_by("pk"):
        report = by_id[row.broker_order_id]
        if (row.broker_status, row.filled_qty) == (report.status, report.filled_qty):
            continue
        if _is_older(row, report):
            continue
        for name, value in _broker_facts(report, now=now).items():
            setattr(row, name, value)
        changed.append(row)
    if changed:
        fields = list(_broker_facts(known[0], now=now))
        OrphanOrder.objects.bulk_update(changed, fields, batch_size=500)


def orphans_auto_cancel(*, older_than: int) -> int:
    """Optional policy (off by default): cancel unfilled orphans older than ``older_than``."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    stale = OrphanOrder.objects.filter(
        status=Status.UNTRACKED, filled_qty=0, detected_at__lt=cutoff
    )
    done = 0
    for orphan in stale:
        if is_terminal(orphan.broker_status):
            continue
        try:
            orphan_cancel(
                orphan=orphan,
                actor=None,
                reason=f"auto-cancel: unfilled orphan older than {older_than}s",
            )
            done += 1
        except (Conflict, ServiceUnavailable) as exc:
            logger.warning("auto-cancel of orphan %s failed: %s", orphan.broker_order_id, exc)
    return done


# --- operators' resolutions ---------------------------------------------------------------------
def _lift_quarantines(orphan: OrphanOrder, *, actor: Any, reason: str) -> int:
    """Clear the quarantines this orphan holds; other quarantines on the symbol stay."""
    return (
        Quarantine.objects.active()
        .filter(orphan=orphan)
        .update(cleared_at=timezone.now(), cleared_by=actor_label(actor), clear_reason=reason)
    )


def _orphan_lock(orphan: OrphanOrder) -> OrphanOrder:
    """The orphan's row, locked for the caller's transaction, and still untracked (409
    otherwise): two operators, or an operator and reconciliation, cannot both act on it."""
    locked = OrphanOrder.objects.select_for_update().get(pk=orphan.pk)
    _require_untracked(locked)
    return locked


def _orphan_note_broker(locked: OrphanOrder, report: OrderReport) -> None:
    """Record what the broker just answered about a locked orphan, unless the row already
    holds a newer answer."""
    if _is_older(locked, report):
        return
    facts = _broker_facts(report, now=timezone.now())
    for name, value in facts.items():
        setattr(locked, name, value)
    locked.save(update_fields=list(facts))


def _resolve(
    locked: OrphanOrder,
    status: str,
    *,
    actor: Any,
    reason: str,
    action: str,
    step_up: StepUp | None = None,
    **extra: Any,
) -> None:
    """Resolve a locked, untracked orphan: its resolution fields only (a full-row save would
    put back broker facts read before a concurrent refresh), its quarantines lifted, the
    audit row, all in the caller's transaction."""
    before = {"status": locked.status, "broker_status": locked.broker_status}
    changes = {
        "status": status,
        "resolved_at": timezone.now(),
        "resolved_by": actor_label(actor),
        "resolution_note": reason,
        **extra,
    }
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save(update_fields=list(changes))
    lifted = _lift_quarantines(locked, actor=actor, reason=f"{action}: {reason}")
    audit_record(
        actor=actor,
        action=f"orphan.{action}",
        object_type="orphan_order",
        object_id=locked.broker_order_id,
        reason=reason,
        before=before,
        after={
            "status": status,
            "broker_status": locked.broker_status,
            "quarantines_lifted": lifted,
            **{k: str(v) for k, v in extra.items()},
            **({"step_up": step_up.as_audit()} if step_up else {}),
        },
    )


def _require_untracked(orphan: OrphanOrder) -> None:
    if orphan.status != Status.UNTRACKED:
        by = f" by {orphan.resolved_by}" if orphan.resolved_by else ""
        raise Conflict(
            f"Orphan {orphan.broker_order_id} is already {orphan.status}{by}.",
            details={"status": orphan.status},
        )


def orphan_adopt(
    *,
    orphan: OrphanOrder,
    strategy: Strategy,
    actor: Any,
    reason: str,
    step_up: StepUp | None = None,
) -> Order:
    """Take an orphan into the order ledger under ``strategy``; its quarantine is lifted, so
    it needs a step-up.

    The order row starts from the broker's current state (``orders.services.order_adopt``);
    it does not move ``Position``: the broker position already contains whatever it filled,
    and reconciliation keeps the two in step. The broker is asked first, outside any
    transaction; then the orphan is locked and checked again."""
    reason = reason_clean(reason)
    step_up_require(step_up, actor=actor, action="orphan.adopt")
    _require_untracked(orphan)  # a quick answer before asking the broker; checked again locked
    if strategy.pk == RESERVED_STRATEGY_ID:
        raise ValidationFailed("Adopt into a real strategy, not 'external'.")
    try:
        report = get_broker().get_order(orphan.broker_order_id)
    except BrokerUnavailable as exc:
        raise ServiceUnavailable(f"Broker unavailable: {exc.message}", retry_after=5) from exc
    except BrokerNotFound:
        raise Conflict("The broker no longer knows this order.") from None
    try:
        with transaction.atomic():
            locked = _orphan_lock(orphan)
            order = order_adopt(
                report=report,
                strategy=strategy,
                note=f"adopted from orphan by {actor_label(actor)}: {reason}",
                now=timezone.now(),
            )
            _orphan_note_broker(locked, report)
            _resolve(
                locked,
                Status.ADOPTED,
                actor=actor,
                reason=reason,
                action="adopt",
                adopted_order=order,
                strategy_id=strategy.pk,
                step_up=step_up,
            )
    except IntegrityError:
        raise Conflict(
            f"An order with client_order_id {report.client_order_id} already "
            "exists; it is not an orphan."
        ) from None
    return order


def orphan_cancel(*, orphan: OrphanOrder, actor: Any, reason: str) -> OrphanOrder:
    """Cancel the orphan at the broker; once the broker confirms, its quarantine is lifted.

    The cancel is sent outside any transaction; its outcome is then recorded on the locked
    row. If another operator resolved the orphan meanwhile, that resolution stands and this
    call answers 409 (the broker's answer to the cancel is still recorded)."""
    reason = reason_clean(reason)
    _require_untracked(orphan)
    broker = get_broker()
    try:
        broker.cancel_order(orphan.broker_order_id)
        report = broker.get_order(orphan.broker_order_id)
    except BrokerUnavailable as exc:
        raise ServiceUnavailable(f"Broker unavailable: {exc.message}", retry_after=5) from exc
    except BrokerRejected as exc:
        raise Conflict(f"The broker refused the cancel: {exc.message}") from exc
    except BrokerError as exc:
        raise Conflict(f"Cancel failed: {exc.message}") from exc
    with transaction.atomic():
        locked = OrphanOrder.objects.select_for_update().get(pk=orphan.pk)
        _orphan_note_broker(locked, report)
        resolved_meanwhile = locked.status != Status.UNTRACKED
        if not resolved_meanwhile and is_terminal(report.status):
            _resolve(locked, Status.CANCELED, actor=actor, reason=reason, action="cancel")
        elif not resolved_meanwhile:  # pending_cancel: the quarantine stays until confirmed
            audit_record(
                actor=actor,
                action="orphan.cancel_requested",
                object_type="orphan_order",
                object_id=locked.broker_order_id,
                reason=reason,
                after={"broker_status": report.status},
            )
    if resolved_meanwhile:
        raise Conflict(
            f"Orphan {locked.broker_order_id} was {locked.status} by {locked.resolved_by} "
            f"meanwhile; the cancel reached the broker (now {report.status}).",
            details={"status": locked.status, "broker_status": report.status},
        )
    return locked


def orphan_resolve(*, orphan: OrphanOrder, actor: Any, reason: str) -> OrphanOrder:
    """Acknowledge an orphan that is finished at the broker (filled, canceled, expired)."""
    reason = reason_clean(reason)
    with transaction.atomic():
        locked = _orphan_lock(orphan)
        if not is_terminal(locked.broker_status):
            raise Conflict(
                f"The orphan is still {locked.broker_status} at the broker: adopt or cancel it "
                "first."
            )
        _resolve(locked, Status.RESOLVED, actor=actor, reason=reason, action="resolve")
    return locked


def orphan_narrow(
    *, orphan: OrphanOrder, actor: Any, reason: str, step_up: StepUp | None = None
) -> int:
    """After verification: fence only the ``external`` pseudo-strategy on the symbol instead of
    every strategy (a step-up: other strategies may trade it again). The orphan's exposure
    still counts in every risk check."""
    reason = reason_clean(reason)
    step_up_require(step_up, actor=actor, action="quarantine.narrow")
    with transaction.atomic():
        locked = _orphan_lock(orphan)
        narrowed = Quarantine.objects.active().filter(orphan=locked, strategy_id=ANY_STRATEGY)
        count = narrowed.update(strategy_id=RESERVED_STRATEGY_ID)
        audit_record(
            actor=actor,
            action="quarantine.narrow",
            object_type="orphan_order",
            object_id=locked.broker_order_id,
            reason=reason,
            before={"scope": f"*:{locked.symbol}"},
            after={
                "scope": f"{RESERVED_STRATEGY_ID}:{locked.symbol}",
                "count": count,
                "step_up": step_up.as_audit(),
            },
        )
    return count


def quarantine_clear(
    *, quarantine: Quarantine, actor: Any, reason: str, step_up: StepUp | None = None
) -> Quarantine:
    """Lift a quarantine by hand (a step-up); refused while its orphan is unresolved."""
    reason = reason_clean(reason)
    step_up_require(step_up, actor=actor, action="quarantine.clear")
    if not quarantine.is_active:
        raise Conflict("This quarantine is already cleared.")
    orphan = quarantine.orphan
    if orphan is not None and orphan.status == Status.UNTRACKED:
        raise Conflict(
            f"Its orphan {orphan.broker_order_id} is unresolved: adopt, cancel or resolve it first."
        )
    with transaction.atomic():
        updated = Quarantine.objects.filter(pk=quarantine.pk, cleared_at__isnull=True).update(
            cleared_at=timezone.now(), cleared_by=actor_label(actor), clear_reason=reason
        )
        if not updated:
            raise Conflict("This quarantine is already cleared.")
        audit_record(
            actor=actor,
            action="quarantine.clear",
            object_type="quarantine",
            object_id=quarantine.pk,
            reason=reason,
            before={"scope": quarantine.key, "active": True},
            after={"active": False, "step_up": step_up.as_audit()},
        )
    quarantine.refresh_from_db()
    return quarantine

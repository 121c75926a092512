"""Order writes: submit, send, cancel, and the adoption of an orphan into the ledger.

The submit path (DESIGN §3): validate -> risk checks under the symbol lock -> insert
``pending_new``, claimed for sending -> commit -> broker submit -> apply the answer. No broker
call happens inside a transaction, and nothing but the one update path (``orders.updates``,
and the initial insert) writes ``Order.status``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, CharField
from django.utils import timezone

from orders import risk
from orders.controls import circuit_breaker_note_rejection
from orders.ids import client_order_id_for
from orders.models import Order, OrderEvent, Origin, Strategy
from orders.status import RESEND, OrderStatus, Source, may_resend, stored_status
from orders.updates import apply_broker_report, apply_order_update
from tradeops import metrics
from tradeops.audit import actor_label, audit_record
from tradeops.broker import (
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
    DuplicateClientOrderId,
    OrderReport,
    get_broker,
)
from tradeops.compiled import CompiledQuery
from tradeops.errors import (
    Conflict,
    PermissionDenied,
    ServiceUnavailable,
    ValidationFailed,
)
from tradeops.permissions import strategy_scope
from tradeops.reasons import reason_clean

logger = logging.getLogger(__name__)

S = OrderStatus


def order_adopt(*, report: OrderReport, strategy: Strategy, note: str, now: datetime) -> Order:
    """Insert a broker order nobody here placed (an orphan an operator adopts) into the ledger,
    as the broker reports it now, with manual strength. Not through ``apply_order_update``:
    its fills already moved the broker position (and so, through reconciliation, ours), so
    they must not move ``Position`` again; later reports do, by their delta. Needs the
    caller's transaction; an existing client_order_id raises IntegrityError."""
    stored = stored_status(report.status, Source.MANUAL)
    order = Order.objects.create(
        client_order_id=report.client_order_id,
        strategy=strategy,
        symbol=report.symbol,
        side=report.side,
        qty=report.qty,
        order_type=report.order_type or "market",
        time_in_force=report.time_in_force or "day",
        limit_price=report.limit_price,
        stop_price=report.stop_price,
        **asdict(stored),
        filled_qty=report.filled_qty,
        filled_avg_price=report.filled_avg_price,
        broker_order_id=report.broker_order_id,
        broker_updated_at=report.updated_at,
        origin=Origin.ADOPTED,
        trade_date=report.submitted_at.date(),
        send_claimed_at=report.submitted_at,
        submitted_at=report.submitted_at,
        created_at=now,
        updated_at=now,
    )
    OrderEvent.objects.create(
        order=order,
        created_at=now,
        source=Source.MANUAL,
        status=report.status,
        filled_qty=report.filled_qty,
        filled_avg_price=report.filled_avg_price,
        broker_updated_at=report.updated_at,
        applied=True,
        reason="adopted",
        note=note[:2000],
    )
    return order


# --- submit ------------------------------------------------------------------------------
@dataclass
class SubmitOutcome:
    order: Order
    created: bool
    # An order that had failed without reaching the broker, claimed to be sent again.
    resent: bool = False
    warnings: list[str] = field(default_factory=list)


def strategy_require_active(strategy_id: str, *, known: Strategy | None = None) -> Strategy:
    """The order's strategy, which must exist and be active. ``known``: the strategy the
    caller already loaded in this request (a token's, checked active by its authentication),
    which saves the query."""
    if known is not None and known.pk == strategy_id and known.is_active:
        return known
    strategy = Strategy.objects.filter(pk=strategy_id).first()
    if strategy is None:
        raise ValidationFailed(
            f"Unknown strategy '{strategy_id}'.", details={"strategy": strategy_id}
        )
    if not strategy.is_active:
        raise PermissionDenied(f"Strategy '{strategy_id}' is disabled.")
    return strategy


# The idempotency lookup of every submit (compiled once: tradeops.compiled).
_BY_CLIENT_ID = CompiledQuery(
    lambda client_order_id: Order.objects.filter(client_order_id=client_order_id)[:1],
    model=True,
    client_order_id=CharField(),
)


_BY_ID = CompiledQuery(lambda pk: Order.objects.filter(pk=pk)[:1], model=True, pk=BigIntegerField())


def order_client_id(request: risk.OrderIntent, now: datetime) -> str:
    return client_order_id_for(
        symbol=request.symbol,
        side=request.side,
        qty=request.qty,
        order_type=request.order_type,
        time_in_force=request.time_in_force,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        strategy_id=request.strategy_id,
        trade_date=now.date(),
        request_key=request.request_key,
    )


def order_create(
    *,
    request: risk.OrderIntent,
    actor: Any,
    now: datetime | None = None,
    strategy: Strategy | None = None,
    claim: bool = False,
    on_write: Callable[[SubmitOutcome], None] | None = None,
) -> SubmitOutcome:
    """Record an order (``pending_new``) after the pre-trade checks, without sending it.
    ``claim``: the caller sends it next; the new row is claimed for sending (``send_claimed_at``)
    in the insert's own transaction, so no other path (a local cancel) can take it.

    The same request on the same UTC day returns the existing order (``created=False``),
    unless that order ended ``failed`` without ever reaching the broker: then the checks run
    again and it is claimed to be sent again under the same client_order_id (``resent``).
    ``strategy``: the request's strategy if the caller has it loaded already (a token's).
    ``on_write`` runs inside the insert's (or re-send claim's) transaction.
    """
    now = now or timezone.now()
    strategy_require_active(request.strategy_id, known=strategy)
    coid = order_client_id(request, now)
    existing = _BY_CLIENT_ID.first(client_order_id=coid)
    if existing is not None and not may_resend(existing.status, existing.broker_updated_at):
        metrics.ORDERS_IDEMPOTENT_REPLAYS.inc()
        return SubmitOutcome(existing, created=False)
    ctx = risk.prepare_context(request, now)
    if existing is None:
        outcome = risk.pretrade_write(
            request,
            ctx,
            label=f"order {coid}",
            write=lambda: _order_insert(request, ctx, coid=coid, now=now, claim=claim),
            replay=lambda: SubmitOutcome(Order.objects.get(client_order_id=coid), created=False),
            on_write=on_write,
        )
    else:
        outcome = risk.pretrade_write(
            request,
            ctx,
            label=f"order {coid}",
            already_done=lambda: _order_resend_taken(existing),
            write=lambda: _order_resend_claim(existing, ctx),
            replay=lambda: SubmitOutcome(existing, created=False),  # an UPDATE: never raised
            on_write=on_write,
        )
    for warning in outcome.warnings:
        logger.warning("order %s (%s): %s", coid, actor_label(actor), warning)
    return outcome


def _order_insert(
    request: risk.OrderIntent, ctx: risk.RiskContext, *, coid: str, now: datetime, claim: bool
) -> SubmitOutcome:
    order = Order.objects.create(
        client_order_id=coid,
        **request.terms(),
        origin=request.origin,
        trade_date=now.date(),
        placed_under_override=bool(ctx.extras.get("placed_under_override")),
        send_claimed_at=now if claim else None,
        warnings=list(ctx.warnings),
        created_at=now,
        updated_at=now,
    )
    return SubmitOutcome(order, created=True, warnings=ctx.warnings)


def _order_resend_taken(existing: Order) -> SubmitOutcome | None:
    """Under the symbol lock, before the checks: an order that is no longer a local
    ``failed`` (a rival re-send committed first, or a broker report reopened it) is answered
    as it stands."""
    existing.refresh_from_db()  # read under the lock: a rival has committed
    if may_resend(existing.status, existing.broker_updated_at):
        return None
    return SubmitOutcome(existing, created=False)


def _order_resend_claim(existing: Order, ctx: risk.RiskContext) -> SubmitOutcome:
    """Inside the order's transaction, under the symbol lock, after the checks passed again
    (judged as a new order): move the local ``failed`` back to ``pending_new``, claimed for
    sending, through the one update path."""
    result = apply_order_update(
        existing.client_order_id,
        S.PENDING_NEW,
        0,
        None,
        None,
        Source.SUBMIT,
        note="re-sent: the same request came again after it failed without reaching the broker",
    )
    existing.refresh_from_db()
    if result.reason != RESEND:
        metrics.ORDERS_IDEMPOTENT_REPLAYS.inc()
        return SubmitOutcome(existing, created=False)
    if ctx.extras.get("placed_under_override") and not existing.placed_under_override:
        Order.objects.filter(pk=existing.pk).update(placed_under_override=True)
        existing.placed_under_override = True
    if ctx.warnings != existing.warnings:  # judged again: what the checks say now
        Order.objects.filter(pk=existing.pk).update(warnings=list(ctx.warnings))
        existing.warnings = list(ctx.warnings)
    metrics.ORDERS_RESENT.inc()
    logger.warning("order %s failed earlier without reaching the broker: re-sent", existing)
    return SubmitOutcome(existing, created=False, resent=True, warnings=ctx.warnings)


def order_submit(
    *,
    request: risk.OrderIntent,
    actor: Any,
    now: datetime | None = None,
    strategy: Strategy | None = None,
    on_write: Callable[[SubmitOutcome], None] | None = None,
) -> SubmitOutcome:
    """Place an order: record it, then send it. Idempotent per request and UTC day; an order
    that failed without reaching the broker is sent again (see ``order_create``).

    A new order is inserted already claimed for sending, in the transaction of its checks
    (one statement and one commit fewer than claiming after it): the write-ahead row exists
    before the broker call, and the client_order_id makes the send happen at most once at the
    broker, whatever crashes. Ambiguous outcomes leave it ``submitted_unconfirmed`` for
    reconciliation to resolve."""
    outcome = order_create(
        request=request, actor=actor, now=now, strategy=strategy, claim=True, on_write=on_write
    )
    if outcome.created or outcome.resent:
        order_send_claimed(order=outcome.order)
        outcome.order = _BY_ID.first(pk=outcome.order.pk)  # as the broker's answer left it
    return outcome


def order_claim_send(*, order_id: int, now: datetime) -> bool:
    """Claim the right to send (or locally cancel) a ``pending_new`` order: a conditional
    UPDATE whose row count says who won. ``now`` is the claim's token."""
    return bool(
        Order.objects.filter(
            pk=order_id, status=S.PENDING_NEW, send_claimed_at__isnull=True
        ).update(send_claimed_at=now)
    )


def order_send_claimed(*, order: Order) -> str:
    """Submit an order this process has claimed, and apply the broker's answer. Returns the
    outcome: ``submitted``, ``duplicate`` (already at the broker, looked up), ``rejected`` or
    ``unconfirmed``.

    Never inside a transaction (a network call). The write-ahead row exists already, so a
    crash anywhere here leaves an order that recovery or reconciliation finds by its id.
    """
    broker, coid = get_broker(), order.client_order_id
    try:
        report = broker.submit_order(
            client_order_id=coid,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
        )
    except DuplicateClientOrderId:
        # Alpaca already has it (an earlier attempt got through): adopt its state, never resend.
        _resolve_by_lookup(coid, note="duplicate client_order_id at submit; looked up")
        return "duplicate"
    except BrokerRejected as exc:
        apply_order_update(
            coid,
            S.REJECTED,
            0,
            None,
            None,
            Source.SUBMIT,
            note=f"broker {exc.status_code}: {exc.message}",
        )
        metrics.ORDERS_REJECTED.labels("broker_rejected").inc()
        circuit_breaker_note_rejection()
        return "rejected"
    except BrokerUnavailable as exc:
        _mark_unconfirmed(coid, exc)
        return "unconfirmed"
    apply_broker_report(report, Source.SUBMIT)
    metrics.ORDERS_SUBMITTED.labels(order.origin).inc()
    return "submitted"


def _mark_unconfirmed(coid: str, exc: Exception) -> None:
    apply_order_update(
        coid, S.SUBMITTED_UNCONFIRMED, 0, None, None, Source.SUBMIT, note=f"ambiguous submit: {exc}"
    )
    metrics.ORDERS_UNCONFIRMED.inc()
    logger.warning("order %s submitted_unconfirmed: %s", coid, exc)


def _resolve_by_lookup(coid: str, *, note: str) -> None:
    try:
        report = get_broker().get_order_by_client_id(coid)
    except (BrokerUnavailable, BrokerNotFound) as exc:
        _mark_unconfirmed(coid, exc)
        return
    apply_broker_report(report, Source.SUBMIT, note=note)


# --- cancel ------------------------------------------------------------------------------
def order_end_locally(
    *, order: Order, status: str, note: str, token: datetime | None = None
) -> bool:
    """End an order that never reached the broker (canceled, blocked_*): through the one update
    path, and only while nobody else may be sending it. ``token`` None: claim it now (fails if
    anyone holds it); otherwise: only if the caller's claim (its timestamp) still holds, since
    recovery may have handed the slice to another dispatcher. Returns whether it was ended."""
    with transaction.atomic():
        if token is None:
            held = order_claim_send(order_id=order.pk, now=timezone.now())
        else:
            held = (
                Order.objects.select_for_update()
                .filter(pk=order.pk, status=S.PENDING_NEW, send_claimed_at=token)
                .exists()
            )
        if not held:
            return False
        source = Source.MANUAL if status == S.CANCELED else Source.SUBMIT
        apply_order_update(order.client_order_id, status, 0, None, None, source, note=note)
    return True


def order_cancel(*, order: Order, actor: Any, reason: str = "") -> Order:
    """Cancel an order. Never blocked by the gate, kill switch or breaker.

    An order that has not been claimed for sending is canceled locally (it never reaches the
    broker); otherwise the cancel goes to the broker and its answer comes back through the
    update path.
    """
    # an operator says why; a strategy's program cancelling its own order may not
    reason = reason_clean(reason, optional=strategy_scope(actor) is not None)
    if order.is_terminal:
        raise Conflict(
            f"Order {order.client_order_id} is already {order.status}.",
            details={"status": order.status},
        )
    with transaction.atomic():
        won = order_end_locally(
            order=order, status=S.CANCELED, note=reason or "canceled before it was sent"
        )
        if won:
            audit_record(
                actor=actor,
                action="order.cancel",
                object_type="order",
                object_id=order.client_order_id,
                reason=reason,
                before={"status": order.status},
                after={"status": S.CANCELED},
            )
    if won:
        order.refresh_from_db()
        return order
    return _cancel_at_broker(order, actor=actor, reason=reason)


def _cancel_at_broker(order: Order, *, actor: Any, reason: str) -> Order:
    broker, coid = get_broker(), order.client_order_id
    try:
        broker_id = order.broker_order_id
        if not broker_id:
            report = broker.get_order_by_client_id(coid)
            apply_broker_report(report, Source.SUBMIT)
            broker_id = report.broker_order_id
        broker.cancel_order(broker_id)
    except BrokerNotFound:
        raise Conflict(
            f"Order {coid} is not at the broker (yet); reconciliation will resolve it.",
            code="conflict",
            details={"status": order.status},
        ) from None
    except BrokerUnavailable as exc:
        raise ServiceUnavailable(f"Broker unavailable: {exc.message}", retry_after=5) from exc
    except BrokerRejected as exc:
        _refresh_from_broker(coid)
        order.refresh_from_db()
        raise Conflict(
            f"The broker refused the cancel: {exc.message}", details={"status": order.status}
        ) from exc
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="order.cancel_requested",
            object_type="order",
            object_id=coid,
            reason=reason,
            before={"status": order.status},
        )
    _refresh_from_broker(coid)
    order.refresh_from_db()
    return order


def _refresh_from_broker(coid: str) -> None:
    try:
        apply_broker_report(get_broker().get_order_by_client_id(coid), Source.SUBMIT)
    except (BrokerUnavailable, BrokerNotFound) as exc:
        logger.warning("could not refresh %s after cancel: %s", coid, exc)

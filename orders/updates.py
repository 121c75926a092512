"""The one update path: the only way an order's status changes after its insert (DESIGN §3).

``apply_order_update`` offers a status (from the broker's stream, reconciliation, a submit's
answer, an operator) to ONE conditional UPDATE: the compare-and-swap written as SQL
(``cas_condition``, cross-checked against the pure rule ``orders.status.decide`` by the
hypothesis tests). In the same transaction it records the offer (``OrderEvent``, applied or
skipped, with the reason), moves the symbol's ``Position`` by the fill it learnt, and lets a
TWAP plan follow its slices (ended when every slice is, active again when the broker reopens
one).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    DecimalField,
    Expression,
    F,
    Field,
    IntegerField,
    Q,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest
from django.db.models.lookups import Exact, IsNull
from django.utils import timezone

from orders.models import Order, OrderEvent, PlanStatus, Position, SlicingPlan
from orders.positions import fill_price_of_delta, position_after_fill, signed
from orders.status import (
    RESEND,
    OrderState,
    OrderStatus,
    Source,
    StatusUpdate,
    decide,
    is_terminal,
    stored_status,
)
from tradeops import metrics
from tradeops.broker_types import OrderReport
from tradeops.compiled import CompiledQuery, CompiledUpdate

logger = logging.getLogger(__name__)

S = OrderStatus


@dataclass(frozen=True)
class UpdateResult:
    applied: bool
    reason: str
    order_id: int | None = None
    fill_delta: int = 0


@dataclass(frozen=True)
class Offer:
    """An offered update as SQL expressions, one per column the compare-and-swap reads or
    writes: parameters for one update (``apply_order_update``), the columns of a VALUES list for
    a batch (``orders.bulk_updates``). Both build their WHERE and SET from the same
    ``cas_condition`` / ``cas_values`` over an Offer, so there is one SQL statement of the
    rule. ``reject_reason`` and ``send_claimed_at`` are NULL when the update leaves them.
    (The single path's are ``tradeops.compiled`` parameters of a statement compiled once.)"""

    status: Any
    status_rank: Any
    is_terminal: Any
    source_strength: Any
    filled_qty: Any
    filled_avg_price: Any
    broker_updated_at: Any
    broker_order_id: Any
    submitted_at: Any
    reject_reason: Any
    send_claimed_at: Any


# The Offer's columns, their Django field (for parameters) and SQL type (for a VALUES list).
OFFER_FIELDS: dict[str, Field] = {
    "status": CharField(),
    "status_rank": IntegerField(),
    "is_terminal": BooleanField(),
    "source_strength": IntegerField(),
    "filled_qty": IntegerField(),
    "filled_avg_price": DecimalField(max_digits=16, decimal_places=4),
    "broker_updated_at": DateTimeField(),
    "broker_order_id": CharField(),
    "submitted_at": DateTimeField(),
    "reject_reason": TextField(),
    "send_claimed_at": DateTimeField(),
}


def offer_row(
    u: StatusUpdate,
    *,
    filled_avg_price: Decimal | None,
    broker_order_id: str | None,
    submitted_at: datetime | None,
    note: str,
    now: datetime,
    resend: bool,
) -> dict[str, Any]:
    """The plain values of an Offer (``OFFER_FIELDS`` order)."""
    reject_reason = note[:2000] if note and u.status in (S.REJECTED, S.FAILED) else None
    return {
        **asdict(stored_status(u.status, u.source)),
        "filled_qty": u.filled_qty,
        "filled_avg_price": filled_avg_price,
        "broker_updated_at": u.broker_updated_at,
        "broker_order_id": broker_order_id or None,
        "submitted_at": submitted_at,
        # A re-send is claimed by whoever moved it back, in the same UPDATE: of two
        # concurrent re-sends only the one whose update applies sends; reconciliation's
        # grace restarts now.
        "reject_reason": "" if resend else reject_reason,
        "send_claimed_at": now if resend else None,
    }


def cas_condition(o: Offer) -> Q:
    """``orders.status.decide`` written as a WHERE clause (tests check they agree).

    The offer's own flags (is it ``filled``, does it carry a broker timestamp, is it a
    re-send) are SQL too, so one clause serves a single update and a VALUES list. No term
    that can be NULL (an offer without a timestamp) is negated, and each is ANDed with the
    flag that makes it meaningful, so NULL never decides a row."""
    filled = S.FILLED.value
    has_ts = Q(IsNull(o.broker_updated_at, False))
    no_ts = Q(IsNull(o.broker_updated_at, True))
    offers_filled = Q(Exact(o.status, Value(filled)))
    unlocked = (
        Q(is_terminal=False)
        | (offers_filled & Q(status=filled, filled_qty__lt=o.filled_qty))
        # a status we ended locally yields to the broker's report
        | (has_ts & Q(broker_updated_at__isnull=True) & ~Q(status=filled))
    )
    local = (
        no_ts
        & Q(broker_updated_at__isnull=True)
        & (
            Q(status_rank__lt=o.status_rank)
            | Q(status_rank=o.status_rank, filled_qty__lt=o.filled_qty)
        )
    )
    same = Q(broker_updated_at=o.broker_updated_at)
    broker = has_ts & (
        Q(broker_updated_at__isnull=True)
        | Q(broker_updated_at__lt=o.broker_updated_at)
        | (same & Q(status_rank__lt=o.status_rank))
        | (same & Q(status_rank=o.status_rank, filled_qty__lt=o.filled_qty))
        | (
            same
            & Q(status_rank=o.status_rank, filled_qty=o.filled_qty)
            & Q(source_strength__lt=o.source_strength)
        )
    )
    # the one way back from a local failed (orders.status.decide, rule 1; is_resend)
    resend = (
        Q(Exact(o.status, Value(S.PENDING_NEW.value)))
        & no_ts
        & Q(Exact(o.filled_qty, Value(0)))
        & Q(status=S.FAILED.value, broker_updated_at__isnull=True)
    )
    return (unlocked & (local | broker)) | resend


def cas_values(o: Offer, *, now: datetime | Expression) -> dict[str, Any]:
    """The SET of the compare-and-swap. Every right-hand side reads the row as it was before
    the UPDATE (SQL semantics)."""
    return {
        "status": o.status,
        "status_rank": o.status_rank,
        "is_terminal": o.is_terminal,
        "source_strength": o.source_strength,
        "filled_qty": Greatest(F("filled_qty"), o.filled_qty),
        "filled_avg_price": Case(
            When(filled_qty__lt=o.filled_qty, then=o.filled_avg_price),
            default=F("filled_avg_price"),
        ),
        "updated_at": now,
        "broker_updated_at": Coalesce(o.broker_updated_at, F("broker_updated_at")),
        "broker_order_id": Coalesce(F("broker_order_id"), o.broker_order_id),
        "submitted_at": Coalesce(F("submitted_at"), o.submitted_at),
        "reject_reason": Coalesce(o.reject_reason, F("reject_reason")),
        "send_claimed_at": Coalesce(o.send_claimed_at, F("send_claimed_at")),
    }


# The single update's statement, compiled once: building and compiling the rule's expression
# tree cost ~8 ms of CPU per update, for SQL that only differs by its parameters.
def _cas_build(id: Any, now: Any, **offer: Any) -> tuple[Any, dict[str, Any]]:
    o = Offer(**offer)
    return Order.objects.filter(Q(pk=id) & cas_condition(o)), cas_values(o, now=now)


_CAS = CompiledUpdate(_cas_build, id=BigIntegerField(), now=DateTimeField(), **OFFER_FIELDS)


def cas_execute(order_id: int, row: dict[str, Any], *, now: datetime) -> bool:
    """``UPDATE orders_order SET cas_values WHERE id = … AND cas_condition`` for one order
    and an ``offer_row``: whether it applied."""
    return _CAS.execute(id=order_id, now=now, **row) == 1


# What the update rule reads of an order row (its state, and what a fill moves): the one
# path here and the set-based path in orders/bulk_updates.py read the same columns.
STATE_FIELDS = (
    "id",
    "status",
    "filled_qty",
    "filled_avg_price",
    "broker_updated_at",
    "source_strength",
    "symbol",
    "side",
    "plan_id",
)


_LOCK_STATE = CompiledQuery(
    lambda client_order_id: (
        Order.objects.select_for_update()
        .filter(client_order_id=client_order_id)
        .values_list(*STATE_FIELDS)[:1]
    ),
    client_order_id=CharField(),
)


def apply_order_update(
    client_order_id: str,
    status: str,
    filled_qty: int,
    filled_avg_price: Decimal | None,
    broker_updated_at: datetime | None,
    source: str,
    broker_order_id: str | None = None,
    event_id: str | None = None,
    *,
    submitted_at: datetime | None = None,
    note: str = "",
) -> UpdateResult:
    """THE way an order's status changes: one conditional UPDATE (compare-and-swap).

    Terminal lock; a newer broker timestamp wins; on a tie higher rank, then larger fill, then
    stronger source (manual > reconciliation/submit > stream). ``filled_qty`` never decreases.
    Every offered update, applied or skipped, leaves an OrderEvent with its reason, and a fill
    increase moves the symbol's Position in the same transaction.
    """
    update = StatusUpdate(str(status), int(filled_qty or 0), broker_updated_at, Source(source))
    now = timezone.now()
    with transaction.atomic():
        found = _LOCK_STATE.first(client_order_id=client_order_id)
        row = None if found is None else dict(zip(STATE_FIELDS, found, strict=True))
        if row is None:
            metrics.ORDER_UPDATES.labels(update.source, "unknown_order").inc()
            return UpdateResult(False, "unknown_order")
        current = OrderState(
            row["status"], row["filled_qty"], row["broker_updated_at"], row["source_strength"]
        )
        decision = decide(current, update)
        offer = offer_row(
            update,
            filled_avg_price=filled_avg_price,
            broker_order_id=broker_order_id,
            submitted_at=submitted_at,
            note=note,
            now=now,
            resend=decision.reason == RESEND,
        )
        applied = cas_execute(row["id"], offer, now=now)
        reason = decision.reason
        if applied != decision.apply:  # the row is locked, so this would be a bug in one of them
            logger.error("CAS disagrees with decide() for %s: %s", client_order_id, decision)
            reason = f"sql_{'applied' if applied else 'skipped'}"
        delta = max(update.filled_qty - row["filled_qty"], 0) if applied else 0
        if delta:
            price = fill_price_of_delta(
                old_qty=row["filled_qty"],
                old_avg=row["filled_avg_price"],
                new_qty=update.filled_qty,
                new_avg=filled_avg_price,
            )
            _position_apply_fill(row["symbol"], signed(row["side"], delta), price, now)
        OrderEvent.objects.create(
            order_id=row["id"],
            created_at=now,
            source=update.source,
            status=update.status,
            filled_qty=update.filled_qty,
            filled_avg_price=filled_avg_price,
            broker_updated_at=broker_updated_at,
            event_id=event_id or "",
            applied=applied,
            reason=reason,
            status_before=row["status"],
            filled_qty_before=row["filled_qty"],
            note=note[:2000],
        )
        # A terminal order that moved was ended locally and reopened by the broker (a
        # ``filled`` learning a larger fill stays filled and is not a reopen).
        reopened = applied and is_terminal(row["status"]) and row["status"] != S.FILLED
        if reopened and row["plan_id"] is not None:
            plan_status_reopen(plan_id=row["plan_id"], now=now, client_order_id=client_order_id)
        if applied and row["plan_id"] is not None and is_terminal(update.status):
            plan_status_follow(plan_id=row["plan_id"], now=now)
    if reopened:
        metrics.ORDERS_REOPENED.labels(update.source).inc()
        logger.warning(
            "order %s: the broker reports it %s (%s filled); our local %s is overruled and "
            "the order reopened",
            client_order_id,
            update.status,
            update.filled_qty,
            row["status"],
        )
    metrics.ORDER_UPDATES.labels(update.source, "applied" if applied else "skipped").inc()
    if not applied:
        metrics.ORDER_UPDATES_SKIPPED.labels(reason).inc()
    return UpdateResult(applied, reason, row["id"], delta)


def apply_broker_report(
    report: OrderReport, source: str, *, event_id: str | None = None, note: str = ""
) -> UpdateResult:
    """Offer a broker's view of an order to the update path."""
    return apply_order_update(
        report.client_order_id,
        report.status,
        report.filled_qty,
        report.filled_avg_price,
        report.updated_at,
        source,
        report.broker_order_id,
        event_id,
        submitted_at=report.submitted_at,
        note=note,
    )


# plan_status_follow's two reads run for every slice that ends: compiled once.
_PLAN_LOCK_OPEN = CompiledQuery(
    lambda id: (
        SlicingPlan.objects.select_for_update()
        .filter(pk=id, status__in=[PlanStatus.ACTIVE, PlanStatus.PAUSED])
        .order_by()
        .values_list("qty")[:1]
    ),
    id=BigIntegerField(),
)
_OPEN_SLICE = CompiledQuery(
    lambda id: Order.objects.filter(plan_id=id, is_terminal=False).order_by().values_list("pk")[:1],
    id=BigIntegerField(),
)


def plan_status_follow(*, plan_id: int, now: datetime) -> str | None:
    """A TWAP plan's status follows its slices: once every slice is terminal, an active (or
    paused) plan becomes ``completed`` if any share was filled and ``failed`` if none was.
    A canceled plan stays canceled. Returns the new status, or None if nothing changed.

    Called from ``apply_order_update`` in the transaction that made a slice terminal. The plan
    row is locked first: two slices finishing at the same time in two transactions would
    otherwise each still see the other as open, and the plan would never end.
    """
    locked = _PLAN_LOCK_OPEN.first(id=plan_id)
    if locked is None:
        return None
    if _OPEN_SLICE.first(id=plan_id) is not None:  # the partial index order_plan_open
        return None
    plan_qty = locked[0]
    plan = SlicingPlan.objects.filter(pk=plan_id, status__in=[PlanStatus.ACTIVE, PlanStatus.PAUSED])
    slices = Order.objects.filter(plan_id=plan_id)
    totals = slices.aggregate(filled=Sum("filled_qty"), n=Count("id"))
    filled = totals["filled"] or 0
    status = PlanStatus.COMPLETED if filled else PlanStatus.FAILED
    reason = f"all {totals['n']} slices ended; {filled} of {plan_qty} shares filled"
    plan.update(status=status, status_reason=reason, ended_at=now, updated_at=now)
    log = logger.info if filled == plan_qty else logger.warning
    log("TWAP plan %s %s: %s", plan_id, status, reason)
    return status


def plan_status_reopen(*, plan_id: int, now: datetime, client_order_id: str) -> str | None:
    """A slice that ended locally was reopened by the broker: a plan that ``completed`` or
    ``failed`` because all its slices had ended is active again (it has a working order), and
    ``plan_status_follow`` ends it once more, with the right numbers, when that slice ends. A
    canceled plan stays canceled: it sends nothing more, and the slice is cancelable as an
    order. Called in the transaction of the update, after the slice's row was locked."""
    reason = f"reopened: slice {client_order_id} is live at the broker"
    reopened = SlicingPlan.objects.filter(
        pk=plan_id, status__in=[PlanStatus.COMPLETED, PlanStatus.FAILED]
    ).update(status=PlanStatus.ACTIVE, status_reason=reason, ended_at=None, updated_at=now)
    if not reopened:
        return None
    logger.warning("TWAP plan %s %s", plan_id, reason)
    return PlanStatus.ACTIVE


_POSITION_LOCK = CompiledQuery(
    lambda symbol: (
        Position.objects.select_for_update()
        .filter(symbol=symbol)
        .values_list("qty", "avg_entry_price")[:1]
    ),
    symbol=CharField(),
)
_POSITION_SET = CompiledUpdate(
    lambda symbol, qty, avg_entry_price, now: (
        Position.objects.filter(symbol=symbol),
        {"qty": qty, "avg_entry_price": avg_entry_price, "updated_at": now},
    ),
    symbol=CharField(),
    qty=IntegerField(),
    avg_entry_price=Position._meta.get_field("avg_entry_price"),
    now=DateTimeField(),
)


def _position_apply_fill(symbol: str, fill_qty: int, price: Decimal | None, now: datetime) -> None:
    """Lock the symbol's position row, move it by the fill (compiled statements: every fill)."""
    held = _POSITION_LOCK.first(symbol=symbol)
    if held is None:  # the symbol's first fill: create its row (a rival may race us)
        Position.objects.get_or_create(symbol=symbol)
        held = _POSITION_LOCK.first(symbol=symbol)
    qty, avg_price = position_after_fill(
        qty=held[0], avg_price=held[1], fill_qty=fill_qty, fill_price=price
    )
    _POSITION_SET.execute(symbol=symbol, qty=qty, avg_entry_price=avg_price, now=now)

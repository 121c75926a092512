"""The update path for many orders at once (reconciliation): set-based, the same rule.

``apply_order_updates`` leaves the same orders, OrderEvents, positions and metrics as
``apply_order_update`` called for each update in turn, in a constant number of queries per
1,000 updates instead of about seven per update:

1. lock the batch's rows (one ``SELECT … FOR UPDATE``, by id);
2. ``orders.status.decide`` (pure) says per row whether the update applies and why, exactly
   as the single path asks it;
3. ONE ``WITH v AS (VALUES …) UPDATE orders_order … FROM v`` whose WHERE and SET are
   ``orders.updates.cas_condition`` / ``cas_values`` built over the columns of ``v`` — the
   same builders the single path runs over literals, so the rule is written once; RETURNING
   the ids it moved, checked against ``decide`` as the single path checks its row count;
4. ONE insert of the OrderEvents; the fills moved into positions (the symbols' rows locked,
   the fills folded in batch order with ``position_after_fill``, one upsert).

Why this equals one-by-one: the updates of one set are for distinct orders, so none of them
reads a row another writes except the positions, which are folded in the same order with the
same arithmetic; a row's update depends only on that row and the offer, as in the single
path. Two kinds of update are not set-based and go through ``apply_order_update`` itself,
after the sets, in batch order: TWAP slices (their plan follows each slice in turn and reads
the other slices) and a repeated client_order_id (it must see the first one's result). So the
result is the single path's for the order ``sequential_order`` returns (tests check it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Expression, Field, Q
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from orders.models import Order, OrderEvent, Position
from orders.positions import fill_price_of_delta, position_after_fill, signed
from orders.status import RESEND, OrderState, Source, StatusUpdate, decide, is_terminal
from orders.status import OrderStatus as S
from orders.updates import (
    OFFER_FIELDS,
    STATE_FIELDS,
    Offer,
    UpdateResult,
    apply_order_update,
    cas_condition,
    cas_values,
    offer_row,
)
from tradeops import metrics
from tradeops.broker_types import OrderReport

logger = logging.getLogger(__name__)

CHUNK = 1000  # updates per transaction (and per UPDATE statement)
ROW_FIELDS = ("client_order_id", *STATE_FIELDS)


@dataclass(frozen=True)
class OrderUpdate:
    """One offered update: the arguments of ``apply_order_update`` except the source."""

    client_order_id: str
    status: str
    filled_qty: int
    filled_avg_price: Decimal | None
    broker_updated_at: datetime | None
    broker_order_id: str | None = None
    submitted_at: datetime | None = None
    note: str = ""

    @classmethod
    def of_report(cls, report: OrderReport, *, note: str = "") -> OrderUpdate:
        return cls(
            report.client_order_id,
            report.status,
            report.filled_qty,
            report.filled_avg_price,
            report.updated_at,
            report.broker_order_id,
            report.submitted_at,
            note,
        )


def apply_one(u: OrderUpdate, source: str) -> UpdateResult:
    """``u`` through the single path."""
    return apply_order_update(
        u.client_order_id,
        u.status,
        u.filled_qty,
        u.filled_avg_price,
        u.broker_updated_at,
        source,
        u.broker_order_id,
        submitted_at=u.submitted_at,
        note=u.note,
    )


def sequential_order(updates: Sequence[OrderUpdate], slices: set[str]) -> list[int]:
    """The indexes of ``updates`` in the order whose one-by-one application
    ``apply_order_updates`` equals: first occurrences of orders that are not TWAP slices, in
    batch order, then the rest (slices, repeats), in batch order."""
    seen: set[str] = set()
    first, rest = [], []
    for i, u in enumerate(updates):
        coid = u.client_order_id
        (rest if coid in seen or coid in slices else first).append(i)
        seen.add(coid)
    return first + rest


def apply_order_updates(updates: Sequence[OrderUpdate], *, source: str) -> list[UpdateResult]:
    """Offer every update in ``updates`` (module docstring). Results are in input order."""
    source = Source(source)
    results: list[UpdateResult | None] = [None] * len(updates)
    seen: set[str] = set()
    firsts, later = [], []
    for i, u in enumerate(updates):
        (later if u.client_order_id in seen else firsts).append(i)
        seen.add(u.client_order_id)
    for start in range(0, len(firsts), CHUNK):
        chunk = firsts[start : start + CHUNK]
        later += _apply_set([(i, updates[i]) for i in chunk], source, results)
    for i in sorted(later):
        results[i] = apply_one(updates[i], source)
    return [r for r in results if r is not None]


class _Column(Expression):
    """A column of the VALUES list ``v`` the set-based UPDATE joins."""

    def __init__(self, name: str, output_field: Field) -> None:
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return f"v.{connection.ops.quote_name(self.name)}", []


def _apply_set(
    items: list[tuple[int, OrderUpdate]], source: Source, results: list[UpdateResult | None]
) -> list[int]:
    """One transaction for distinct orders. Returns the indexes left to the single path
    (TWAP slices)."""
    now = timezone.now()
    deferred: list[int] = []
    with transaction.atomic():
        coids = [u.client_order_id for _, u in items]
        rows = {
            r["client_order_id"]: r
            for r in Order.objects.select_for_update()
            .filter(client_order_id__in=coids)
            .order_by("id")
            .values(*ROW_FIELDS)
        }
        todo = []  # (index, update, row, StatusUpdate, Decision, offer values)
        for i, u in items:
            row = rows.get(u.client_order_id)
            if row is None:
                metrics.ORDER_UPDATES.labels(source, "unknown_order").inc()
                results[i] = UpdateResult(False, "unknown_order")
                continue
            if row["plan_id"] is not None:
                deferred.append(i)
                continue
            update = StatusUpdate(
                str(u.status), int(u.filled_qty or 0), u.broker_updated_at, source
            )
            current = OrderState(
                row["status"], row["filled_qty"], row["broker_updated_at"], row["source_strength"]
            )
            decision = decide(current, update)
            offer = offer_row(
                update,
                filled_avg_price=u.filled_avg_price,
                broker_order_id=u.broker_order_id,
                submitted_at=u.submitted_at,
                note=u.note,
                now=now,
                resend=decision.reason == RESEND,
            )
            todo.append((i, u, row, update, decision, offer))
        moved = _update_rows([(row["id"], offer) for *_, row, _, _, offer in todo], now=now)
        events, fills, outcomes = [], [], []
        for i, u, row, update, decision, _ in todo:
            applied = row["id"] in moved
            reason = decision.reason
            if applied != decision.apply:  # rows are locked: a bug in one of the two
                logger.error("CAS disagrees with decide() for %s: %s", u.client_order_id, decision)
                reason = f"sql_{'applied' if applied else 'skipped'}"
            delta = max(update.filled_qty - row["filled_qty"], 0) if applied else 0
            if delta:
                price = fill_price_of_delta(
                    old_qty=row["filled_qty"],
                    old_avg=row["filled_avg_price"],
                    new_qty=update.filled_qty,
                    new_avg=u.filled_avg_price,
                )
                fills.append((row["symbol"], signed(row["side"], delta), price))
            events.append(_event(row, update, u, applied=applied, reason=reason, now=now))
            results[i] = UpdateResult(applied, reason, row["id"], delta)
            outcomes.append((u, row, update, applied, reason))
        OrderEvent.objects.bulk_create(events)
        _positions_apply_fills(fills, now)
    _observe(outcomes, source)
    return deferred


def _update_rows(offers: list[tuple[int, dict[str, Any]]], *, now: datetime) -> set[int]:
    """The conditional UPDATE over a VALUES list: WHERE and SET are the single path's
    ``cas_condition`` / ``cas_values``, over ``v``'s columns. Returns the ids it moved."""
    if not offers:
        return set()
    pk = Order._meta.pk
    names = list(OFFER_FIELDS)
    columns = Offer(**{n: _Column(n, OFFER_FIELDS[n]) for n in names})
    query = UpdateQuery(Order)
    query.add_update_values(cas_values(columns, now=now))
    query.add_q(Q(pk=_Column("id", pk)) & cas_condition(columns))
    sql, params = query.get_compiler(connection=connection).as_sql()
    head, where = sql.split(" WHERE ", 1)  # no WHERE in the SET (CASE WHEN … only)
    casts = [
        pk.cast_db_type(connection),
        *(OFFER_FIELDS[n].cast_db_type(connection) for n in names),
    ]
    row_sql = "(" + ", ".join(f"%s::{t}" for t in casts) + ")"
    values_params = [p for oid, offer in offers for p in (oid, *(offer[n] for n in names))]
    quote = connection.ops.quote_name
    table = quote(Order._meta.db_table)
    statement = (
        f"WITH v ({', '.join(quote(n) for n in ['id', *names])}) AS "
        f"(VALUES {', '.join([row_sql] * len(offers))}) "
        f"{head} FROM v WHERE {where} RETURNING {table}.{quote(pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*values_params, *params])
        return {oid for (oid,) in cursor.fetchall()}


def _event(
    row: dict[str, Any],
    update: StatusUpdate,
    u: OrderUpdate,
    *,
    applied: bool,
    reason: str,
    now: datetime,
) -> OrderEvent:
    return OrderEvent(
        order_id=row["id"],
        created_at=now,
        source=update.source,
        status=update.status,
        filled_qty=update.filled_qty,
        filled_avg_price=u.filled_avg_price,
        broker_updated_at=u.broker_updated_at,
        event_id="",
        applied=applied,
        reason=reason,
        status_before=row["status"],
        filled_qty_before=row["filled_qty"],
        note=u.note[:2000],
    )


def _positions_apply_fills(fills: Iterable[tuple[str, int, Decimal | None]], now: datetime) -> None:
    """``orders.updates._position_apply_fill`` for many fills: the same arithmetic in the same
    order, one locked read and one upsert."""
    fills = list(fills)
    if not fills:
        return
    symbols = sorted({s for s, _, _ in fills})
    held = {
        p.symbol: Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
        for p in Position.objects.select_for_update().filter(symbol__in=symbols).order_by("symbol")
    }
    for symbol, qty, price in fills:
        position = held.setdefault(symbol, Position(symbol=symbol))
        position.qty, position.avg_entry_price = position_after_fill(
            qty=position.qty, avg_price=position.avg_entry_price, fill_qty=qty, fill_price=price
        )
        position.updated_at = now
    Position.objects.bulk_create(
        list(held.values()),
        update_conflicts=True,
        unique_fields=["symbol"],
        update_fields=["qty", "avg_entry_price", "updated_at"],
    )


def _observe(
    outcomes: list[tuple[OrderUpdate, dict, StatusUpdate, bool, str]], source: str
) -> None:
    """The single path's metrics and reopen warnings, counted once per batch."""
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for u, row, update, applied, reason in outcomes:
        counts["applied" if applied else "skipped"] += 1
        if not applied:
            skipped[reason] += 1
        if applied and is_terminal(row["status"]) and row["status"] != S.FILLED:
            metrics.ORDERS_REOPENED.labels(source).inc()
            logger.warning(
                "order %s: the broker reports it %s (%s filled); our local %s is overruled "
                "and the order reopened",
                u.client_order_id,
                update.status,
                update.filled_qty,
                row["status"],
            )
    for outcome, n in counts.items():
        metrics.ORDER_UPDATES.labels(source, outcome).inc(n)
    for reason, n in skipped.items():
        metrics.ORDER_UPDATES_SKIPPED.labels(reason).inc(n)

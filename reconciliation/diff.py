"""What reconciliation must change, computed from plain values. Pure: no ORM, no clock, no
network (``now`` and every input are parameters), so every rule is tested table-driven.

The engine (``reconciliation.engine``) gathers the inputs in a constant number of queries and
broker calls, asks this module what differs, and applies the answer through the one update path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orders.status import UNCONFIRMED_STATUSES, OrderStatus, is_terminal
from tradeops.broker_types import OrderReport

S = OrderStatus
# Orders that may never have reached the broker: the ones a probe "not found" can fail.
UNCONFIRMED = UNCONFIRMED_STATUSES
NOT_READ = datetime.min.replace(tzinfo=UTC)  # sorts an order whose timing was not read first


@dataclass(frozen=True)
class DbOrder:
    """What the diff needs of a database order. The timing (``created_at``,
    ``send_claimed_at``) only matters for non-terminal orders (probes, the grace period), so the
    engine reads it only for those: None on a terminal one (parsing 20,000 timestamps was a
    third of a 10,000-order run's database time)."""

    client_order_id: str
    broker_order_id: str | None
    status: str
    filled_qty: int
    origin: str
    created_at: datetime | None = None
    send_claimed_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

    @property
    def is_unsent_slice(self) -> bool:
        """A TWAP slice waiting for its time that no dispatcher (or recovery) has claimed: it
        has never been sent, so the broker has nothing to say about it."""
        return self.origin == "twap" and self.status == S.PENDING_NEW and not self.send_claimed_at

    @property
    def sent_at(self) -> datetime | None:
        """When it was (or may have been) sent: the claim, else the insert (None: not read)."""
        return self.send_claimed_at or self.created_at


@dataclass
class OrdersDiff:
    updates: list[OrderReport] = field(default_factory=list)
    fills_corrected: list[str] = field(default_factory=list)
    unconfirmed_found: list[str] = field(default_factory=list)
    mark_failed: list[str] = field(default_factory=list)
    new_orphans: list[OrderReport] = field(default_factory=list)
    known_orphans: list[OrderReport] = field(default_factory=list)
    id_conflicts: list[tuple[str, str, str]] = field(default_factory=list)
    checked: int = 0


def _differs(db: DbOrder, broker: OrderReport) -> bool:
    return (
        db.status != broker.status
        or db.filled_qty != broker.filled_qty
        or db.broker_order_id != broker.broker_order_id
    )


def may_fail_unfound(db: DbOrder, *, now: datetime, grace: timedelta) -> bool:
    """May an order the broker says it does not know be marked ``failed``?

    Only orders that may never have arrived (pending/unconfirmed), and only once the grace
    period since they were (maybe) sent is over: an answer lost in flight can still show up.
    An unsent TWAP slice is not missing, it is waiting; a claimed slice is TWAP recovery's to
    resend under the same id (the id makes that safe), not reconciliation's to fail.
    """
    if db.status not in UNCONFIRMED:
        return False
    if db.origin == "twap" and db.status == S.PENDING_NEW:
        return False
    sent = db.sent_at
    return sent is not None and now - sent >= grace


def diff_orders(
    *,
    db_orders: dict[str, DbOrder],
    broker_orders: dict[str, OrderReport],
    probed_missing: set[str],
    known_orphan_ids: set[str],
    now: datetime,
    grace: timedelta,
) -> OrdersDiff:
    """Compare the broker's orders (listed + probed) with the database's.

    ``db_orders`` holds every database order whose client_order_id the broker reported, plus
    every non-terminal one. ``probed_missing`` are client_order_ids the broker answered 404 for.
    """
    out = OrdersDiff(checked=len(broker_orders) + len(probed_missing))
    for coid, broker in broker_orders.items():
        db = db_orders.get(coid)
        if db is None:
            bucket = (
                out.known_orphans
                if broker.broker_order_id in known_orphan_ids
                else (out.new_orphans)
            )
            bucket.append(broker)
            continue
        if db.broker_order_id and db.broker_order_id != broker.broker_order_id:
            # Same client id, different broker order: never merge two orders silently.
            out.id_conflicts.append((coid, db.broker_order_id, broker.broker_order_id))
            continue
        if not _differs(db, broker):
            continue
        out.updates.append(broker)
        if broker.filled_qty > db.filled_qty:
            out.fills_corrected.append(coid)
        if db.status in UNCONFIRMED:
            out.unconfirmed_found.append(coid)
    for coid in sorted(probed_missing):
        db = db_orders.get(coid)
        if db is not None and may_fail_unfound(db, now=now, grace=grace):
            out.mark_failed.append(coid)
    return out


@dataclass(frozen=True)
class PositionMismatchSpec:
    symbol: str
    db_qty: int
    broker_qty: int


def diff_positions(
    *, db_positions: dict[str, int], broker_positions: dict[str, int]
) -> list[PositionMismatchSpec]:
    """Symbols whose net quantity differs (a flat side is simply absent)."""
    symbols = sorted(set(db_positions) | set(broker_positions))
    return [
        PositionMismatchSpec(s, db_positions.get(s, 0), broker_positions.get(s, 0))
        for s in symbols
        if db_positions.get(s, 0) != broker_positions.get(s, 0)
    ]


def stale_order_probes(open_db: list[DbOrder], *, listed: set[str], limit: int) -> list[str]:
    """Non-terminal database orders the listings did not show, oldest first, at most
    ``limit`` (the per-run budget of single-order lookups).

    Unsent, unclaimed TWAP slices are left out: a plan's future slices are the oldest open
    orders while it runs, and would otherwise use up the whole budget on every run. A claimed
    one may have been sent, so it is still probed (TWAP recovery resends it by the same id)."""
    stale = [o for o in open_db if o.client_order_id not in listed and not o.is_unsent_slice]
    stale.sort(key=lambda o: o.created_at or NOT_READ)
    return [o.client_order_id for o in stale[:limit]]


def listing_window_start(
    *, high_water_mark: datetime | None, now: datetime, overlap: timedelta, lookback: timedelta
) -> datetime:
    """Where the ``status=all`` listing starts: the high-water mark minus the overlap (orders
    submitted around the previous run's edge are read twice, never zero times)."""
    base = high_water_mark if high_water_mark is not None else now - lookback
    return base - overlap

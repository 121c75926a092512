"""Order statuses, their ranks, and the compare-and-swap rule for status updates.

Pure: no ORM, no clock. ``decide`` is the reference statement of the rule; the conditional
UPDATE in ``orders.updates.apply_order_update`` is the same rule written as SQL, and the tests
check the two against each other.

Rank table (DESIGN §3). Odd edges, commented where they bite:
- ``filled`` outranks the other terminal states: a fill that races a cancel wins (the shares were
  bought; a late "canceled" must not hide them).
- ``partially_filled`` is rank 3 like ``pending_cancel``: a cancel request on a partially filled
  order does not erase the fill because ``filled_qty`` never goes down on its own.
- Unknown statuses rank 0, so they can never overwrite anything known on a timestamp tie.
- A terminal status we decided ourselves (no broker timestamp: a ``failed`` grace expiry, a
  local cancel or ``blocked_*`` of an order never sent, a submit's ``rejected``) is a guess
  about the broker, not its word: the broker's first report on the order (anything carrying
  its timestamp) overrules it and the order is reopened (``reopened_by_broker``). Otherwise an
  order the broker holds live, and later fills, would be invisible to every risk check.
  ``filled`` is never a local guess (only the broker reports fills) and is not reopened.
- The one way back to ``pending_new``: the client asks again for an order that ended
  ``failed`` locally, i.e. never reached the broker as far as anyone knows (``resend``). It is
  re-sent under the same client_order_id, so if it did reach the broker after all, the
  broker's 422 "must be unique" turns the re-send into a lookup.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

logger = logging.getLogger(__name__)


class OrderStatus(enum.StrEnum):
    PENDING_NEW = "pending_new"
    DRY_RUN = "dry_run"
    NEW = "new"
    SUBMITTED = "submitted"
    SUBMITTED_UNCONFIRMED = "submitted_unconfirmed"
    ACCEPTED = "accepted"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    CALCULATED = "calculated"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    PARTIALLY_FILLED = "partially_filled"
    HELD = "held"
    CANCELED = "canceled"
    EXPIRED = "expired"
    FAILED = "failed"
    REJECTED = "rejected"
    REPLACED = "replaced"
    DONE_FOR_DAY = "done_for_day"
    BLOCKED_KILL_SWITCH = "blocked_kill_switch"
    BLOCKED_CIRCUIT_BREAKER = "blocked_circuit_breaker"
    FILLED = "filled"


S = OrderStatus

STATUS_RANK: dict[str, int] = {
    **dict.fromkeys([S.PENDING_NEW, S.DRY_RUN], 1),
    **dict.fromkeys(
        [S.NEW, S.SUBMITTED, S.SUBMITTED_UNCONFIRMED, S.ACCEPTED, S.ACCEPTED_FOR_BIDDING], 2
    ),
    **dict.fromkeys(
        [
            S.PENDING_CANCEL,
            S.PENDING_REPLACE,
            S.CALCULATED,
            S.STOPPED,
            S.SUSPENDED,
            S.PARTIALLY_FILLED,
            S.HELD,
        ],
        3,
    ),
    **dict.fromkeys(
        [
            S.CANCELED,
            S.EXPIRED,
            S.FAILED,
            S.REJECTED,
            S.REPLACED,
            S.DONE_FOR_DAY,
            S.BLOCKED_KILL_SWITCH,
            S.BLOCKED_CIRCUIT_BREAKER,
        ],
        4,
    ),
    S.FILLED: 5,
}

TERMINAL_STATUSES: frozenset[str] = frozenset(s for s, r in STATUS_RANK.items() if r >= 4)
OPEN_STATUSES: frozenset[str] = frozenset(s for s, r in STATUS_RANK.items() if r < 4)
# Orders whose arrival at the broker is not confirmed: being sent, or sent without a definitive
# answer. Reconciliation asks the broker about them and fails the ones it does not know once
# RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS are over; /metrics reports how old the
# oldest is (an order in doubt for long means reconciliation cannot settle it).
UNCONFIRMED_STATUSES: frozenset[str] = frozenset(
    {S.PENDING_NEW, S.SUBMITTED, S.SUBMITTED_UNCONFIRMED}
)
# Alpaca's trade_updates event names that differ from the order status they imply.
EVENT_STATUS: dict[str, str] = {"partial_fill": S.PARTIALLY_FILLED, "fill": S.FILLED}


class Source(enum.StrEnum):
    """Who reports an update. On a timestamp tie the stronger source wins."""

    STREAM = "stream"
    SUBMIT = "submit"
    RECONCILIATION = "reconciliation"
    MANUAL = "manual"


SOURCE_STRENGTH: dict[str, int] = {
    Source.STREAM: 1,
    # The submit response is a synchronous REST read of the broker, as good as reconciliation's.
    Source.SUBMIT: 2,
    Source.RECONCILIATION: 2,
    Source.MANUAL: 3,
}


def status_rank(status: str) -> int:
    rank = STATUS_RANK.get(status)
    if rank is None:
        logger.warning("unknown order status %r ranks 0", status)
        return 0
    return rank


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def status_from_event(event: str) -> str:
    """Map an Alpaca trade_updates event name to the order status it implies."""
    return EVENT_STATUS.get(event, event)


@dataclass(frozen=True)
class StoredStatus:
    """The columns an order row keeps about its status, which the compare-and-swap reads:
    derived here and nowhere else (the update path and an adopted order's first row both
    call ``stored_status``)."""

    status: str
    status_rank: int
    is_terminal: bool
    source_strength: int


def stored_status(status: str, source: str) -> StoredStatus:
    return StoredStatus(status, status_rank(status), is_terminal(status), SOURCE_STRENGTH[source])


@dataclass(frozen=True)
class OrderState:
    """What the database holds for an order, as far as the update rule cares."""

    status: str
    filled_qty: int
    broker_updated_at: datetime | None
    source_strength: int


@dataclass(frozen=True)
class StatusUpdate:
    """One report about an order. ``broker_updated_at`` is None for local decisions (a submit
    that timed out, a definitive rejection, a grace period that expired): those never carry a
    broker timestamp, so they cannot outvote anything the broker has said."""

    status: str
    filled_qty: int
    broker_updated_at: datetime | None
    source: str

    @property
    def rank(self) -> int:
        return status_rank(self.status)

    @property
    def strength(self) -> int:
        return SOURCE_STRENGTH[self.source]


@dataclass(frozen=True)
class Decision:
    apply: bool
    reason: str


REOPENED = "reopened_by_broker"
RESEND = "resend"


def is_local_ending(status: str, broker_updated_at: datetime | None) -> bool:
    """A terminal status no broker report backs (see the module docstring)."""
    return broker_updated_at is None and is_terminal(status) and status != S.FILLED


def may_resend(status: str, broker_updated_at: datetime | None) -> bool:
    """An order that ended ``failed`` without the broker ever reporting it: it never reached
    the broker as far as anyone knows, so the same request may send it again (same id)."""
    return status == S.FAILED and broker_updated_at is None


def is_resend(update: StatusUpdate) -> bool:
    """The update a re-send offers: back to ``pending_new``, decided locally, nothing filled."""
    return (
        update.status == S.PENDING_NEW
        and update.broker_updated_at is None
        and update.filled_qty == 0
    )


def _larger_fill_on_filled(current: OrderState, update: StatusUpdate) -> bool:
    """The one way out of the terminal lock: a ``filled`` report with more shares for an order
    we hold as ``filled``. (The fix plan's SQL let *any* status with a larger fill through,
    which could move a filled order back to e.g. ``partially_filled``.)"""
    return (
        current.status == S.FILLED
        and update.status == S.FILLED
        and update.filled_qty > current.filled_qty
    )


def decide(current: OrderState, update: StatusUpdate) -> Decision:
    """Should ``update`` overwrite ``current``? The rule of DESIGN §3, in order:

    0. an exact repeat of what we hold, from no stronger source (or of a terminal state, from
       any source), is a duplicate;
    1. a status we ended locally (no broker timestamp) yields to any broker report
       (``reopened_by_broker``), and a local ``failed`` to a re-send (``resend``);
    2. terminal lock: a terminal order stays as it is, except ``filled`` learning a larger fill
       from another ``filled`` report;
    3. a local decision (no broker timestamp) applies only while the broker has said nothing
       about the order, and only if it moves the order forward;
    4. a newer broker timestamp wins, an older one loses;
    5. on equal timestamps: higher rank, then larger fill, then stronger source.
    """
    cur_rank = status_rank(current.status)
    if (update.status, update.filled_qty, update.broker_updated_at) == (
        current.status,
        current.filled_qty,
        current.broker_updated_at,
    ) and update.strength <= current.source_strength:
        return Decision(False, "duplicate")
    local_ending = is_local_ending(current.status, current.broker_updated_at)
    if local_ending and update.broker_updated_at is not None:
        return Decision(True, REOPENED)
    if may_resend(current.status, current.broker_updated_at) and is_resend(update):
        return Decision(True, RESEND)
    if is_terminal(current.status) and not _larger_fill_on_filled(current, update):
        # The same terminal state from a stronger source (reconciliation confirming what the
        # stream applied first) changes nothing and disagrees with nothing: not a conflict.
        same = (update.status, update.filled_qty, update.broker_updated_at) == (
            current.status,
            current.filled_qty,
            current.broker_updated_at,
        )
        return Decision(False, "duplicate" if same else "terminal_locked")
    if update.broker_updated_at is None:
        if current.broker_updated_at is not None:
            return Decision(False, "broker_already_reported")
        if update.rank > cur_rank or (
            update.rank == cur_rank and update.filled_qty > current.filled_qty
        ):
            return Decision(True, "advanced")
        return Decision(False, "not_newer")
    if current.broker_updated_at is None:
        return Decision(True, "first_broker_report")
    if update.broker_updated_at > current.broker_updated_at:
        return Decision(True, "newer_timestamp")
    if update.broker_updated_at < current.broker_updated_at:
        return Decision(False, "older_timestamp")
    if update.rank != cur_rank:
        return Decision(
            update.rank > cur_rank, "higher_rank" if update.rank > cur_rank else "lower_rank"
        )
    if update.filled_qty != current.filled_qty:
        larger = update.filled_qty > current.filled_qty
        return Decision(larger, "larger_fill" if larger else "smaller_fill")
    if update.strength > current.source_strength:
        return Decision(True, "stronger_source")
    return Decision(False, "duplicate")


def apply_to_state(current: OrderState, update: StatusUpdate) -> OrderState:
    """The state after ``update`` (used by tests as the model of the SQL update)."""
    if not decide(current, update).apply:
        return current
    return OrderState(
        status=update.status,
        filled_qty=max(current.filled_qty, update.filled_qty),
        broker_updated_at=update.broker_updated_at or current.broker_updated_at,
        source_strength=update.strength,
    )

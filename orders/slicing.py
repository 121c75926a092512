"""The TWAP slicer and the misfire rule: pure (no ORM, no clock, no network; ``now`` is passed in).

``plan_slices`` turns a plan request into slices once, at plan time; the slices are then stored
and never re-derived, so a later change of inputs (a new ADV figure, a changed setting) cannot
change a slice's size or its client_order_id. ``slice_timing`` is the one misfire rule: the
dispatcher applies it to every due slice and recovery to every pending slice after a restart.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

PRICES_BY_TYPE: dict[str, frozenset[str]] = {
    "market": frozenset(),
    "limit": frozenset({"limit_price"}),
    "stop": frozenset({"stop_price"}),
    "stop_limit": frozenset({"limit_price", "stop_price"}),
}


class SlicingError(ValueError):
    """A plan request that cannot be sliced; ``field`` names the input to blame (API 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SliceSpec:
    slice_num: int  # 0-based: slice i is due at start + i * interval
    qty: int
    scheduled_time: datetime


@dataclass(frozen=True)
class SlicePlan:
    slices: list[SliceSpec]
    interval_seconds: int  # effective: shorter than requested when a size cap added slices

    @property
    def largest_slice(self) -> int:
        return max(s.qty for s in self.slices)


def slice_count(duration_minutes: int, interval_seconds: int) -> int:
    """n = ceil(duration / interval), at least 1."""
    return max(1, math.ceil(duration_minutes * 60 / interval_seconds))


def split_qty(qty: int, n: int) -> list[int]:
    """``qty`` over ``n`` slices as evenly as whole shares allow; the remainder goes one share
    each to the first slices, so the order of sizes is deterministic (largest first)."""
    base, remainder = divmod(qty, n)
    return [base + 1 if i < remainder else base for i in range(n)]


def _check_prices(order_type: str, limit_price: Decimal | None, stop_price: Decimal | None) -> None:
    needs = PRICES_BY_TYPE.get(order_type)
    if needs is None:
        raise SlicingError("type", f"Unknown order type {order_type!r}.")
    for name, value in (("limit_price", limit_price), ("stop_price", stop_price)):
        if name in needs and value is None:
            raise SlicingError(name, f"Required for {order_type} orders.")
        if name not in needs and value is not None:
            raise SlicingError(name, f"Not allowed for {order_type} orders.")


def plan_slices(
    qty: int,
    duration_minutes: int,
    interval_seconds: int,
    start: datetime,
    max_slice_qty: int | None = None,
    *,
    order_type: str = "market",
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    max_slices: int | None = None,
) -> SlicePlan:
    """Slice ``qty`` shares over ``duration_minutes``, one slice every ``interval_seconds``.

    Rules (issue 5): n = ceil(duration/interval), at least 1; fewer shares than slices is an
    error (a zero-share slice is not an order); with ``max_slice_qty`` a slice that would be
    larger makes MORE, smaller slices inside the SAME duration: n = ceil(qty / max_slice_qty)
    and the interval shrinks to floor(duration / n) whole seconds (below 1 s is an error);
    slice i is due at start + i * interval, so every slice is due before start + duration.
    """
    if start.tzinfo is None:
        raise SlicingError("start", "start must be timezone-aware.")
    if qty < 1:
        raise SlicingError("qty", "Must be at least 1.")
    if duration_minutes < 1:
        raise SlicingError("duration_minutes", "Must be at least 1.")
    if interval_seconds < 1:
        raise SlicingError("interval_seconds", "Must be at least 1.")
    if max_slice_qty is not None and max_slice_qty < 1:
        raise SlicingError("max_slice_qty", "Must be at least 1.")
    _check_prices(order_type, limit_price, stop_price)
    n = slice_count(duration_minutes, interval_seconds)
    if qty < n:
        raise SlicingError(
            "qty",
            f"{qty} shares cannot make {n} slices of at least one share; "
            "lengthen the interval or shorten the duration.",
        )
    interval = interval_seconds
    if max_slice_qty is not None and math.ceil(qty / n) > max_slice_qty:
        n = math.ceil(qty / max_slice_qty)
        interval = (duration_minutes * 60) // n
        if interval < 1:
            raise SlicingError(
                "duration_minutes",
                f"The liquidity cap of {max_slice_qty} shares per slice needs {n} slices, "
                f"more than one per second over {duration_minutes} min; lengthen the duration "
                "or reduce the quantity.",
            )
    if max_slices is not None and n > max_slices:
        raise SlicingError(
            "interval_seconds",
            f"The plan would have {n} slices; at most {max_slices} are allowed.",
        )
    step = timedelta(seconds=interval)
    slices = [
        SliceSpec(slice_num=i, qty=q, scheduled_time=start + i * step)
        for i, q in enumerate(split_qty(qty, n))
    ]
    return SlicePlan(slices=slices, interval_seconds=interval)


# --- the misfire rule ------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketClock:
    """What the broker's clock said (``None`` instead of a clock means: unknown)."""

    is_open: bool
    next_open: datetime


class Timing(enum.StrEnum):
    WAIT = "wait"  # not due yet
    SEND = "send"  # due and the market is open: send now
    RESCHEDULE = "reschedule"  # due while the market is closed: move to the next open
    HOLD = "hold"  # due but the clock is unknown: treated as closed, looked at again later


@dataclass(frozen=True)
class TimingDecision:
    timing: Timing
    reason: str
    late_seconds: float = 0.0
    misfired: bool = False  # later than the grace period (sent anyway, with a warning)
    run_at: datetime | None = None  # RESCHEDULE: the new time of this slice


def rescheduled_time(
    *, slice_num: int, first_pending_num: int, next_open: datetime, interval_seconds: int
) -> datetime:
    """Where a pending slice goes when the market is closed: the plan's first pending slice to
    the open, the others after it at the plan's interval, so they do not all fire at the open
    together. Depends only on plan facts, so every process computes the same times."""
    steps = max(slice_num - first_pending_num, 0)
    return next_open + timedelta(seconds=steps * interval_seconds)


def slice_timing(
    *,
    scheduled_time: datetime,
    now: datetime,
    grace_seconds: int,
    clock: MarketClock | None,
    slice_num: int = 0,
    first_pending_num: int = 0,
    interval_seconds: int = 0,
) -> TimingDecision:
    """The misfire policy (issue 5, DESIGN §5), shared by the dispatcher and recovery.

    Due and the market open: send now, with a warning beyond ``grace_seconds``. Due and the
    market closed: move to the next open. Due and the clock unknown: treat as closed, but with
    no next open to move to, hold and look again later. Moving keeps the plan's spacing: the
    first pending slice goes to the open and slice k to open + (k - first) * interval, so the
    remaining slices do not all fire at the open together, and every dispatcher that applies
    the rule to the same plan arrives at the same times (``rescheduled_time``).
    """
    late = (now - scheduled_time).total_seconds()
    if late < 0:
        return TimingDecision(Timing.WAIT, "not due yet", late)
    misfired = late > grace_seconds
    if clock is None:
        return TimingDecision(Timing.HOLD, "broker clock unknown: treated as closed", late)
    if clock.is_open:
        reason = "late beyond the grace period, market open" if misfired else "due"
        return TimingDecision(Timing.SEND, reason, late, misfired)
    if clock.next_open <= now:
        return TimingDecision(Timing.HOLD, "market closed and next open already past", late)
    run_at = rescheduled_time(
        slice_num=slice_num,
        first_pending_num=first_pending_num,
        next_open=clock.next_open,
        interval_seconds=interval_seconds,
    )
    reason = "market closed: moved to the next open"
    return TimingDecision(Timing.RESCHEDULE, reason, late, misfired, run_at=run_at)

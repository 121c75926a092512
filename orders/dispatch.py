"""The slice dispatcher: claim due TWAP slices, check them right before sending, send them
through the same path as single orders.

django-q2's scheduler looks at schedules only every ~30 s, so slices are timed by a dedicated
loop (``manage.py run_slices``, the pattern of Zulip's ``deliver_scheduled_messages``):

1. claim: in one short transaction, ``SELECT … FOR UPDATE SKIP LOCKED`` the due, unclaimed
   ``pending_new`` slices and stamp ``send_claimed_at`` (the claim's token). Several dispatchers
   claim disjoint rows on PostgreSQL; on SQLite (the demo) the IMMEDIATE transaction serialises
   claimers instead.
2. per slice, outside any transaction: re-read it (is the claim still ours?), run the
   ``SLICE_PRESEND_CHECKS``, apply the misfire rule (``orders.slicing.slice_timing``) with the
   broker clock, then ``order_send_claimed`` — the single-order submit path (write-ahead row
   already there, broker submit, ``apply_order_update``; a 422 duplicate id becomes a lookup).

A crash anywhere leaves a claimed ``pending_new`` row; recovery (after reconciliation) looks it
up at the broker by its client_order_id and only then hands it back. Nothing lives only in
memory except a short back-off for plans whose slices were deferred.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import BigIntegerField, DateTimeField, Min, Subquery
from django.utils import timezone
from django.utils.module_loading import import_string

from marketdata.quotes import quote_latest
from orders.limits import effective_limits
from orders.models import (
    DispatcherRun,
    Order,
    OrderType,
    PlanStatus,
    SlicingPlan,
    TradingSwitch,
)
from orders.plans import plan_reschedule_pending, slice_unclaim
from orders.risk import Rejection
from orders.services import order_end_locally, order_send_claimed
from orders.slicing import MarketClock, Timing, slice_timing
from orders.status import OrderStatus
from tradeops import metrics
from tradeops.broker import BrokerError, get_broker
from tradeops.compiled import CompiledQuery
from tradeops.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

S = OrderStatus

# What a pre-send rejection does to the slice; any other code leaves it pending (deferred).
REJECTION_STATUS: dict[str, str] = {
    "kill_switch": S.BLOCKED_KILL_SWITCH,
    "circuit_breaker": S.BLOCKED_CIRCUIT_BREAKER,
    "plan_inactive": S.CANCELED,
    # The asset was halted, delisted or made hard to borrow after the plan was made: ended
    # with the reason rather than sent late (orders.assets).
    "unknown_symbol": S.CANCELED,
    "not_shortable": S.CANCELED,
}
# Outcomes that say nothing may go out right now (gate closed, broker clock unknown): the
# dispatcher stops claiming for TWAP_DISPATCH_RETRY_SECONDS instead of cycling every plan.
GLOBAL_HOLD_OUTCOMES = frozenset({"held", "deferred_gated"})
# Plans whose due slices may be claimed: paused plans keep their slices untouched.
CLAIMABLE_PLAN_STATUSES = [s for s in PlanStatus.values if s != PlanStatus.PAUSED]


# --- pre-send checks (SLICE_PRESEND_CHECKS) ------------------------------------------------
@dataclass
class SliceCheckContext:
    now: datetime
    extras: dict[str, Any] = field(default_factory=dict)


SliceCheck = Callable[[Order, SlicingPlan, SliceCheckContext], Rejection | None]


def slice_check_plan_active(
    order: Order, plan: SlicingPlan, ctx: SliceCheckContext
) -> Rejection | None:
    if plan.status == PlanStatus.ACTIVE:
        return None
    if plan.status == PlanStatus.PAUSED:
        return Rejection("plan_paused", f"TWAP plan {plan.pk} is paused.", unavailable=True)
    return Rejection("plan_inactive", f"TWAP plan {plan.pk} is {plan.status}.")


def _switch_engaged(ctx: SliceCheckContext, name: str) -> bool:
    """Both switches in one query per slice (the dispatcher reads them with the slice's fresh
    state); a missing row counts as engaged (fail closed)."""
    if "switches" not in ctx.extras:
        ctx.extras["switches"] = dict(TradingSwitch.objects.values_list("name", "engaged"))
    return ctx.extras["switches"].get(name, True)


def slice_check_kill_switch(
    order: Order, plan: SlicingPlan, ctx: SliceCheckContext
) -> Rejection | None:
    if _switch_engaged(ctx, TradingSwitch.Name.KILL_SWITCH):
        return Rejection("kill_switch", "The kill switch is engaged.", unavailable=True)
    return None


def slice_check_circuit_breaker(
    order: Order, plan: SlicingPlan, ctx: SliceCheckContext
) -> Rejection | None:
    if _switch_engaged(ctx, TradingSwitch.Name.CIRCUIT_BREAKER):
        return Rejection("circuit_breaker", "The circuit breaker is tripped.", unavailable=True)
    return None


def slice_check_quote(order: Order, plan: SlicingPlan, ctx: SliceCheckContext) -> Rejection | None:
    """A market slice is priced right before it goes out, like a single market order: no
    fresh quote (QUOTE_MAX_AGE_SECONDS) -> deferred (``quote_stale`` / ``quote_unavailable``);
    and its notional at that price must still fit max_order_notional (the plan was judged at
    the price of its creation; a deferred slice is retried, the operator sees it overdue).
    Limit and stop slices were judged on their own price when the plan was made."""
    if order.order_type != OrderType.MARKET:
        return None
    try:
        quote = quote_latest(order.symbol)
    except ServiceUnavailable as exc:
        return Rejection(
            exc.code, exc.message, exc.details, unavailable=True, retry_after=exc.retry_after
        )
    ctx.extras["quote"] = quote
    limit = effective_limits(order.symbol).max_order_notional
    notional = (quote.mid * order.qty).quantize(settings.NOTIONAL_PLACES)
    if notional > limit:
        return Rejection(
            "risk_limit",
            f"slice notional {notional} at the current mid {quote.mid} exceeds the max order "
            f"notional {limit} for {order.symbol}.",
            {"limit": "max_order_notional", "value": str(limit), "notional": str(notional)},
        )
    return None


@functools.lru_cache(maxsize=4)
def _presend_checks(paths: tuple[str, ...]) -> list[SliceCheck]:
    return [import_string(path) for path in paths]


def slice_presend_rejection(
    order: Order, plan: SlicingPlan, ctx: SliceCheckContext
) -> Rejection | None:
    """The first rejection of ``SLICE_PRESEND_CHECKS``, in order, or None."""
    for check in _presend_checks(tuple(settings.SLICE_PRESEND_CHECKS)):
        rejection = check(order, plan, ctx)
        if rejection is not None:
            return rejection
    return None


# --- claims and the broker clock -----------------------------------------------------------
def slices_claim_due(
    *, now: datetime, limit: int, exclude_plan_ids: set[int] | frozenset[int] = frozenset()
) -> list[Order]:
    """Claim up to ``limit`` due, unclaimed slices (earliest first); ``now`` is the token."""
    with transaction.atomic():
        due = (
            Order.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("plan")
            .slices_unclaimed()
            .filter(scheduled_time__lte=now, plan__status__in=CLAIMABLE_PLAN_STATUSES)
        )
        if exclude_plan_ids:
            due = due.exclude(plan_id__in=exclude_plan_ids)
        claimed = list(due.order_by("scheduled_time", "id")[:limit])
        if claimed:
            Order.objects.filter(pk__in=[o.pk for o in claimed]).update(send_claimed_at=now)
    for order in claimed:
        order.send_claimed_at = now
    return claimed


def slices_next_due(
    *, exclude_plan_ids: set[int] | frozenset[int] = frozenset()
) -> datetime | None:
    """When the earliest slice a dispatcher may claim is due (to sleep exactly that long);
    paused plans' slices do not count, or their overdue times would make the loop spin."""
    pending = Order.objects.slices_unclaimed().filter(plan__status__in=CLAIMABLE_PLAN_STATUSES)
    if exclude_plan_ids:
        pending = pending.exclude(plan_id__in=exclude_plan_ids)
    return pending.aggregate(due=Min("scheduled_time"))["due"]


def market_clock_get() -> MarketClock | None:
    """The broker's clock, or None when it cannot be asked (then: treated as closed)."""
    try:
        clock = get_broker().get_clock()
    except BrokerError as exc:
        logger.warning("broker clock unavailable: %s", exc.message)
        return None
    return MarketClock(is_open=clock.is_open, next_open=clock.next_open)


class CachedClock:
    """One GET /v2/clock per ``ttl`` seconds at most, shared by a dispatcher's threads."""

    def __init__(self, ttl: float, fetch: Callable[[], MarketClock | None] = market_clock_get):
        self.ttl, self._fetch = ttl, fetch
        self._lock = threading.Lock()
        self._value: MarketClock | None = None
        self._at = float("-inf")

    def get(self) -> MarketClock | None:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._value, self._at = self._fetch(), time.monotonic()
            return self._value


def dispatcher_register(*, now: datetime | None = None) -> DispatcherRun:
    """Record this dispatcher's start (recovery's "latest process start")."""
    now = now or timezone.now()
    return DispatcherRun.objects.create(
        hostname=socket.gethostname()[:255], pid=os.getpid(), started_at=now, heartbeat_at=now
    )


# --- one slice -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceFreshState:
    plan_status: str
    switches: dict[str, bool]  # a missing switch row is left out: it counts as engaged


def _switch_engaged_sql(name: str) -> Subquery:
    return Subquery(TradingSwitch.objects.filter(name=name).values("engaged")[:1])


# Compiled once (tradeops.compiled): building this query cost more CPU than running it.
_SLICE_FRESH_STATE = CompiledQuery(
    lambda id, token: (
        Order.objects.filter(pk=id, status=S.PENDING_NEW, send_claimed_at=token)
        .annotate(
            kill=_switch_engaged_sql(TradingSwitch.Name.KILL_SWITCH),
            breaker=_switch_engaged_sql(TradingSwitch.Name.CIRCUIT_BREAKER),
        )
        .order_by()
        .values_list("plan__status", "kill", "breaker")
    ),
    id=BigIntegerField(),
    token=DateTimeField(),
)


def slice_fresh_state(*, order_id: int, token: datetime) -> SliceFreshState | None:
    """The slice's plan status and both switches, in one query, if the slice is still
    ``pending_new`` under this claim (``token``); None when the claim was lost."""
    row = _SLICE_FRESH_STATE.first(id=order_id, token=token)
    if row is None:
        return None
    plan_status, kill, breaker = row
    switches = {
        name: bool(engaged)  # SQLite answers 0 / 1
        for name, engaged in (
            (TradingSwitch.Name.KILL_SWITCH, kill),
            (TradingSwitch.Name.CIRCUIT_BREAKER, breaker),
        )
        if engaged is not None
    }
    return SliceFreshState(plan_status, switches)


def slice_dispatch(*, order: Order, token: datetime, clock: CachedClock) -> str:
    """Check and send one slice (loaded with its plan) this process claimed with ``token``;
    returns the outcome (the ``twap_slices_total`` label): submitted / duplicate / rejected /
    unconfirmed, blocked_kill_switch / blocked_circuit_breaker / canceled, rescheduled,
    deferred_<code>, held (clock unknown or stale), or lost_claim (the claim was taken back:
    by recovery, or by a sibling slice moving the whole plan to the next open)."""
    # Fresh state right before sending: the plan may have been canceled since the claim, and
    # recovery may have handed the slice to another dispatcher.
    fresh = slice_fresh_state(order_id=order.pk, token=token)
    if fresh is None:
        return "lost_claim"
    plan, now = order.plan, timezone.now()
    plan.status = fresh.plan_status
    ctx = SliceCheckContext(now=now, extras={"switches": fresh.switches})
    rejection = slice_presend_rejection(order, plan, ctx)
    if rejection is not None:
        return _apply_rejection(order, token, rejection)
    market = clock.get()
    decision = slice_timing(
        scheduled_time=order.scheduled_time,
        now=now,
        grace_seconds=settings.MISFIRE_GRACE_SECONDS,
        clock=market,
    )
    if decision.timing is Timing.HOLD:
        slice_unclaim(order_id=order.pk, token=token)
        logger.warning("slice %s held: %s", order.client_order_id, decision.reason)
        return "held"
    if decision.timing is Timing.RESCHEDULE:
        assert market is not None  # noqa: S101 - RESCHEDULE needs a known clock
        moved = plan_reschedule_pending(plan=plan, next_open=market.next_open, token=token)
        logger.warning(
            "slice %s due %.1fs ago while the market is closed: plan %s's %d pending slices "
            "moved to the next open",
            order.client_order_id,
            decision.late_seconds,
            plan.pk,
            moved,
        )
        return "rescheduled"
    if decision.misfired:
        logger.warning(
            "slice %s is %.1fs late (grace %ss): sending now, the market is open",
            order.client_order_id,
            decision.late_seconds,
            settings.MISFIRE_GRACE_SECONDS,
        )
    metrics.TWAP_SLICE_LATENESS.observe(max(decision.late_seconds, 0.0))
    return order_send_claimed(order=order)


def _apply_rejection(order: Order, token: datetime, rejection: Rejection) -> str:
    status = REJECTION_STATUS.get(rejection.code)
    if status is not None:
        ended = order_end_locally(order=order, status=status, note=rejection.message, token=token)
        if not ended:
            return "lost_claim"
        logger.warning("slice %s %s: %s", order.client_order_id, status, rejection.message)
        return str(status)
    slice_unclaim(order_id=order.pk, token=token)
    logger.info(
        "slice %s deferred (%s): %s", order.client_order_id, rejection.code, rejection.message
    )
    return f"deferred_{rejection.code}"


# --- the loop --------------------------------------------------------------------------------
class _SenderPool:
    """Threads that send claimed slices in parallel (a submit is a broker round trip). Each
    thread keeps its own database connection and broker session and closes the connection
    when the pool closes (a leaked connection would outlive the dispatcher)."""

    def __init__(self, size: int, work: Callable[[Any], str]) -> None:
        self._work = work
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name=f"slice-sender-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                item, results, done = job
                try:
                    results.append(self._work(item))
                except Exception:
                    logger.exception("slice dispatch failed for %s", item)
                    results.append("error")
                finally:
                    done.release()
        finally:
            connections.close_all()

    def map(self, items: list[Any]) -> list[str]:
        results: list[str] = []
        done = threading.Semaphore(0)
        for item in items:
            self._jobs.put((item, results, done))
        for _ in items:
            done.acquire()
        return results

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=30)


class SliceDispatcher:
    """One ``run_slices`` process: ``tick()`` claims and sends what is due; ``sleep_seconds()``
    says how long to wait for the next due slice (at most the poll interval)."""

    HEARTBEAT_SECONDS = 5.0

    def __init__(
        self,
        *,
        batch: int,
        workers: int,
        poll_seconds: float,
        run: DispatcherRun | None = None,
    ) -> None:
        self.batch, self.poll_seconds, self.run = batch, poll_seconds, run
        self.clock = CachedClock(settings.TWAP_CLOCK_CACHE_SECONDS)
        self.outcomes: Counter[str] = Counter()
        self.stopping = False
        self._held: dict[int, float] = {}  # plan id -> monotonic time it may be retried
        self._paused_until = float("-inf")  # gate closed or clock unknown: holds every plan
        self._beat = time.monotonic()
        self._pool = _SenderPool(workers, self._dispatch) if workers > 1 else None

    def _dispatch(self, order: Order) -> str:
        token = order.send_claimed_at
        assert token is not None  # noqa: S101 - set by slices_claim_due
        if self.stopping:  # SIGTERM: give unsent claims back instead of leaving them to recovery
            return "released" if slice_unclaim(order_id=order.pk, token=token) else "lost_claim"
        outcome = slice_dispatch(order=order, token=token, clock=self.clock)
        metrics.TWAP_SLICES.labels(outcome).inc()
        retry_at = time.monotonic() + settings.TWAP_DISPATCH_RETRY_SECONDS
        if outcome in GLOBAL_HOLD_OUTCOMES:
            self._paused_until = max(self._paused_until, retry_at)
        elif outcome.startswith("deferred_"):
            self._held[order.plan_id] = retry_at
        return outcome

    def _held_plans(self) -> set[int]:
        now = time.monotonic()
        self._held = {plan: until for plan, until in self._held.items() if until > now}
        return set(self._held)

    def tick(self) -> int:
        """Claim and dispatch one batch of due slices; returns how many were claimed."""
        self._heartbeat()
        if self._paused_until > time.monotonic():
            return 0
        claimed = slices_claim_due(
            now=timezone.now(), limit=self.batch, exclude_plan_ids=self._held_plans()
        )
        if self._pool is not None and len(claimed) > 1:
            results = self._pool.map(claimed)
        else:
            results = [self._dispatch(order) for order in claimed]
        self.outcomes.update(results)
        return len(claimed)

    def sleep_seconds(self) -> float:
        """Until the next slice this dispatcher may claim is due, a hold ends, or the poll
        interval passes, whichever comes first (held plans must not turn the loop into a spin)."""
        now = time.monotonic()
        if self._paused_until > now:
            return min(self._paused_until - now, self.poll_seconds)
        held = self._held_plans()
        wait = self.poll_seconds
        if held:
            wait = min(wait, min(self._held.values()) - now)
        due = slices_next_due(exclude_plan_ids=held)
        if due is not None:
            wait = min(wait, (due - timezone.now()).total_seconds())
        return max(wait, 0.0)

    def _heartbeat(self) -> None:
        if self.run is None or time.monotonic() - self._beat < self.HEARTBEAT_SECONDS:
            return
        self._beat = time.monotonic()
        DispatcherRun.objects.filter(pk=self.run.pk).update(heartbeat_at=timezone.now())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self.run is not None:
            DispatcherRun.objects.filter(pk=self.run.pk).update(stopped_at=timezone.now())

"""Order reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import Coalesce

from orders.models import (
    PLAN_TERMINAL_STATUSES,
    DispatcherRun,
    Order,
    OrderEvent,
    OrderQuerySet,
    PlanStatus,
    Position,
    SlicingPlan,
    TradeStreamRun,
)
from orders.status import UNCONFIRMED_STATUSES, OrderStatus
from tradeops.permissions import strategy_scope


def orders_visible_to(user: Any) -> OrderQuerySet:
    """A strategy token sees its own strategy's orders; verified staff see all."""
    qs = Order.objects.select_related("strategy")
    scope = strategy_scope(user)
    return qs.filter(strategy_id=scope) if scope is not None else qs


def order_get_visible(user: Any, client_order_id: str) -> Order | None:
    return orders_visible_to(user).filter(client_order_id=client_order_id).first()


def plans_visible_to(user: Any) -> Any:
    """Like orders: a token sees its own strategy's plans; verified staff see all."""
    qs = SlicingPlan.objects.select_related("strategy")
    scope = strategy_scope(user)
    return qs.filter(strategy_id=scope) if scope is not None else qs


def plan_get_visible(user: Any, plan_id: int) -> SlicingPlan | None:
    return plans_visible_to(user).filter(pk=plan_id).first()


def symbol_working_orders(symbol: str, *, limit: int = 20) -> list[Order]:
    """The newest working (non-terminal) orders of a symbol, for the "Place order" page."""
    return list(Order.objects.open().filter(symbol=symbol).select_related("strategy")[:limit])


def plan_progress(
    plan: SlicingPlan,
) -> tuple[list[tuple[datetime, int]], list[tuple[datetime, int]]]:
    """A plan's planned shares by slice time, and its fills by the time they were applied
    (every fill increase any source reported), for the admin's progress chart."""
    planned = list(Order.objects.filter(plan=plan).values_list("scheduled_time", "qty"))
    filled = list(
        OrderEvent.objects.filter(
            order__plan=plan, applied=True, filled_qty__gt=F("filled_qty_before")
        )
        .annotate(delta=F("filled_qty") - F("filled_qty_before"))
        .values_list("created_at", "delta")
    )
    return planned, filled


def slices_due(now: datetime) -> Any:
    """Unclaimed pending slices due at ``now``, earliest first (``run_slices --dry-run``)."""
    return (
        Order.objects.slices_unclaimed()
        .filter(scheduled_time__lte=now)
        .select_related("plan")
        .order_by("scheduled_time", "id")
    )


def slices_pending_exist() -> bool:
    """Is any slice still waiting to be sent (``run_slices --until-idle``)?"""
    return Order.objects.filter(plan__isnull=False, status=OrderStatus.PENDING_NEW).exists()


def symbols_in_play() -> set[str]:
    """Symbols the orders app needs prices for (a QUOTE_UNIVERSE_SOURCES entry): open orders
    (pending TWAP slices included), non-flat positions and plans not finished yet."""
    open_orders = Order.objects.open().values_list("symbol", flat=True).distinct()
    positions = Position.objects.exclude(qty=0).values_list("symbol", flat=True)
    plans = (
        SlicingPlan.objects.exclude(status__in=PLAN_TERMINAL_STATUSES)
        .values_list("symbol", flat=True)
        .distinct()
    )
    return {*open_orders, *positions, *plans}


# --- operations (health, /metrics) ------------------------------------------------------------
def slices_overdue(*, now: datetime, seconds: float) -> OrderQuerySet:
    """Slices of active plans due more than ``seconds`` ago that nobody has claimed: no
    ``run_slices`` is running, or every slice is being deferred (gate, quarantine)."""
    return Order.objects.slices_unclaimed().filter(
        scheduled_time__lt=now - timedelta(seconds=seconds), plan__status=PlanStatus.ACTIVE
    )


def orders_unconfirmed(*, now: datetime) -> dict[str, tuple[int, float]]:
    """Per status of ``UNCONFIRMED_STATUSES``: how many orders, and the seconds since the
    oldest was (maybe) sent: its send claim, else its insert (reconciliation's grace clock).
    TWAP slices waiting for their time are not in doubt (never sent) and are left out."""
    rows = (
        Order.objects.filter(is_terminal=False, status__in=UNCONFIRMED_STATUSES)
        .exclude(plan__isnull=False, status=OrderStatus.PENDING_NEW, send_claimed_at__isnull=True)
        .values("status")
        .annotate(n=Count("id"), oldest=Min(Coalesce("send_claimed_at", "created_at")))
    )
    found = {row["status"]: row for row in rows}
    summary = {}
    for status in sorted(UNCONFIRMED_STATUSES):
        row = found.get(status)
        age = max((now - row["oldest"]).total_seconds(), 0.0) if row else 0.0
        summary[status] = (row["n"] if row else 0, age)
    return summary


def dispatchers_alive(*, now: datetime, within: float) -> tuple[int, datetime | None]:
    """``run_slices`` processes alive (not stopped, heartbeat younger than ``within`` seconds),
    and the newest heartbeat of any (None: none ever started)."""
    return _heartbeat_summary(DispatcherRun, Q(), now=now, within=within)


def trade_streams_connected(*, now: datetime, within: float) -> tuple[int, datetime | None]:
    """``stream_trade_updates`` processes alive and connected to the broker's websocket, and
    the newest heartbeat of any (None: none ever started)."""
    return _heartbeat_summary(TradeStreamRun, Q(connected=True), now=now, within=within)


def _heartbeat_summary(
    model: type[DispatcherRun] | type[TradeStreamRun], extra: Q, *, now: datetime, within: float
) -> tuple[int, datetime | None]:
    alive = extra & Q(stopped_at__isnull=True, heartbeat_at__gte=now - timedelta(seconds=within))
    row = model.objects.aggregate(alive=Count("id", filter=alive), newest=Max("heartbeat_at"))
    return row["alive"], row["newest"]

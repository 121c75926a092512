"""Reconciliation reads: the gate, quarantines, orphan exposure."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q, Sum
from django.utils import timezone

from orders.status import TERMINAL_STATUSES
from reconciliation.diff import GateVerdict, gate_evaluate
from reconciliation.models import ANY_STRATEGY, OrphanOrder, Quarantine, ReconciliationState


def gate_verdict(now: datetime | None = None) -> GateVerdict:
    return gate_verdict_of(ReconciliationState.objects.filter(pk=1).first(), now=now)


def gate_verdict_of(
    state: ReconciliationState | None, *, now: datetime | None = None
) -> GateVerdict:
    """The gate as a given state row says (e.g. one the caller holds locked)."""
    if state is None:
        return GateVerdict(False, "no reconciliation has succeeded yet")
    return gate_evaluate(
        last_success_at=state.last_success_at,
        last_process_start_at=state.last_process_start_at,
        override_at=state.override_at if state.override_active else None,
        now=now or timezone.now(),
        max_age=timedelta(seconds=settings.RECONCILIATION_MAX_AGE_SECONDS),
    )


def active_quarantine_for(strategy_id: str, symbol: str) -> Quarantine | None:
    """The quarantine that fences this strategy on this symbol: its own, or ``*``."""
    return (
        Quarantine.objects.active()
        .filter(Q(strategy_id=ANY_STRATEGY) | Q(strategy_id=strategy_id), symbol=symbol)
        .order_by("created_at")
        .first()
    )


def orphan_open_exposure(symbol: str) -> tuple[int, int]:
    """Unfilled shares of untracked orphans still working at the broker: (buy, sell)."""
    rows = (
        OrphanOrder.objects.filter(symbol=symbol, status=OrphanOrder.Status.UNTRACKED)
        .exclude(broker_status__in=TERMINAL_STATUSES)
        .values("side")
        .annotate(remaining=Sum(F("qty") - F("filled_qty")))
    )
    by_side = {r["side"]: max(int(r["remaining"] or 0), 0) for r in rows}
    return by_side.get("buy", 0), by_side.get("sell", 0)

"""Reconciliation reads: quarantines, orphan exposure (the gate's reads are in ``gate``)."""

from __future__ import annotations

from django.db.models import F, Q, Sum

from orders.status import TERMINAL_STATUSES
from reconciliation.models import ANY_STRATEGY, OrphanOrder, Quarantine


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

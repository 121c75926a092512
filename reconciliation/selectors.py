"""Reconciliation reads: quarantines, orphan exposure (the gate's reads are in ``gate``)."""

from __future__ import annotations

from django.db.models import CharField, F, Q, Sum

from orders.status import TERMINAL_STATUSES
from reconciliation.models import ANY_STRATEGY, OrphanOrder, Quarantine
from tradeops.compiled import CompiledQuery

# Both read for every order, under the symbol lock (compiled once: tradeops.compiled).
_QUARANTINE = CompiledQuery(
    lambda strategy_id, symbol: (
        Quarantine.objects.active()
        .filter(Q(strategy_id=ANY_STRATEGY) | Q(strategy_id=strategy_id), symbol=symbol)
        .order_by("created_at")
        .values_list("pk")[:1]
    ),
    strategy_id=CharField(),
    symbol=CharField(),
)
_ORPHAN_EXPOSURE = CompiledQuery(
    lambda symbol: (
        OrphanOrder.objects.filter(symbol=symbol, status=OrphanOrder.Status.UNTRACKED)
        .exclude(broker_status__in=TERMINAL_STATUSES)
        .order_by()
        .values("side")
        .annotate(remaining=Sum(F("qty") - F("filled_qty")))
        .values_list("side", "remaining")
    ),
    symbol=CharField(),
)


def active_quarantine_for(strategy_id: str, symbol: str) -> Quarantine | None:
    """The quarantine that fences this strategy on this symbol: its own, or ``*``."""
    found = _QUARANTINE.first(strategy_id=strategy_id, symbol=symbol)
    if found is None:  # the usual answer: one compiled query
        return None
    return Quarantine.objects.select_related("orphan").filter(pk=found[0]).first()


def orphan_open_exposure(symbol: str) -> tuple[int, int]:
    """Unfilled shares of untracked orphans still working at the broker: (buy, sell)."""
    rows = _ORPHAN_EXPOSURE.rows(symbol=symbol)
    by_side = {side: max(int(remaining or 0), 0) for side, remaining in rows}
    return by_side.get("buy", 0), by_side.get("sell", 0)

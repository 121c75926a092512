"""Reconciliation's contributions to the pre-trade pipeline (listed in settings):

- ``prepare_gate`` (before the transaction): when the gate is closed, fetch the LIVE broker
  position and open orders for the symbol, because while unreconciled the database may be
  stale; broker unreachable -> nothing fetched -> the check refuses (fail closed).
- ``check_gate``: gate open -> pass (orders placed under a force-complete override are
  flagged and logged); gate closed -> only reduce-only orders pass, judged on the live view.
- ``check_quarantine``: a quarantine for the strategy or ``*`` on the symbol refuses (422).
- ``orphan_exposure``: orphans' unfilled shares count in the position-limit check.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import router
from django.db.models import CharField, Q

from orders.positions import reduce_only_verdict
from orders.prepared import PreparedStatement, Slot
from orders.risk import OrderIntent, Rejection, RiskContext
from reconciliation.gate import gate_verdict, gate_verdict_of
from reconciliation.models import ANY_STRATEGY, Quarantine, ReconciliationState
from reconciliation.selectors import active_quarantine_for, orphan_open_exposure
from tradeops.broker import BrokerError, get_broker

logger = logging.getLogger(__name__)


def prepare_gate(intent: OrderIntent, ctx: RiskContext) -> None:
    verdict = gate_verdict(ctx.now)
    ctx.extras["gate"] = verdict
    if verdict.open:
        return
    broker = get_broker()
    try:
        position = broker.get_position(intent.symbol)
        working = broker.list_orders(status="open", symbols=[intent.symbol], limit=500)
    except BrokerError as exc:
        ctx.extras["gate_live_error"] = exc.message
        return
    if len(working) >= 500:  # more than one page: the view would be incomplete
        ctx.extras["gate_live_error"] = "too many open orders to judge from one page"
        return
    ctx.extras["gate_live"] = {
        "position": position.qty if position else 0,
        "open_buy": sum(o.remaining_qty for o in working if o.side == "buy"),
        "open_sell": sum(o.remaining_qty for o in working if o.side == "sell"),
    }


def _gated(message: str, details: dict[str, Any]) -> Rejection:
    return Rejection(
        "gated", message, details, unavailable=True, retry_after=settings.GATE_RETRY_AFTER_SECONDS
    )


def check_gate(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
    verdict = gate_verdict(ctx.now)  # again, under the lock: it may have changed meanwhile
    if verdict.open:
        if verdict.by_override:
            ctx.extras["placed_under_override"] = True
            logger.warning(
                "ORDER UNDER RECONCILIATION OVERRIDE: %s %s %s %s (strategy %s)",
                intent.side,
                intent.qty,
                intent.symbol,
                intent.order_type,
                intent.strategy_id,
            )
        return None
    details: dict[str, Any] = {"gate": verdict.reason}
    live = ctx.extras.get("gate_live")
    if live is None:
        details["broker"] = ctx.extras.get("gate_live_error", "not asked")
        return _gated(
            f"Trading is gated ({verdict.reason}) and the broker cannot be asked whether this "
            "order only reduces a position; only cancels are accepted.",
            details,
        )
    reduce = reduce_only_verdict(side=intent.side, qty=intent.qty, **live)
    details.update(live, available_to_close=reduce.available_to_close)
    if reduce.allowed:
        ctx.warnings.append(f"gated ({verdict.reason}): passed as reduce-only")
        return None
    reducing_side = "sell" if live["position"] > 0 else "buy" if live["position"] < 0 else None
    if intent.side == reducing_side:
        return Rejection(
            "reduce_only_violation",
            f"Trading is gated ({verdict.reason}); only reduce-only orders pass and this one "
            f"would not: {reduce.reason}.",
            details,
        )
    return _gated(
        f"Trading is gated ({verdict.reason}): new risk is refused until reconciliation "
        f"completes ({reduce.reason}). Cancels and reduce-only orders are accepted.",
        details,
    )


def check_quarantine(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
    quarantine = active_quarantine_for(intent.strategy_id, intent.symbol)
    if quarantine is None:
        return None
    return Rejection(
        "quarantined",
        f"{intent.symbol} is quarantined for {quarantine.strategy_id} strategies: "
        f"{quarantine.reason}. An operator must adopt, cancel or resolve the orphan first.",
        {
            "quarantine": quarantine.key,
            "quarantine_id": quarantine.pk,
            "orphan": quarantine.orphan.broker_order_id if quarantine.orphan else None,
        },
    )


def orphan_exposure(symbol: str, ctx: RiskContext) -> tuple[int, int]:
    return orphan_open_exposure(symbol)


# --- TWAP slices: checked right before each slice is sent (SLICE_PRESEND_CHECKS) -------------
# Both reads run for every slice; compiled once per database (orders.prepared), since building
# them cost more CPU than running them.
GATE_STATE_FIELDS = ("last_success_at", "last_process_start_at", "override_at", "override_active")
GATE_STATE = PreparedStatement(
    lambda: ReconciliationState.objects.filter(pk=1).values_list(*GATE_STATE_FIELDS).query
)
QUARANTINE_EXISTS = PreparedStatement(
    lambda: (
        Quarantine.objects.active()
        .filter(
            Q(strategy_id=ANY_STRATEGY) | Q(strategy_id=Slot("strategy", CharField())),
            symbol=Slot("symbol", CharField()),
        )
        .order_by()
        .values_list("pk")[:1]
        .query
    )
)


def _slice_gate_state() -> ReconciliationState | None:
    """The gate's inputs of the state row (an unsaved copy), None before the first run."""
    rows = GATE_STATE.rows(router.db_for_read(ReconciliationState), {})
    return (
        ReconciliationState(**dict(zip(GATE_STATE_FIELDS, rows[0], strict=True))) if rows else None
    )


def slice_check_gate(order: Any, plan: Any, ctx: Any) -> Rejection | None:
    """A slice waits (stays pending) while the gate is closed; the plan as a whole passed the
    gate when it was created, but an unreconciled restart since then may hide anything."""
    verdict = ctx.extras.get("gate")
    if verdict is None:
        verdict = ctx.extras["gate"] = gate_verdict_of(_slice_gate_state(), now=ctx.now)
    if verdict.open:
        if verdict.by_override:
            logger.warning(
                "SLICE UNDER RECONCILIATION OVERRIDE: %s (plan %s)", order.client_order_id, plan.pk
            )
        return None
    return _gated(
        f"Trading is gated ({verdict.reason}); the slice waits.", {"gate": verdict.reason}
    )


def slice_check_quarantine(order: Any, plan: Any, ctx: Any) -> Rejection | None:
    """An orphan appearing after the plan was made fences its remaining slices too."""
    alias = router.db_for_read(Quarantine)
    if not QUARANTINE_EXISTS.rows(alias, {"strategy": plan.strategy_id, "symbol": order.symbol}):
        return None
    quarantine = active_quarantine_for(plan.strategy_id, order.symbol)
    if quarantine is None:
        return None
    return Rejection(
        "quarantined",
        f"{order.symbol} is quarantined ({quarantine.key}): {quarantine.reason}",
        {"quarantine": quarantine.key},
        unavailable=True,
    )

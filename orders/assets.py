"""Orders only for what the broker lists as tradable (issue 9, point 8): the asset checks of
the pre-trade pipeline and of TWAP slices right before they are sent.

- ``prepare_asset`` (PRETRADE_PREPARE, may use the network): the symbol's asset from the
  cached list (``marketdata.assets``), loading the list if it was never loaded.
- ``check_asset`` (PRETRADE_CHECKS, under the symbol lock): 422 ``unknown_symbol`` for a
  symbol the broker does not list as active and tradable; 422 ``not_shortable`` for a sell
  that would open or extend a short on an asset that cannot be shorted, judged on the worst
  case (position minus every working sell, orphans' included) like the reduce-only rule; 503
  when no list was ever loaded and the broker cannot be asked (fail closed).
- ``slice_check_asset`` (SLICE_PRESEND_CHECKS, no network): an asset halted, delisted or made
  hard to borrow after the plan was made ends the slice ``canceled`` with the reason (see
  ``orders.dispatch.REJECTION_STATUS``) instead of leaving it pending: a deferred slice would
  go out late, in a burst with its overdue siblings, at times and prices the plan never
  meant. The plan goes on with its other slices and ends with what it filled.

Cancels never pass through here: they are never blocked.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.utils.module_loading import import_string

from marketdata.assets import AssetListUnavailable, asset_cached, asset_for_order
from marketdata.models import Asset
from orders.models import Order
from orders.positions import short_sale_qty
from orders.risk import OrderIntent, Rejection, RiskContext, symbol_exposure


def prepare_asset(intent: OrderIntent, ctx: RiskContext) -> None:
    try:
        ctx.extras["asset"] = asset_for_order(symbol=intent.symbol)
    except AssetListUnavailable as exc:
        ctx.extras["asset_error"] = str(exc)


def _unknown(symbol: str, asset: Asset | None) -> Rejection:
    reason = "not listed" if asset is None else asset.untradable_reason
    return Rejection(
        "unknown_symbol",
        f"{symbol} is not an active, tradable asset at the broker ({reason}).",
        {"symbol": symbol, "reason": reason},
    )


def _not_shortable(symbol: str, *, short_qty: int, facts: dict[str, Any]) -> Rejection:
    return Rejection(
        "not_shortable",
        f"This sell would open or extend a short of {short_qty} {symbol}, and {symbol} cannot "
        "be sold short (not shortable or not easy to borrow at the broker).",
        {"symbol": symbol, "short_qty": short_qty, **facts},
    )


def check_asset(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
    if "asset_error" in ctx.extras or "asset" not in ctx.extras:
        error = ctx.extras.get("asset_error", "prepare_asset is not in PRETRADE_PREPARE")
        return Rejection(
            "broker_unavailable",
            f"Cannot tell whether {intent.symbol} is tradable: no asset list is cached and "
            f"the broker cannot be asked ({error}).",
            {"symbol": intent.symbol},
            unavailable=True,
            retry_after=settings.GATE_RETRY_AFTER_SECONDS,
        )
    asset = ctx.extras["asset"]
    if asset is None or not asset.is_tradable:
        return _unknown(intent.symbol, asset)
    if intent.side != "sell" or asset.can_open_short:
        return None
    assert ctx.exposure is not None  # noqa: S101 - set by run_checks before any check
    e = ctx.exposure
    open_sell = e.open_sell + ctx.extra_sell
    short_qty = short_sale_qty(position=e.position, open_sell=open_sell, qty=intent.qty)
    if not short_qty:
        return None
    return _not_shortable(
        intent.symbol, short_qty=short_qty, facts={"position": e.position, "open_sell": open_sell}
    )


def slice_check_asset(order: Any, plan: Any, ctx: Any) -> Rejection | None:
    """Right before a slice is sent, from the cached list (no network per slice)."""
    try:
        asset = asset_cached(symbol=order.symbol)
    except AssetListUnavailable as exc:  # never loaded: wait for it, send nothing blind
        return Rejection("asset_list_unavailable", str(exc), unavailable=True)
    if asset is None or not asset.is_tradable:
        return _unknown(order.symbol, asset)
    if order.side != "sell" or asset.can_open_short:
        return None
    # Judged like a new sell of the slice's size against what can fill before it: the
    # position and every working sell, except this plan's slices still waiting for their time
    # (judged when they are sent). The plan passed the same rule on its total when it was
    # made, so this trips only if the long position shrank since, or the asset became hard to
    # borrow.
    exposure = symbol_exposure(order.symbol)
    extra_sell = sum(
        import_string(path)(order.symbol, ctx)[1] for path in settings.PRETRADE_EXPOSURE_SOURCES
    )
    waiting = Order.objects.slices_unclaimed().filter(plan_id=order.plan_id)
    waiting_qty = waiting.aggregate(qty=Sum("qty"))["qty"] or 0
    open_sell = exposure.open_sell + extra_sell - waiting_qty - order.qty  # without this slice
    short_qty = short_sale_qty(position=exposure.position, open_sell=open_sell, qty=order.qty)
    if not short_qty:
        return None
    return _not_shortable(
        order.symbol,
        short_qty=short_qty,
        facts={"position": exposure.position, "open_sell": open_sell},
    )

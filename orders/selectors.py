"""Order reads."""

from __future__ import annotations

from typing import Any

from orders.models import Order, OrderQuerySet, SlicingPlan
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

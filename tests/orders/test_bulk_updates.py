"""The set-based update path against the single one: random batches applied by
``apply_order_updates`` and one by one through ``apply_order_update`` (in
``sequential_order``) leave identical orders, events, positions and results."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from orders.bulk_updates import OrderUpdate, apply_one, apply_order_updates, sequential_order
from orders.models import Order, OrderEvent, Position
from orders.status import Source
from tests.orders.test_apply_update import DB_SETTINGS, any_update, new_order

pytestmark = pytest.mark.django_db

ORDER_FIELDS = [f.attname for f in Order._meta.concrete_fields if f.attname != "updated_at"]
EVENT_FIELDS = [f.attname for f in OrderEvent._meta.concrete_fields if f.attname != "created_at"]
SIDES = ["buy", "sell", "buy", "sell"]
prices = st.sampled_from([None, Decimal("99.5000"), Decimal("101.2500"), Decimal("100")])


def snapshot(order_ids: list[int], since: datetime, events_after: int) -> dict[str, Any]:
    """The rows both paths write; timestamps either path sets to "now" read as ``now``."""

    def when(value: Any) -> Any:
        return "now" if isinstance(value, datetime) and value >= since else value

    orders = Order.objects.filter(id__in=order_ids).order_by("id").values(*ORDER_FIELDS)
    events = OrderEvent.objects.filter(id__gt=events_after).order_by("id").values(*EVENT_FIELDS)
    return {
        "orders": [{k: when(v) for k, v in o.items()} for o in orders],
        "events": [{k: v for k, v in e.items() if k != "id"} for e in events],
        "positions": [
            {k: when(v) for k, v in p.items()}
            for p in Position.objects.order_by("symbol").values("symbol", "qty", "avg_entry_price")
        ],
    }


def arm(apply: Any, order_ids: list[int]) -> tuple[Any, dict[str, Any]]:
    """Run ``apply`` and read the result, then roll it back (so both arms start equal)."""
    since = timezone.now()
    events_after = OrderEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with transaction.atomic():
        results = apply()
        snap = snapshot(order_ids, since, events_after)
        transaction.set_rollback(True)
    return results, snap


@DB_SETTINGS
@given(data=st.data())
def test_a_batch_applied_set_based_equals_one_by_one(data: st.DataObject, trader: Any) -> None:
    with transaction.atomic():  # nothing of this example outlives it
        orders = [new_order(qty=100, side=side) for side in SIDES]
        coids = [o.client_order_id for o in orders] + ["not-an-order"]
        # a reachable starting state per order: a random history through the single path
        for idx, u in data.draw(st.lists(st.tuples(st.integers(0, 3), any_update), max_size=8)):
            apply_one(
                OrderUpdate(coids[idx], u.status, u.filled_qty, None, u.broker_updated_at),
                u.source,
            )
        items = st.tuples(st.integers(0, 4), any_update, prices, st.sampled_from(["", "n"]))
        batch = [
            OrderUpdate(
                coids[idx],
                u.status,
                u.filled_qty,
                price if u.filled_qty else None,
                u.broker_updated_at,
                broker_order_id=f"b-{idx}" if u.broker_updated_at else None,
                submitted_at=u.broker_updated_at,
                note=note,
            )
            for idx, u, price, note in data.draw(st.lists(items, min_size=1, max_size=10))
        ]
        source = data.draw(st.sampled_from(list(Source)))
        ids = [o.id for o in orders]

        def one_by_one() -> list[Any]:
            results: list[Any] = [None] * len(batch)
            for i in sequential_order(batch, slices=set()):
                results[i] = apply_one(batch[i], source)
            return results

        expected, reference = arm(one_by_one, ids)
        got, bulk = arm(lambda: apply_order_updates(batch, source=source), ids)
        assert got == expected
        assert bulk == reference
        transaction.set_rollback(True)


def test_sequential_order_puts_sets_first_then_slices_and_repeats() -> None:
    batch = [OrderUpdate(c, "new", 0, None, None) for c in ["a", "s", "b", "a", "c"]]
    assert sequential_order(batch, slices={"s"}) == [0, 2, 4, 1, 3]


def test_queries_do_not_grow_with_the_batch(trader: Any) -> None:
    def queries(n: int) -> int:
        batch = [
            OrderUpdate(new_order().client_order_id, "filled", 100, Decimal("101"), timezone.now())
            for _ in range(n)
        ]
        with CaptureQueriesContext(connection) as captured:
            results = apply_order_updates(batch, source=Source.RECONCILIATION)
        assert all(r.applied for r in results)
        return len(captured)

    assert queries(3) == queries(40) <= 8
    assert Position.objects.get(symbol="AAPL").qty == 4300


def test_slices_go_through_the_single_path_and_their_plan_follows(trader: Any) -> None:
    from orders.models import PlanStatus
    from tests.orders.twap_support import make_plan, slices

    plan = make_plan(start=timezone.now(), qty=20, duration_minutes=1, interval_seconds=30)
    first, second = slices(plan)
    plain = new_order()
    ts = timezone.now()
    batch = [
        OrderUpdate(first.client_order_id, "filled", first.qty, Decimal("100"), ts),
        OrderUpdate(plain.client_order_id, "filled", 100, Decimal("101"), ts),
        OrderUpdate(second.client_order_id, "canceled", 0, None, ts),
    ]
    results = apply_order_updates(batch, source=Source.RECONCILIATION)
    assert [r.applied for r in results] == [True, True, True]
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED  # every slice ended, some shares filled
    events = OrderEvent.objects.order_by("id").values_list("order_id", flat=True)
    assert list(events)[-3:] == [plain.id, first.id, second.id]  # sequential_order
    assert Position.objects.get(symbol="AAPL").qty == 100 + first.qty

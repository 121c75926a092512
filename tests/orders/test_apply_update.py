"""apply_order_update on PostgreSQL: the conditional UPDATE checked against the pure rule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.models import Order, OrderEvent, Position
from orders.risk import OrderIntent
from orders.services import order_create
from orders.status import (
    TERMINAL_STATUSES,
    OrderState,
    OrderStatus,
    Source,
    StatusUpdate,
    apply_to_state,
)
from orders.updates import apply_order_update
from tests.orders.test_status import overrules_local_ending

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
_unique = itertools.count(1)
DB_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def new_order(qty: int = 100, side: str = "buy") -> Order:
    """A pending_new limit order (a limit price keeps the risk checks off the network)."""
    intent = OrderIntent(
        strategy_id="alpha",
        symbol="AAPL",
        side=side,
        qty=qty,
        order_type="limit",
        time_in_force="day",
        limit_price=Decimal(next(_unique)),
    )
    return order_create(request=intent, actor="test").order


def db_state(order: Order) -> OrderState:
    order.refresh_from_db()
    return OrderState(
        order.status, order.filled_qty, order.broker_updated_at, order.source_strength
    )


def price_for(fill: int) -> Decimal | None:
    return Decimal("100") + Decimal(fill) / 100 if fill else None


def offer(order: Order, u: StatusUpdate) -> None:
    apply_order_update(
        order.client_order_id,
        u.status,
        u.filled_qty,
        price_for(u.filled_qty),
        u.broker_updated_at,
        u.source,
    )


statuses = st.sampled_from([s.value for s in OrderStatus])
times = st.one_of(st.none(), st.integers(0, 4).map(lambda s: T0 + timedelta(seconds=s)))
# Zero fills weighted up: most real reports carry none, and the re-send edge needs one.
fills = st.one_of(st.just(0), st.integers(0, 100))
any_update = st.builds(StatusUpdate, statuses, fills, times, st.sampled_from(list(Source)))


@DB_SETTINGS
@given(seq=st.lists(any_update, min_size=1, max_size=12))
def test_random_updates_never_lose_a_fill_nor_leave_a_terminal_state(
    seq: list[StatusUpdate], trader: object
) -> None:
    order = new_order()
    model = db_state(order)
    for u in seq:
        before = db_state(order)
        offer(order, u)
        after = db_state(order)
        model = apply_to_state(model, u)
        assert after.filled_qty >= before.filled_qty
        if overrules_local_ending(before, u):  # a local ending yields to the broker's report
            assert (after.status, after.broker_updated_at) == (u.status, u.broker_updated_at)
        elif before.status in TERMINAL_STATUSES and after.status != before.status:
            pytest.fail(f"left terminal {before.status} for {after.status}")
        elif before.status in TERMINAL_STATUSES and after != before:
            assert before.status == after.status == "filled"
            assert after.filled_qty > before.filled_qty
        assert after == model  # the SQL and the pure rule agree
    reasons = set(OrderEvent.objects.filter(order=order).values_list("reason", flat=True))
    assert not any(r.startswith("sql_") for r in reasons), reasons
    assert OrderEvent.objects.filter(order=order).count() == len(seq)


@st.composite
def broker_history(draw: st.DrawFn) -> list[StatusUpdate]:
    """A realistic life of a 100-share order: strictly increasing timestamps, fills that only
    grow, one terminal state at the end, each state reported by any source."""
    fills = sorted(draw(st.lists(st.integers(1, 99), max_size=4, unique=True)))
    ending = draw(st.sampled_from(["filled", "canceled", "expired", "open"]))
    states: list[tuple[str, int]] = [("new", 0)]
    states += [("partially_filled", f) for f in fills]
    last_fill = fills[-1] if fills else 0
    if ending == "filled":
        states.append(("filled", 100))
    elif ending != "open":
        states.append((ending, last_fill))
    history = []
    for i, (status, fill) in enumerate(states):
        ts = T0 + timedelta(milliseconds=10 * i)
        for source in draw(st.lists(st.sampled_from(list(Source)), min_size=1, max_size=2)):
            history.append(StatusUpdate(status, fill, ts, source))
    return history


@DB_SETTINGS
@given(data=st.data())
def test_any_arrival_order_of_a_history_reaches_the_same_final_state(
    data: st.DataObject, trader: object
) -> None:
    history = data.draw(broker_history())
    arrival = data.draw(st.permutations(history))
    order = new_order()
    for u in arrival:
        offer(order, u)
    order.refresh_from_db()
    final = max(history, key=lambda u: (u.broker_updated_at, u.rank, u.filled_qty))
    assert (order.status, order.filled_qty) == (final.status, final.filled_qty)
    assert order.filled_avg_price == price_for(final.filled_qty)
    assert order.broker_updated_at == final.broker_updated_at


def test_every_update_is_recorded_with_its_reason(trader: object) -> None:
    order = new_order()
    coid = order.client_order_id
    assert apply_order_update(coid, "new", 0, None, T0, Source.STREAM).applied
    assert apply_order_update(
        coid,
        "filled",
        100,
        Decimal("101"),
        T0 + timedelta(seconds=1),
        Source.STREAM,
        "b7e8f3c2-0000-4000-8000-000000000001",
    ).applied
    late = apply_order_update(coid, "canceled", 0, None, T0 + timedelta(seconds=2), Source.MANUAL)
    assert (late.applied, late.reason) == (False, "terminal_locked")
    events = list(OrderEvent.objects.filter(order=order).values_list("status", "applied", "reason"))
    assert events == [
        ("new", True, "first_broker_report"),
        ("filled", True, "newer_timestamp"),
        ("canceled", False, "terminal_locked"),
    ]
    order.refresh_from_db()
    assert order.broker_order_id == "b7e8f3c2-0000-4000-8000-000000000001"
    assert apply_order_update("nope", "new", 0, None, T0, Source.STREAM).reason == "unknown_order"


def test_fills_move_the_position_once(trader: object) -> None:
    buy, sell = new_order(qty=100), new_order(qty=30, side="sell")
    apply_order_update(
        buy.client_order_id, "partially_filled", 40, Decimal("100"), T0, Source.STREAM
    )
    # the same report again, from reconciliation: no double count
    apply_order_update(
        buy.client_order_id, "partially_filled", 40, Decimal("100"), T0, Source.RECONCILIATION
    )
    apply_order_update(
        buy.client_order_id, "filled", 100, Decimal("106"), T0 + timedelta(seconds=1), Source.STREAM
    )
    apply_order_update(sell.client_order_id, "filled", 30, Decimal("120"), T0, Source.STREAM)
    position = Position.objects.get(symbol="AAPL")
    assert position.qty == 70
    # 40 @ 100, then 60 @ 110 (cumulative 100 @ 106) -> average 106; a sale keeps the average
    assert position.avg_entry_price == Decimal("106.0000")


def test_a_local_failure_is_sent_again_once_and_reopened_by_the_broker(trader: object) -> None:
    order = new_order()
    coid = order.client_order_id
    apply_order_update(coid, "submitted_unconfirmed", 0, None, None, Source.SUBMIT)
    apply_order_update(coid, "failed", 0, None, None, Source.RECONCILIATION, note="not found")
    first = apply_order_update(coid, "pending_new", 0, None, None, Source.SUBMIT)
    again = apply_order_update(coid, "pending_new", 0, None, None, Source.SUBMIT)
    assert (first.applied, first.reason, again.applied) == (True, "resend", False)
    order.refresh_from_db()
    assert (order.status, order.is_terminal, order.reject_reason) == ("pending_new", False, "")
    assert order.send_claimed_at is not None  # claimed by the update that moved it back
    apply_order_update(coid, "failed", 0, None, None, Source.RECONCILIATION)
    reopened = apply_order_update(coid, "new", 0, None, T0, Source.STREAM, "b-1")
    assert (reopened.applied, reopened.reason) == (True, "reopened_by_broker")
    order.refresh_from_db()
    assert (order.status, order.status_rank, order.broker_order_id) == ("new", 2, "b-1")
    late_resend = apply_order_update(coid, "pending_new", 0, None, None, Source.SUBMIT)
    assert (late_resend.applied, late_resend.reason) == (False, "broker_already_reported")

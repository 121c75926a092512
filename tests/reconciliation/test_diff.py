"""The reconciliation diff, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from reconciliation.diff import (
    DbOrder,
    PositionMismatchSpec,
    diff_orders,
    diff_positions,
    listing_window_start,
    may_fail_unfound,
    stale_order_probes,
)
from tradeops.broker import OrderReport

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
GRACE = timedelta(seconds=120)


def db(
    coid: str,
    status: str = "new",
    filled: int = 0,
    *,
    broker: str | None = "b-1",
    origin: str = "api",
    age: int = 600,
    claimed: int | None = None,
) -> DbOrder:
    return DbOrder(
        coid,
        broker,
        status,
        filled,
        origin,
        NOW - timedelta(seconds=age),
        None if claimed is None else NOW - timedelta(seconds=claimed),
    )


def rep(
    coid: str, status: str = "new", filled: int = 0, *, broker: str = "b-1", qty: int = 10
) -> OrderReport:
    return OrderReport(
        broker,
        coid,
        "AAPL",
        "buy",
        qty,
        "limit",
        "day",
        Decimal("100"),
        None,
        status,
        filled,
        Decimal("100") if filled else None,
        NOW,
        NOW,
        NOW,
    )


def test_unchanged_orders_produce_no_update() -> None:
    out = diff_orders(
        db_orders={"a": db("a")},
        broker_orders={"a": rep("a")},
        probed_missing=set(),
        known_orphan_ids=set(),
        now=NOW,
        grace=GRACE,
    )
    assert (out.updates, out.new_orphans, out.mark_failed, out.checked) == ([], [], [], 1)


def test_silent_fill_is_an_update_and_a_fill_correction() -> None:
    out = diff_orders(
        db_orders={"a": db("a")},
        broker_orders={"a": rep("a", "filled", 10)},
        probed_missing=set(),
        known_orphan_ids=set(),
        now=NOW,
        grace=GRACE,
    )
    assert [o.client_order_id for o in out.updates] == ["a"]
    assert out.fills_corrected == ["a"]


def test_unconfirmed_order_found_at_the_broker_is_resolved() -> None:
    out = diff_orders(
        db_orders={"a": db("a", "submitted_unconfirmed", broker=None)},
        broker_orders={"a": rep("a", "filled", 10)},
        probed_missing=set(),
        known_orphan_ids=set(),
        now=NOW,
        grace=GRACE,
    )
    assert out.unconfirmed_found == ["a"] and out.fills_corrected == ["a"]


def test_unknown_broker_orders_are_orphans_new_or_known() -> None:
    out = diff_orders(
        db_orders={},
        broker_orders={"x": rep("x", broker="b-x"), "y": rep("y", broker="b-y")},
        probed_missing=set(),
        known_orphan_ids={"b-y"},
        now=NOW,
        grace=GRACE,
    )
    assert [o.broker_order_id for o in out.new_orphans] == ["b-x"]
    assert [o.broker_order_id for o in out.known_orphans] == ["b-y"]


def test_same_client_id_different_broker_order_is_a_conflict_never_a_merge() -> None:
    out = diff_orders(
        db_orders={"a": db("a", broker="b-1")},
        broker_orders={"a": rep("a", "filled", 10, broker="b-2")},
        probed_missing=set(),
        known_orphan_ids=set(),
        now=NOW,
        grace=GRACE,
    )
    assert out.updates == [] and out.id_conflicts == [("a", "b-1", "b-2")]


@pytest.mark.parametrize(
    ("order", "fails"),
    [
        (db("a", "submitted_unconfirmed", broker=None, age=600, claimed=600), True),
        (db("a", "submitted_unconfirmed", broker=None, age=600, claimed=60), False),  # in grace
        (db("a", "pending_new", broker=None, age=600, claimed=600), True),  # crashed mid-send
        (db("a", "pending_new", broker=None, age=600), True),  # never claimed, api order
        (db("a", "pending_new", broker=None, origin="twap", age=600), False),  # waiting slice
        (db("a", "pending_new", broker=None, origin="twap", claimed=600), False),  # recovery's
        (db("a", "submitted_unconfirmed", broker=None, origin="twap", claimed=600), True),
        (db("a", "new", age=6000), False),  # the broker confirmed it once: not "never sent"
        (db("a", "filled", 10, age=6000), False),
    ],
)
def test_who_may_be_failed_when_the_broker_does_not_know_it(order: DbOrder, fails: bool) -> None:
    assert may_fail_unfound(order, now=NOW, grace=GRACE) is fails
    out = diff_orders(
        db_orders={"a": order},
        broker_orders={},
        probed_missing={"a"},
        known_orphan_ids=set(),
        now=NOW,
        grace=GRACE,
    )
    assert out.mark_failed == (["a"] if fails else [])


def test_probes_take_the_oldest_unlisted_open_orders_up_to_the_cap() -> None:
    orders = [db(f"o{i}", age=100 * i) for i in range(10)]
    assert stale_order_probes(orders, listed={"o9"}, limit=3) == ["o8", "o7", "o6"]


def test_listing_starts_before_the_high_water_mark() -> None:
    hwm = NOW - timedelta(minutes=5)
    assert listing_window_start(
        high_water_mark=hwm, now=NOW, overlap=timedelta(seconds=60), lookback=timedelta(days=1)
    ) == hwm - timedelta(seconds=60)
    assert listing_window_start(
        high_water_mark=None, now=NOW, overlap=timedelta(0), lookback=timedelta(days=1)
    ) == NOW - timedelta(days=1)


def test_position_mismatches_include_one_sided_flats() -> None:
    assert diff_positions(db_positions={"A": 10, "B": 5}, broker_positions={"A": 10, "C": -3}) == [
        PositionMismatchSpec("B", 5, 0),
        PositionMismatchSpec("C", 0, -3),
    ]

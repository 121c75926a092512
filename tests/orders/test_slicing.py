"""The pure TWAP slicer and the misfire rule: table-driven cases for every rule, hypothesis for
the properties (sum, determinism, remainder spread, inside the duration, within the cap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.slicing import (
    MarketClock,
    SlicingError,
    Timing,
    plan_slices,
    rescheduled_time,
    slice_count,
    slice_timing,
    split_qty,
)

T0 = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)


def sizes(plan):
    return [s.qty for s in plan.slices]


def offsets(plan):
    return [(s.scheduled_time - T0).total_seconds() for s in plan.slices]


@pytest.mark.parametrize(
    ("duration", "interval", "n"),
    [
        (1, 60, 1),  # one interval per duration
        (10, 60, 10),
        (1, 25, 3),  # 60/25 = 2.4 -> 3: the last slice at 50 s, still inside the minute
        (1, 120, 1),  # interval longer than the duration: at least one slice
        (60, 1, 3600),
        (5, 7, 43),
    ],
)
def test_slice_count_is_ceil_of_duration_over_interval_at_least_one(duration, interval, n):
    assert slice_count(duration, interval) == n


@pytest.mark.parametrize(
    ("qty", "n", "expected"),
    [
        (10, 3, [4, 3, 3]),  # the remainder goes one share each to the first slices
        (11, 3, [4, 4, 3]),
        (9, 3, [3, 3, 3]),
        (3, 3, [1, 1, 1]),
        (7, 1, [7]),
    ],
)
def test_remainder_is_spread_over_the_first_slices(qty, n, expected):
    assert split_qty(qty, n) == expected


def test_slice_i_is_due_at_start_plus_i_intervals():
    plan = plan_slices(100, 10, 60, T0)
    assert offsets(plan) == [i * 60.0 for i in range(10)]
    assert [s.slice_num for s in plan.slices] == list(range(10))
    assert sizes(plan) == [10] * 10
    assert plan.interval_seconds == 60


def test_fewer_shares_than_slices_is_an_error():
    with pytest.raises(SlicingError) as excinfo:
        plan_slices(5, 10, 60, T0)
    assert excinfo.value.field == "qty"
    assert plan_slices(10, 10, 60, T0).largest_slice == 1


def test_cap_makes_more_smaller_slices_inside_the_same_duration():
    uncapped = plan_slices(1000, 10, 60, T0)
    capped = plan_slices(1000, 10, 60, T0, max_slice_qty=30)
    assert sizes(uncapped) == [100] * 10
    assert len(capped.slices) == 34  # ceil(1000 / 30)
    assert max(sizes(capped)) <= 30
    assert sum(sizes(capped)) == 1000
    assert capped.interval_seconds == 600 // 34 == 17  # the interval shrinks
    assert offsets(capped)[-1] < 600  # all inside the 10 minutes


def test_cap_that_does_not_bind_changes_nothing():
    assert plan_slices(1000, 10, 60, T0, max_slice_qty=100) == plan_slices(1000, 10, 60, T0)


@pytest.mark.parametrize(
    ("qty", "duration", "cap", "ok"),
    [
        (60, 1, 1, True),  # 60 slices in 60 s: exactly one per second
        (61, 1, 1, False),  # would need an interval below one second
        (600, 1, 5, False),
        (600, 10, 1, True),
    ],
)
def test_cap_needing_an_interval_below_one_second_is_an_error(qty, duration, cap, ok):
    if ok:
        assert plan_slices(qty, duration, 60, T0, max_slice_qty=cap).interval_seconds == 1
    else:
        with pytest.raises(SlicingError) as excinfo:
            plan_slices(qty, duration, 60, T0, max_slice_qty=cap)
        assert excinfo.value.field == "duration_minutes"


@pytest.mark.parametrize(
    ("order_type", "limit", "stop", "field"),
    [
        ("limit", None, None, "limit_price"),
        ("stop", None, None, "stop_price"),
        ("stop_limit", Decimal("10"), None, "stop_price"),
        ("stop_limit", None, Decimal("10"), "limit_price"),
        ("market", Decimal("10"), None, "limit_price"),
        ("limit", Decimal("10"), Decimal("9"), "stop_price"),
        ("trailing", None, None, "type"),
    ],
)
def test_limit_and_stop_plans_need_their_prices(order_type, limit, stop, field):
    with pytest.raises(SlicingError) as excinfo:
        plan_slices(10, 1, 60, T0, order_type=order_type, limit_price=limit, stop_price=stop)
    assert excinfo.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"qty": 0}, "qty"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"max_slice_qty": 0}, "max_slice_qty"),
        ({"start": datetime(2025, 3, 3, 15, 0)}, "start"),  # noqa: DTZ001 - naive on purpose
        ({"max_slices": 5}, "interval_seconds"),  # 10 slices > 5 allowed
    ],
)
def test_bad_inputs_name_the_field(kwargs, field):
    args = {"qty": 100, "duration_minutes": 10, "interval_seconds": 60, "start": T0} | kwargs
    with pytest.raises(SlicingError) as excinfo:
        plan_slices(**args)
    assert excinfo.value.field == field


@given(
    qty=st.integers(1, 100_000),
    duration=st.integers(1, 600),
    interval=st.integers(1, 3600),
    cap=st.one_of(st.none(), st.integers(1, 5000)),
)
def test_slicing_properties(qty, duration, interval, cap):
    try:
        plan = plan_slices(qty, duration, interval, T0, max_slice_qty=cap)
    except SlicingError:
        n = slice_count(duration, interval)
        needed = max(n, -(-qty // cap)) if cap else n
        assert qty < n or (cap and duration * 60 // needed < 1)
        return
    got = sizes(plan)
    assert sum(got) == qty
    assert plan == plan_slices(qty, duration, interval, T0, max_slice_qty=cap)  # deterministic
    assert max(got) - min(got) <= 1  # the remainder is spread, never piled on one slice
    assert got == sorted(got, reverse=True)
    assert all(0 <= o < duration * 60 for o in offsets(plan))  # inside the duration
    assert len(plan.slices) >= slice_count(duration, interval)
    if cap is not None:
        assert max(got) <= cap
    steps = {b - a for a, b in zip(offsets(plan), offsets(plan)[1:], strict=False)}
    assert steps <= {float(plan.interval_seconds)}


# --- the misfire rule ------------------------------------------------------------------------
OPEN = MarketClock(is_open=True, next_open=T0 + timedelta(days=1))
CLOSED = MarketClock(is_open=False, next_open=T0 + timedelta(hours=17))


@pytest.mark.parametrize(
    ("late", "clock", "timing", "misfired"),
    [
        (-5, OPEN, Timing.WAIT, False),  # not due yet
        (-5, None, Timing.WAIT, False),
        (0, OPEN, Timing.SEND, False),  # on time
        (30, OPEN, Timing.SEND, False),  # within the grace: catch up now
        (60, OPEN, Timing.SEND, False),  # the grace boundary still counts as within
        (61, OPEN, Timing.SEND, True),  # beyond the grace, market open: now, with a warning
        (3600, OPEN, Timing.SEND, True),
        (0, CLOSED, Timing.RESCHEDULE, False),  # closed: to the next open
        (30, CLOSED, Timing.RESCHEDULE, False),
        (3600, CLOSED, Timing.RESCHEDULE, True),
        (30, None, Timing.HOLD, False),  # clock unknown: treated as closed, looked at later
        (3600, None, Timing.HOLD, False),
    ],
)
def test_misfire_rule(late, clock, timing, misfired):
    now = T0 + timedelta(seconds=late)
    decision = slice_timing(scheduled_time=T0, now=now, grace_seconds=60, clock=clock)
    assert decision.timing is timing
    assert decision.misfired is misfired
    assert decision.late_seconds == late
    if timing is Timing.RESCHEDULE:
        assert decision.run_at == CLOSED.next_open
    else:
        assert decision.run_at is None


def test_closed_with_a_next_open_in_the_past_holds():
    stale = MarketClock(is_open=False, next_open=T0)
    decision = slice_timing(
        scheduled_time=T0, now=T0 + timedelta(seconds=5), grace_seconds=60, clock=stale
    )
    assert decision.timing is Timing.HOLD


def test_rescheduling_keeps_the_plans_spacing():
    opens = T0 + timedelta(hours=17)
    times = [
        rescheduled_time(slice_num=n, first_pending_num=4, next_open=opens, interval_seconds=30)
        for n in (4, 5, 9)
    ]
    assert times == [opens, opens + timedelta(seconds=30), opens + timedelta(seconds=150)]
    decision = slice_timing(
        scheduled_time=T0,
        now=T0,
        grace_seconds=60,
        clock=CLOSED,
        slice_num=7,
        first_pending_num=4,
        interval_seconds=30,
    )
    assert decision.run_at == CLOSED.next_open + timedelta(seconds=90)

"""The status rank table and the compare-and-swap rule, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.status import (
    OPEN_STATUSES,
    STATUS_RANK,
    TERMINAL_STATUSES,
    Decision,
    OrderState,
    OrderStatus,
    Source,
    StatusUpdate,
    apply_to_state,
    decide,
    status_from_event,
    status_rank,
)

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("status", "rank"),
    [
        ("pending_new", 1),
        ("dry_run", 1),
        ("new", 2),
        ("submitted", 2),
        ("submitted_unconfirmed", 2),
        ("accepted", 2),
        ("accepted_for_bidding", 2),
        ("pending_cancel", 3),
        ("pending_replace", 3),
        ("calculated", 3),
        ("stopped", 3),
        ("suspended", 3),
        ("partially_filled", 3),
        ("held", 3),
        ("canceled", 4),
        ("expired", 4),
        ("failed", 4),
        ("rejected", 4),
        ("replaced", 4),
        ("done_for_day", 4),
        ("blocked_kill_switch", 4),
        ("blocked_circuit_breaker", 4),
        ("filled", 5),
    ],
)
def test_rank_table_matches_the_design(status: str, rank: int) -> None:
    assert status_rank(status) == rank
    assert (status in TERMINAL_STATUSES) == (rank >= 4)


def test_every_status_has_a_rank_and_unknown_ranks_zero(caplog: pytest.LogCaptureFixture) -> None:
    assert set(STATUS_RANK) == {s.value for s in OrderStatus}
    assert set(STATUS_RANK) == OPEN_STATUSES | TERMINAL_STATUSES
    assert status_rank("teleported") == 0
    assert "unknown order status" in caplog.text


def test_alpaca_event_names_map_to_statuses() -> None:
    assert status_from_event("partial_fill") == "partially_filled"
    assert status_from_event("fill") == "filled"
    assert status_from_event("canceled") == "canceled"


def state(status: str, filled: int = 0, ts: datetime | None = T0, strength: int = 1) -> OrderState:
    return OrderState(status, filled, ts, strength)


def upd(
    status: str, filled: int = 0, ts: datetime | None = T0, source: Source = Source.STREAM
) -> StatusUpdate:
    return StatusUpdate(status, filled, ts, source)


@pytest.mark.parametrize(
    ("current", "update", "apply", "reason"),
    [
        # terminal lock
        (state("canceled"), upd("new", ts=T1), False, "terminal_locked"),
        (state("filled", 10), upd("canceled", 10, T1), False, "terminal_locked"),
        (state("filled", 5), upd("filled", 10, T1), True, "newer_timestamp"),
        (state("filled", 5), upd("filled", 10, T0), True, "larger_fill"),
        (state("rejected"), upd("filled", 10, T1), False, "terminal_locked"),
        (state("filled", 0, None), upd("pending_new", 1, T0), False, "terminal_locked"),
        (state("filled", 5), upd("partially_filled", 8, T1), False, "terminal_locked"),
        (state("filled", 10), upd("filled", 10), False, "duplicate"),
        # the same terminal state from a stronger source: nothing to apply, nothing disagrees
        (state("filled", 10), upd("filled", 10, source=Source.RECONCILIATION), False, "duplicate"),
        (
            state("filled", 10),
            upd("filled", 9, source=Source.RECONCILIATION),
            False,
            "terminal_locked",
        ),
        # a status we ended locally (no broker timestamp) yields to the broker's first report
        (state("failed", ts=None), upd("new", 0, T0), True, "reopened_by_broker"),
        (state("canceled", ts=None, strength=3), upd("new", 0, T0), True, "reopened_by_broker"),
        (state("rejected", ts=None), upd("filled", 10, T1), True, "reopened_by_broker"),
        (state("blocked_kill_switch", ts=None), upd("canceled", 0, T0), True, "reopened_by_broker"),
        # ... but not to another local decision, and a fill is never a local guess
        (state("failed", ts=None), upd("submitted_unconfirmed", ts=None), False, "terminal_locked"),
        (state("filled", 5, None), upd("new", 0, T0), False, "terminal_locked"),
        # a local failed goes back to pending_new when the same request comes again
        (
            state("failed", ts=None),
            upd("pending_new", ts=None, source=Source.SUBMIT),
            True,
            "resend",
        ),
        (state("failed"), upd("pending_new", ts=None), False, "terminal_locked"),
        (state("canceled", ts=None), upd("pending_new", ts=None), False, "terminal_locked"),
        (state("failed", ts=None), upd("pending_new", 1, ts=None), False, "terminal_locked"),
        # timestamps
        (state("new"), upd("partially_filled", 5, T1), True, "newer_timestamp"),
        (state("partially_filled", 5, T1), upd("new", 0, T0), False, "older_timestamp"),
        (state("new", ts=None), upd("new", 0, T0), True, "first_broker_report"),
        # ties: rank, then fill, then source strength
        (state("new"), upd("partially_filled", 5), True, "higher_rank"),
        (state("partially_filled", 5), upd("new"), False, "lower_rank"),
        (state("partially_filled", 5), upd("partially_filled", 7), True, "larger_fill"),
        (state("partially_filled", 7), upd("partially_filled", 5), False, "smaller_fill"),
        (
            state("new", strength=1),
            upd("new", source=Source.RECONCILIATION),
            True,
            "stronger_source",
        ),
        (state("new", strength=2), upd("new", source=Source.STREAM), False, "duplicate"),
        (state("new", strength=2), upd("new", source=Source.MANUAL), True, "stronger_source"),
        # local decisions (no broker timestamp)
        (state("pending_new", ts=None), upd("submitted_unconfirmed", ts=None), True, "advanced"),
        (state("pending_new", ts=None), upd("rejected", ts=None), True, "advanced"),
        (state("submitted_unconfirmed", ts=None), upd("failed", ts=None), True, "advanced"),
        (state("new"), upd("submitted_unconfirmed", ts=None), False, "broker_already_reported"),
        (state("submitted_unconfirmed", ts=None), upd("pending_new", ts=None), False, "not_newer"),
    ],
)
def test_decide_table(current: OrderState, update: StatusUpdate, apply: bool, reason: str) -> None:
    assert decide(current, update) == Decision(apply, reason)


statuses = st.sampled_from([s.value for s in OrderStatus])
times = st.one_of(st.none(), st.integers(0, 5).map(lambda s: T0 + timedelta(seconds=s)))
updates = st.builds(
    StatusUpdate, statuses, st.integers(0, 100), times, st.sampled_from(list(Source))
)


def overrules_local_ending(current: OrderState, u: StatusUpdate) -> bool:
    """The ways out of a terminal state besides a larger fill on ``filled``: the broker's
    report on a local ending, a re-send of a local ``failed``."""
    local = current.broker_updated_at is None and current.status != "filled"
    if not (local and current.status in TERMINAL_STATUSES):
        return False
    resend = (current.status, u.status, u.filled_qty) == ("failed", "pending_new", 0)
    return u.broker_updated_at is not None or resend


@settings(max_examples=500)
@given(st.lists(updates, max_size=30))
def test_model_never_loses_fill_nor_leaves_terminal(seq: list[StatusUpdate]) -> None:
    current = OrderState("pending_new", 0, None, 0)
    for u in seq:
        after = apply_to_state(current, u)
        assert after.filled_qty >= current.filled_qty
        if overrules_local_ending(current, u):
            assert (after.status, after.broker_updated_at) == (u.status, u.broker_updated_at)
        elif current.status in TERMINAL_STATUSES and after != current:
            assert current.status == after.status == "filled"
            assert after.filled_qty > current.filled_qty
        current = after


local_updates = st.builds(
    StatusUpdate, statuses, st.just(0), st.none(), st.sampled_from(list(Source))
)


@settings(max_examples=300)
@given(st.lists(local_updates, max_size=8), updates.filter(lambda u: u.broker_updated_at))
def test_a_broker_report_always_wins_over_local_decisions(
    local: list[StatusUpdate], report: StatusUpdate
) -> None:
    """Whatever we decided without the broker, its first report is what the order says."""
    current = OrderState("pending_new", 0, None, 0)
    for u in local:
        current = apply_to_state(current, u)
    after = apply_to_state(current, report)
    if current.status == "filled":  # only reachable by a synthetic local "filled"
        return
    assert (after.status, after.broker_updated_at) == (report.status, report.broker_updated_at)
    assert after.filled_qty == max(current.filled_qty, report.filled_qty)

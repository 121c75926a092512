"""The gate rule (``reconciliation.gate.gate_evaluate``), a pure function: table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciliation.gate import gate_evaluate

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
MAX_AGE = timedelta(minutes=15)


@pytest.mark.parametrize(
    ("success", "start", "override", "is_open", "reason"),
    [
        (None, None, None, False, "no reconciliation"),
        (NOW - timedelta(minutes=1), None, None, True, "reconciled"),
        (NOW - timedelta(minutes=1), NOW - timedelta(minutes=2), None, True, "reconciled"),
        (NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), None, False, "process started"),
        (NOW - timedelta(minutes=16), None, None, False, "exceeds the maximum age"),
        (None, NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), True, "override"),
        (None, None, NOW - timedelta(minutes=16), False, "exceeds the maximum age"),
        (
            NOW - timedelta(minutes=3),
            NOW - timedelta(minutes=1),
            NOW - timedelta(minutes=2),
            False,
            "process started",
        ),
    ],
)
def test_gate_rule(
    success: datetime | None,
    start: datetime | None,
    override: datetime | None,
    is_open: bool,
    reason: str,
) -> None:
    verdict = gate_evaluate(
        last_success_at=success,
        last_process_start_at=start,
        override_at=override,
        now=NOW,
        max_age=MAX_AGE,
    )
    assert verdict.open is is_open
    assert reason in verdict.reason
    assert verdict.by_override == (is_open and override is not None and success is None)

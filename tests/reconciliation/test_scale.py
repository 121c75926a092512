"""10,000 orders: broker calls per run within ceil(N/500) + the probe cap, and a number of SQL
queries that does not grow with N (bulk reads and writes)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order
from reconciliation.engine import reconciliation_run
from reconciliation.models import ReconciliationState
from tests.helpers import mirror_orders

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


def measured_run(n: int) -> tuple[int, int, Any]:
    ReconciliationState.objects.update_or_create(
        pk=1, defaults={"high_water_mark": START - timedelta(seconds=1)}
    )
    with CaptureQueriesContext(connection) as queries:
        outcome = reconciliation_run(kind="periodic")
    assert outcome.succeeded, outcome.run.error_text
    return len(queries.captured_queries), outcome.run.broker_calls, outcome.run


@pytest.mark.slow
def test_queries_constant_and_broker_calls_bounded_up_to_10000_orders(
    paper: Any, trading_switches: None, settings: Any
) -> None:
    from orders.models import Position

    results = {}
    for n in (1000, 10_000):
        paper.reset(fill_model="immediate", random_walk=False)
        Order.objects.all().delete()
        Position.objects.all().delete()
        mirror_orders(paper, n, start=START)
        Position.objects.create(symbol="AAPL", qty=n)
        results[n] = measured_run(n)
    (q_small, calls_small, _), (q_big, calls_big, run) = results[1000], results[10_000]
    assert run.orders_checked == 10_000
    assert (run.orders_updated, run.orphans_found, run.position_mismatches) == (0, 0, 0)
    assert q_big == q_small, (q_small, q_big)
    assert calls_big <= math.ceil(10_000 / 500) + settings.RECONCILIATION_PROBE_LIMIT
    assert calls_small <= math.ceil(1000 / 500) + settings.RECONCILIATION_PROBE_LIMIT

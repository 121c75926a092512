"""What one order costs the database: POST /api/v1/orders through the real HTTP test client,
counted with CaptureQueriesContext, so a query added to the submit path fails here instead of
slowing every order silently (issue 14, point 8: it was 24)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.helpers import place

pytestmark = pytest.mark.django_db

# The steady state (the symbol's risk row and position exist, the asset list is loaded):
#  1 token + its strategy (one join)           12 quarantine
#  2 the order by client_order_id (200?)       13 INSERT the order, claimed for sending
#  3 the asset (cached list)                   -- COMMIT, then the broker call
#  4 the ADV (fat-finger share of volume)      14 apply the answer: lock the order row
#  5 the gate (closed: ask the broker first)   15   the CAS UPDATE
#  6 LOCK the symbol's risk row (its limits)   16   lock the position
#  7 the global row: limits, fat-finger        17   move it by the fill
#  8 position + working orders (UNION ALL)     18   the OrderEvent
#  9 both trading switches                     -- COMMIT
# 10 orphans' exposure                         19 the order as it is now (the response)
# 11 the gate again, under the lock
# (24 before issue 14; the fat-finger check added 2 since, of which the thresholds now come
# with the global limits.)
SUBMIT_QUERIES = 19


def statements(ctx: CaptureQueriesContext) -> list[str]:
    """The queries a production request sends (the test's transaction turns the submit's
    transactions into savepoints, which production does not have)."""
    return [
        q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]


def test_placing_an_order_costs_a_fixed_number_of_queries(paper: Any, trader: Any) -> None:
    assert place(trader, qty=1).status_code == 201  # first order of AAPL: rows created
    with CaptureQueriesContext(connection) as ctx:
        response = place(trader, qty=2)
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "filled"
    sql = statements(ctx)
    assert len(sql) == SUBMIT_QUERIES, "\n".join(s[:160] for s in sql)
    # The invariants the cut kept: the symbol lock before the checks, the insert after them.
    lock = next(i for i, s in enumerate(sql) if s.endswith("FOR UPDATE") and "risklimit" in s)
    insert = next(i for i, s in enumerate(sql) if s.startswith('INSERT INTO "orders_order"'))
    assert lock < insert
    assert sum('"orders_tradingswitch"' in s for s in sql) == 1
    assert not any('FROM "orders_strategy"' in s for s in sql[1:])  # the token's strategy


def test_the_idempotent_replay_stops_after_the_lookup(paper: Any, trader: Any) -> None:
    assert place(trader, qty=3).status_code == 201
    with CaptureQueriesContext(connection) as ctx:
        response = place(trader, qty=3)
    assert response.status_code == 200
    assert len(statements(ctx)) == 2  # the token, the order by its client_order_id

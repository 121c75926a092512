"""One reconciliation at a time across processes/nodes: a PostgreSQL advisory lock."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from reconciliation.models import ReconciliationRun
from tests.helpers import reconcile

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_reconcilers_started_together_one_runs_one_skips(
    paper: Any, trading_switches: None
) -> None:
    # The broker answers the first positions call slowly, so whichever run takes the lock
    # still holds it when the other one asks.
    paper.add_fault(method="GET", path="/v2/positions", mode="slow", delay=0.6, count=1)
    barrier = threading.Barrier(2)
    outputs: list[str] = []

    def reconciler() -> None:
        barrier.wait()
        try:
            output = reconcile()
        finally:
            connection.close()
        outputs.append(output)

    threads = [threading.Thread(target=reconciler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(outputs) == 2
    assert sum("skipped: another reconciliation holds the lock" in o for o in outputs) == 1
    assert sum("run succeeded" in o for o in outputs) == 1
    assert ReconciliationRun.objects.filter(status="succeeded").count() == 1
    # the lock was released: the next run goes through
    reconcile()
    assert ReconciliationRun.objects.filter(status="succeeded").count() == 2

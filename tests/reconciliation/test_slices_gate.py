"""TWAP slices and the gate: a dispatcher's start closes the gate, its slices wait (deferred,
not failed) until the startup reconciliation, which also runs slice recovery; then they go.
A quarantine appearing after the plan was made holds its remaining slices."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from reconciliation.models import ReconciliationRun
from tests.helpers import metric, reconcile, wait_for
from tests.orders.twap_support import (
    make_plan,
    posts_by_coid,
    reconcile_startup,
    run_once,
    statuses,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dispatcher_start_holds_its_slices_until_the_startup_reconciliation(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.TWAP_DISPATCH_RETRY_SECONDS = 0.2
    # two slices, both due (40 s and 10 s ago: inside the misfire grace)
    plan = make_plan(start=timezone.now() - timedelta(seconds=40), qty=2, interval_seconds=30)
    deferred = metric("twap_slices_total", outcome="deferred_gated")
    errors: list[BaseException] = []

    def job_cluster() -> None:
        try:
            wait_for(
                lambda: metric("twap_slices_total", outcome="deferred_gated") > deferred, timeout=10
            )
            assert posts_by_coid(paper) == {}  # nothing left while gated
            reconcile_startup()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    helper = threading.Thread(target=job_cluster)
    helper.start()
    out = StringIO()
    call_command("run_slices", "--until-idle", "--seconds", "20", stdout=out)
    helper.join(10)
    assert not errors, errors
    assert statuses(plan) == {"filled": 2}
    assert ReconciliationRun.objects.filter(kind="startup", status="succeeded").count() == 2
    assert "deferred_gated" in out.getvalue()


def test_a_quarantine_after_the_plan_holds_its_remaining_slices(
    paper: Any, trader: Any, start_not_gating: None, settings: Any
) -> None:
    settings.TWAP_DISPATCH_RETRY_SECONDS = 0
    plan = make_plan(start=timezone.now() - timedelta(seconds=5), qty=2, interval_seconds=30)
    paper.place_order("AAPL", 1, "sell", type="limit", limit_price="500.00", time_in_force="gtc")
    reconcile()  # finds the orphan: *:AAPL
    assert "deferred_quarantined" in run_once()
    assert statuses(plan) == {"pending_new": 2}
    assert posts_by_coid(paper) == {}

"""Every way a reconciliation run can go wrong ends it ``failed`` with the error recorded, the
advisory lock released and the failure counted: a real database error (a lock timeout), an
unexpected exception in the job cluster's task, and a run whose process was killed."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django_q.tasks import async_task

from orders.models import Position
from reconciliation.models import ReconciliationRun, ReconciliationState
from tests.helpers import metric, place, reconcile, wait_for
from tests.orders.twap_support import start_manage

pytestmark = pytest.mark.django_db(transaction=True)


def failed_runs(cause: str) -> float:
    return metric("reconciliation_run_errors_total", cause=cause)


def test_a_database_error_during_a_run_ends_it_failed_and_releases_the_lock(
    trader: Any, paper: Any
) -> None:
    assert place(trader).status_code == 201  # a position row for the run to lock
    held, release = threading.Event(), threading.Event()

    def hold_position_row() -> None:
        try:
            with transaction.atomic():
                Position.objects.select_for_update().get(symbol="AAPL")
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_position_row)
    holder.start()
    assert held.wait(10)
    before = (
        failed_runs("unexpected"),
        metric("reconciliation_runs_total", kind="manual", outcome="failed"),
    )
    with connection.cursor() as cursor:  # this session gives up waiting for a row lock
        cursor.execute("SET lock_timeout = '200ms'")
    try:
        reconcile()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        release.set()
        holder.join(10)
    run = ReconciliationRun.objects.get(kind="manual")
    assert run.status == "failed"
    assert run.finished_at is not None
    assert "lock timeout" in run.error_text
    state = ReconciliationState.objects.get()
    assert (state.last_run_status, state.last_error) == ("failed", run.error_text)
    assert failed_runs("unexpected") == before[0] + 1
    assert metric("reconciliation_runs_total", kind="manual", outcome="failed") == before[1] + 1
    # the advisory lock was released: the next run is not skipped, and succeeds
    assert "run succeeded" in reconcile()


def test_an_unexpected_exception_in_the_job_ends_the_run_failed(
    trading_ready: None, paper: Any, q_sync: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_diff(**kwargs: Any) -> Any:
        raise RuntimeError("diff exploded")

    # The one injected fault: an internal defect (the broker is never mocked).
    monkeypatch.setattr("reconciliation.engine.diff_orders", broken_diff)
    before = failed_runs("unexpected")
    async_task("reconciliation.tasks.reconcile", kind="periodic")
    run = ReconciliationRun.objects.get(kind="periodic")
    assert (run.status, run.error_text) == ("failed", "RuntimeError: diff exploded")
    assert failed_runs("unexpected") == before + 1
    monkeypatch.undo()
    assert "run succeeded" in reconcile()  # the lock is free


def test_a_run_whose_process_was_killed_is_closed_by_the_next_run(
    trading_ready: None, paper: Any
) -> None:
    # The broker answers the positions call late: the run is still going when it is killed.
    paper.add_fault(method="GET", path="/v2/positions", mode="slow", delay=30, count=1)
    proc = start_manage(paper, "reconcile", "--once", ALPACA_HTTP_TIMEOUT_SECONDS="60")
    try:
        wait_for(lambda: ReconciliationRun.objects.filter(status="running").exists(), timeout=30)
        wait_for(lambda: paper.requests(method="GET", path="/v2/positions"), timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    paper.clear_faults()
    before = failed_runs("abandoned")
    assert "run succeeded" in reconcile()
    killed = ReconciliationRun.objects.exclude(status="succeeded").get()
    assert killed.status == "failed"
    assert killed.error_text.startswith("abandoned")
    assert failed_runs("abandoned") == before + 1

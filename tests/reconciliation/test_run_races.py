"""A reconciliation run races everything else: the stream applying fills between the run's
broker reads and its writes, an operator's force-complete during the run, a startup run that
finds another run holding the lock. Plus the probe budget under an active TWAP plan, the diff's
purity, and an adopted orphan's source strength."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from orders import hooks
from orders.models import Order, Position, Strategy
from orders.status import SOURCE_STRENGTH, Source
from orders.updates import apply_broker_report
from reconciliation import engine, tasks
from reconciliation.engine import RunOutcome, reconciliation_run, run_lock
from reconciliation.gate import gate_verdict, process_start_record, reconciliation_force_complete
from reconciliation.models import OrphanOrder, PositionMismatch, ReconciliationState
from reconciliation.services import orphan_adopt
from tests.helpers import place, reconcile, step_up_of, totp_now, wait_for
from tests.orders.twap_support import make_plan
from tradeops import locks
from tradeops.broker import get_broker

pytestmark = pytest.mark.django_db(transaction=True)


class RunInThread:
    """A reconciliation run in its own thread (and database connection), as on another node."""

    def __init__(self, kind: str = "periodic") -> None:
        self.outcome: RunOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(kind,))
        self.thread.start()

    def _run(self, kind: str) -> None:
        try:
            self.outcome = reconciliation_run(kind=kind)
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def join(self) -> RunOutcome:
        self.thread.join(30)
        assert self.error is None, repr(self.error)
        assert self.outcome is not None
        return self.outcome


def run_held_at_last_read(paper: Any, settings: Any) -> RunInThread:
    """Start a run and return once it has read the broker's positions and orders; the answers
    of its two order listings (open, then all since the high-water mark; computed on arrival)
    are held back 1.5 s each, so whatever the test does next happens between the run's broker
    reads and its database writes."""
    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 5.0
    paper.clear_requests()
    paper.add_fault(method="GET", path="/v2/orders", mode="delay_after_commit", delay=1.5, count=2)
    run = RunInThread()
    wait_for(lambda: len(paper.requests(method="GET", path="/v2/orders")) == 2, timeout=10)
    return run


def resting_with_stream_fill_during_run(paper: Any, trader: Any, settings: Any) -> RunInThread:
    """A resting 10-share buy silently fills 4 (the run will read that), then, while the run
    is between its reads and writes, fills the other 6 and the stream applies the fill."""
    body = place(trader, type="limit", limit_price="50.00", time_in_force="gtc")
    assert body.status_code == 201, body.json()
    broker_order_id = body.json()["broker_order_id"]
    paper.fill(broker_order_id, qty=4, price="50.00", silent=True)
    run = run_held_at_last_read(paper, settings)
    paper.fill(broker_order_id, price="50.00", silent=True)
    newer = get_broker().get_order(broker_order_id)
    assert apply_broker_report(newer, Source.STREAM).applied
    return run


@pytest.fixture
def succeeded_signals() -> Iterator[list[dict]]:
    sent: list[dict] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    hooks.reconciliation_succeeded.connect(receiver, dispatch_uid="test-run-races")
    yield sent
    hooks.reconciliation_succeeded.disconnect(dispatch_uid="test-run-races")


def test_a_fill_the_stream_applied_first_is_not_counted_and_the_run_still_succeeds(
    paper: Any, trader: Any, settings: Any, succeeded_signals: list[dict]
) -> None:
    outcome = resting_with_stream_fill_during_run(paper, trader, settings).join()
    assert outcome.succeeded
    run = outcome.run
    assert outcome.diff.updates  # the broker's older report was offered and lost the CAS
    assert (run.orders_updated, run.fills_corrected, run.conflicts_skipped) == (0, 0, 1)
    order = Order.objects.get()
    assert (order.status, order.filled_qty) == ("filled", 10)
    assert [s["run_id"] for s in succeeded_signals] == [run.pk]
    assert ReconciliationState.objects.get().last_success_at == run.started_at


def test_a_fill_the_stream_applied_first_with_the_same_report_is_no_conflict(
    paper: Any, trader: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by bench/fault_soak.py: the run read an unconfirmed order as filled, the stream
    # applied that same fill before the run's write, and the run's identical report was
    # counted as a conflict (reconciliation_conflicts_skipped) with a warning.
    body = place(trader, type="limit", limit_price="50.00", time_in_force="gtc")
    assert body.status_code == 201, body.json()
    broker_order_id = body.json()["broker_order_id"]
    paper.fill(broker_order_id, price="50.00", silent=True)
    run = run_held_at_last_read(paper, settings)
    report = get_broker().get_order(broker_order_id)
    assert apply_broker_report(report, Source.STREAM).applied
    outcome = run.join()
    assert outcome.succeeded
    assert (outcome.run.orders_updated, outcome.run.conflicts_skipped) == (0, 0)
    assert "could not apply" not in caplog.text
    assert Order.objects.get().status == "filled"


def test_a_position_the_stream_moved_during_the_run_is_left_for_the_next_run(
    paper: Any, trader: Any, settings: Any
) -> None:
    outcome = resting_with_stream_fill_during_run(paper, trader, settings).join()
    assert outcome.succeeded
    # The broker's figure (4) predates the stream's fill (10): neither compared nor written.
    assert Position.objects.get(symbol="AAPL").qty == 10
    assert outcome.run.position_mismatches == 0
    assert not PositionMismatch.objects.exists()
    reconcile()  # the next run compares it: in step
    assert Position.objects.get(symbol="AAPL").qty == 10
    assert not PositionMismatch.objects.exists()


def test_a_silent_fill_between_the_runs_broker_reads_is_no_position_drift(
    paper: Any, trader: Any, settings: Any
) -> None:
    # A resting order fills at the broker while a run is between reading the broker's orders
    # and its positions, with no stream event (the stream consumer is down). The run must not
    # report that as drift, and the database position must never count the fill twice.
    body = place(trader, type="limit", limit_price="50.00", time_in_force="gtc")
    assert body.status_code == 201, body.json()
    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 5.0
    paper.clear_requests()
    paper.add_fault(method="GET", path="/v2/positions", mode="slow", delay=1.5, count=1)
    run = RunInThread()
    wait_for(lambda: paper.requests(method="GET", path="/v2/positions"), timeout=10)
    paper.fill(body.json()["broker_order_id"], price="50.00", silent=True)
    assert run.join().succeeded
    positions = []
    for _ in range(3):  # the runs after it settle the order
        reconcile()
        positions.append(Position.objects.get(symbol="AAPL").qty)
    assert Order.objects.get().status == "filled"
    assert positions == [10, 10, 10]
    assert not PositionMismatch.objects.exists()


def test_a_run_that_started_before_a_force_complete_keeps_the_override(
    paper: Any, trading_ready: None, settings: Any, ops_user: Any
) -> None:
    run = run_held_at_last_read(paper, settings)
    process_start_record(kind="dispatcher")  # gate closed: the run started before this
    reconciliation_force_complete(
        actor=ops_user,
        reason="verified the account by hand",
        otp_token=totp_now(ops_user.totpdevice_set.get()),
    )
    assert run.join().succeeded
    state = ReconciliationState.objects.get()
    assert state.override_active
    assert state.last_success_at < state.last_process_start_at < state.override_at
    verdict = gate_verdict()
    assert verdict.open and verdict.by_override
    reconcile()  # a run that starts after the override ends it
    assert not ReconciliationState.objects.get().override_active
    assert gate_verdict().reason == "reconciled"


@pytest.fixture
def lock_elsewhere() -> Iterator[threading.Event]:
    """Another node holds the reconciliation lock until the returned event is set."""
    release, held = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with run_lock() as acquired:
                assert acquired
                held.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    yield release
    release.set()
    thread.join(10)


@pytest.fixture
def lock_tries(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each attempt of this thread's run to take the lock got (the real attempts)."""
    tries: list[bool] = []
    real_try, me = locks._lock_try, threading.get_ident()

    def recording_try(key: int) -> bool:
        got = real_try(key)
        if threading.get_ident() == me and key == engine.ADVISORY_LOCK_KEY:  # not another node's
            tries.append(got)
        return got

    monkeypatch.setattr(locks, "_lock_try", recording_try)
    return tries


def test_a_startup_run_waits_for_the_run_holding_the_lock(
    paper: Any, trading_switches: None, lock_elsewhere: threading.Event, lock_tries: list[bool]
) -> None:
    assert reconciliation_run(kind="manual").skipped  # an operator just retries: no wait
    assert lock_tries == [False]
    lock_tries.clear()

    def release_once_refused_twice() -> None:
        # The other node finishes only after the startup run has been refused twice: it must
        # have waited, not given up (no timer standing in for "a while").
        wait_for(lambda: lock_tries.count(False) >= 2, timeout=10, interval=0.01)
        lock_elsewhere.set()

    releaser = threading.Thread(target=release_once_refused_twice)
    releaser.start()
    result = tasks.reconcile(kind="startup")
    releaser.join(10)
    assert "skipped" not in result and result["status"] == "succeeded"
    assert lock_tries[:2] == [False, False] and lock_tries[-1] is True
    assert gate_verdict().open


def test_a_startup_run_gives_up_waiting_after_the_run_timeout(
    paper: Any,
    trading_switches: None,
    settings: Any,
    lock_elsewhere: threading.Event,
    lock_tries: list[bool],
) -> None:
    settings.RECONCILIATION_TIMEOUT_SECONDS = 1
    started = time.monotonic()
    assert reconciliation_run(kind="stream").skipped
    assert time.monotonic() - started >= 1  # it waited the whole timeout...
    assert len(lock_tries) > 1 and not any(lock_tries)  # ...asking again and again, in vain
    assert ReconciliationState.objects.get_or_create(pk=1)[0].last_success_at is None


def test_unsent_twap_slices_do_not_use_up_the_probe_budget(
    paper: Any, trader: Any, settings: Any
) -> None:
    plan = make_plan(start=timezone.now(), qty=6, interval_seconds=10)
    assert Order.objects.filter(plan=plan, status="pending_new").count() == 6
    paper.add_fault(method="POST", path="/v2/orders", mode="timeout", count=1, delay=2)
    assert place(trader).status_code == 202  # never reached the broker
    lost = Order.objects.get(plan__isnull=True)
    settings.RECONCILIATION_PROBE_LIMIT = 2
    settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = 0
    paper.clear_requests()
    reconcile()
    probed = paper.requests(method="GET", path="/v2/orders:by_client_order_id")
    assert [r["client_order_id"] for r in probed] == [lost.client_order_id]
    lost.refresh_from_db()
    assert lost.status == "failed"
    assert Order.objects.filter(plan=plan, status="pending_new").count() == 6


def test_the_diff_imports_no_broker_client() -> None:
    code = (
        "import sys, reconciliation.diff\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('alpaca', 'django') "
        "or m == 'tradeops.broker')\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_adopted_orphan_carries_the_manual_source_strength(
    paper: Any, trading_ready: None, ops_user: Any
) -> None:
    paper.place_order("MSFT", 7, "buy", type="limit", limit_price="100.00", time_in_force="gtc")
    reconcile()
    strategy = Strategy.objects.get_or_create(id="alpha")[0]
    order = orphan_adopt(
        orphan=OrphanOrder.objects.get(),
        strategy=strategy,
        actor=ops_user,
        reason="our hedge",
        step_up=step_up_of(ops_user, "orphan.adopt"),
    )
    event = order.events.get()
    assert event.source == Source.MANUAL
    assert order.source_strength == SOURCE_STRENGTH[Source.MANUAL]

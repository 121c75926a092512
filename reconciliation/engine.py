"""One reconciliation run: ask the broker, diff, apply (DESIGN §4, plan §3).

Per run, in this order:
1. broker (no transaction open): all positions; open orders; ``status=all`` orders
   submitted since the high-water mark minus the overlap, paged without gaps; single lookups
   (bounded) for non-terminal database orders neither listing showed;
2. database reads in a constant number of queries, whatever the number of orders;
3. ``diff_orders`` (pure) says what differs;
4. writes: changed orders through ``orders.bulk_updates.apply_order_updates`` (set-based: one
   conditional UPDATE over a VALUES list and one event insert per 1,000 orders, with the
   compare-and-swap of ``apply_order_update``), orphans and their quarantines in bulk,
   position mismatches corrected, state (last success, high-water mark) last.

Only one run at a time across all nodes: a PostgreSQL session advisory lock (no-op on SQLite,
where the demo runs a single job cluster). A ``startup`` or ``stream`` run that finds it taken
waits for it (bounded); ``manual`` and ``periodic`` runs are skipped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from orders import hooks
from orders.bulk_updates import OrderUpdate, apply_order_updates
from orders.models import Order, Position
from orders.status import REOPENED, OrderStatus, Source
from reconciliation.diff import (
    DbOrder,
    OrdersDiff,
    diff_orders,
    diff_positions,
    listing_window_start,
    stale_order_probes,
)
from reconciliation.models import (
    OrphanOrder,
    PositionMismatch,
    ReconciliationRun,
    ReconciliationState,
)
from reconciliation.services import orphans_auto_cancel, orphans_record
from tradeops import metrics
from tradeops.broker import (
    Broker,
    BrokerError,
    BrokerNotFound,
    OrderReport,
    PositionReport,
    get_broker,
)
from tradeops.locks import advisory_lock
from tradeops.lookups import AnyOf

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x7472_6F70_7265_636E  # "tropreconc": one key for every node
# Kinds that must not be dropped when another run holds the lock: they were asked for because a
# process started (or a stream reconnected) and only a run that STARTS after that moment reopens
# the gate (and, for ``startup``, triggers TWAP recovery). The run holding the lock may have
# started before it; skipping would leave the gate closed until the next periodic run.
LOCK_WAITING_KINDS = frozenset({"startup", "stream"})
INITIAL_LOOKBACK = timedelta(days=1)
DB_FIELDS = (
    "client_order_id",
    "broker_order_id",
    "status",
    "filled_qty",
    "origin",
    "created_at",
    "send_claimed_at",
)
TIMING = DB_FIELDS.index("created_at")  # the fields from here on are read for open orders only


@dataclass
class RunOutcome:
    run: ReconciliationRun | None
    skipped: bool = False
    diff: OrdersDiff | None = None

    @property
    def succeeded(self) -> bool:
        return self.run is not None and self.run.status == ReconciliationRun.Status.SUCCEEDED


def run_lock(*, wait_seconds: float = 0) -> contextlib.AbstractContextManager[bool]:
    """The reconciliation's advisory lock (``tradeops.locks``): one run at a time, every node."""
    return advisory_lock(ADVISORY_LOCK_KEY, name="reconciliation", wait_seconds=wait_seconds)


def state_get() -> ReconciliationState:
    state, _ = ReconciliationState.objects.get_or_create(pk=1)
    return state


def reconciliation_run(*, kind: str, dry_run: bool = False) -> RunOutcome:
    """Run one reconciliation. If another node is running one, a ``manual`` or ``periodic`` run
    is ``skipped`` at once (the caller retries, the next period comes); a ``startup`` or
    ``stream`` run waits for it up to RECONCILIATION_TIMEOUT_SECONDS (what a run may take),
    then runs, and is ``skipped`` only if the lock is still held then."""
    wait = settings.RECONCILIATION_TIMEOUT_SECONDS if kind in LOCK_WAITING_KINDS else 0
    with run_lock(wait_seconds=wait) as acquired:
        if not acquired:
            log = logger.error if wait else logger.info
            log("reconciliation (%s) skipped: another run holds the lock", kind)
            metrics.RECONCILIATION_RUNS.labels(kind, "skipped").inc()
            return RunOutcome(None, skipped=True)
        return _run(kind, dry_run)


@dataclass
class _Fetched:
    broker_orders: dict[str, OrderReport]
    probed_missing: set[str]
    positions: list[PositionReport]
    positions_at: datetime
    db_orders: dict[str, DbOrder]
    known_orphan_ids: set[str]
    high_water_mark: datetime | None


def _run(kind: str, dry_run: bool) -> RunOutcome:
    """One run under the lock. Whatever goes wrong ends it ``failed`` with the error recorded:
    a run left ``running`` would look in progress forever and hide why the gate stays shut."""
    state = state_get()
    started = timezone.now()
    _abandoned_runs_close(now=started)
    run = ReconciliationRun.objects.create(
        kind=kind,
        dry_run=dry_run,
        started_at=started,
        high_water_mark_before=state.high_water_mark,
    )
    broker = get_broker()
    calls_before = broker.requests_sent
    clock = time.monotonic()
    try:
        fetched = _fetch(broker, state, started)
        diff = diff_orders(
            db_orders=fetched.db_orders,
            broker_orders=fetched.broker_orders,
            probed_missing=fetched.probed_missing,
            known_orphan_ids=fetched.known_orphan_ids,
            now=started,
            grace=timedelta(seconds=settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS),
        )
        run.orders_checked = diff.checked
        if not dry_run:
            _apply(run, diff, fetched)
        run.broker_calls = broker.requests_sent - calls_before
        _finish(run, state, diff, fetched, dry_run, elapsed=time.monotonic() - clock)
    except Exception as exc:  # every failure, expected or not, ends the run (module docstring)
        return _fail(run, state, exc, broker.requests_sent - calls_before)
    if not dry_run:
        _after_success(run, diff)
    return RunOutcome(run, diff=diff)


def _abandoned_runs_close(*, now: datetime) -> None:
    """Runs still ``running`` while this one holds the lock were abandoned: their process died
    (SIGKILL, OOM, lost database) before it could record an outcome. Only on PostgreSQL,
    where the lock makes that certain; SQLite (the demo) has no cross-process lock."""
    if connection.vendor != "postgresql":
        return
    closed = ReconciliationRun.objects.filter(status=ReconciliationRun.Status.RUNNING).update(
        status=ReconciliationRun.Status.FAILED,
        finished_at=now,
        errors=F("errors") + 1,
        error_text="abandoned: the process running it ended before recording an outcome",
    )
    if closed:
        metrics.RECONCILIATION_RUN_ERRORS.labels("abandoned").inc(closed)
        logger.error("reconciliation: %d abandoned run(s) marked failed", closed)


def _fetch(broker: Broker, state: ReconciliationState, now: datetime) -> _Fetched:
    # Positions first, then orders: a fill between the two reads is then in the orders the run
    # applies, which moves the database position after ``positions_at`` and so leaves it for
    # the next run's comparison. Read the other way round, the fill was in the broker's
    # position but not in the orders: false drift, "corrected", then counted again when the
    # fill was applied (tests/reconciliation/test_run_races.py).
    positions_at = timezone.now()  # before the request: the broker's figure is at least this new
    positions = broker.get_positions()
    page = settings.RECONCILIATION_PAGE_SIZE
    listed: dict[str, OrderReport] = {}
    for batch in broker.iter_orders(status="open", page_size=page):
        listed.update((o.client_order_id, o) for o in batch)
    after = listing_window_start(
        high_water_mark=state.high_water_mark,
        now=now,
        overlap=timedelta(seconds=settings.RECONCILIATION_OVERLAP_SECONDS),
        lookback=INITIAL_LOOKBACK,
    )
    hwm = state.high_water_mark
    for batch in broker.iter_orders(status="all", after=after, page_size=page):
        for o in batch:
            listed[o.client_order_id] = o
            hwm = o.submitted_at if hwm is None or o.submitted_at > hwm else hwm
    # One query (one snapshot: an order changing state in between is not lost): the listed
    # ids as one array parameter, plus every open order; tuples, not dicts; the timing only
    # for open orders (it decides nothing for the others, and parsing two timestamps a row
    # was a third of the read at 10,000 orders).
    open_only = {f: Case(When(is_terminal=False, then=F(f))) for f in DB_FIELDS[TIMING:]}
    rows = (
        Order.objects.filter(AnyOf(F("client_order_id"), list(listed)) | Q(is_terminal=False))
        .annotate(**{f"{f}_if_open": expr for f, expr in open_only.items()})
        .values_list(*DB_FIELDS[:TIMING], *(f"{f}_if_open" for f in open_only))
    )
    db_orders = {row[0]: DbOrder(*row) for row in rows}
    probes = stale_order_probes(
        [o for o in db_orders.values() if not o.is_terminal],
        listed=set(listed),
        limit=settings.RECONCILIATION_PROBE_LIMIT,
    )
    missing: set[str] = set()
    for coid in probes:
        try:
            listed[coid] = broker.get_order_by_client_id(coid)
        except BrokerNotFound:
            missing.add(coid)
    unknown = [o.broker_order_id for c, o in listed.items() if c not in db_orders]
    known = set(
        OrphanOrder.objects.filter(broker_order_id__in=unknown).values_list(
            "broker_order_id", flat=True
        )
    )
    return _Fetched(listed, missing, positions, positions_at, db_orders, known, hwm)


def _apply(run: ReconciliationRun, diff: OrdersDiff, fetched: _Fetched) -> None:
    # Counted from what was applied, not from the diff: between the fetch and here the stream
    # may have applied a newer report, and the compare-and-swap then skips this older one.
    unconfirmed = set(diff.unconfirmed_found)
    reopened: list[str] = []
    never_sent = "not found at the broker after the grace period: never submitted"
    offered = [OrderUpdate.of_report(r, note="reconciliation") for r in diff.updates]
    offered += [
        OrderUpdate(c, OrderStatus.FAILED, 0, None, None, note=never_sent) for c in diff.mark_failed
    ]
    results = apply_order_updates(offered, source=Source.RECONCILIATION)
    for report, result in zip(diff.updates, results[: len(diff.updates)], strict=True):
        if result.applied:
            run.orders_updated += 1
            run.fills_corrected += int(result.fill_delta > 0)
            run.unconfirmed_resolved += int(report.client_order_id in unconfirmed)
            if result.reason == REOPENED:  # we had ended it locally; the broker has it
                reopened.append(report.client_order_id)
        elif result.reason not in ("duplicate",):
            run.conflicts_skipped += 1
            logger.warning(
                "reconciliation could not apply %s %s: %s",
                report.client_order_id,
                report.status,
                result.reason,
            )
    run.marked_failed += sum(r.applied for r in results[len(diff.updates) :])
    for coid, ours, theirs in diff.id_conflicts:
        run.conflicts_skipped += 1
        logger.error(
            "client_order_id %s: database has broker order %s, broker reports %s",
            coid,
            ours,
            theirs,
        )
    run.summary["reopened"] = reopened
    run.orphans_found = orphans_record(diff.new_orphans, diff.known_orphans, now=run.started_at)
    run.position_mismatches = _positions_sync(run, fetched.positions, fetched.positions_at)
    if settings.ORPHAN_AUTO_CANCEL_SECONDS:
        orphans_auto_cancel(older_than=settings.ORPHAN_AUTO_CANCEL_SECONDS)


def _positions_sync(
    run: ReconciliationRun, broker_positions: list[PositionReport], fetched_at: datetime
) -> int:
    """Compare after the fills were applied; the broker's figure wins and is recorded.

    A symbol whose database position moved after the broker's positions were asked for is
    left alone (not compared, not counted): a fill applied meanwhile (by the stream, or by this
    run) may or may not be in the broker's figure, so overwriting could erase it or count it
    twice. The next run compares it again."""
    now = timezone.now()
    with transaction.atomic():
        # Locked: a fill on a held symbol applied from now on waits, then moves the new figure.
        rows = list(Position.objects.select_for_update().values_list("symbol", "qty", "updated_at"))
        moved = {s for s, _, updated_at in rows if updated_at > fetched_at}
        db_qty = {s: q for s, q, _ in rows if q and s not in moved}
        broker_qty = {p.symbol: p.qty for p in broker_positions if p.qty and p.symbol not in moved}
        by_symbol = {p.symbol: p for p in broker_positions}
        mismatches = diff_positions(db_positions=db_qty, broker_positions=broker_qty)
        PositionMismatch.objects.bulk_create(
            PositionMismatch(
                run=run,
                symbol=m.symbol,
                db_qty=m.db_qty,
                broker_qty=m.broker_qty,
                corrected=True,
                detected_at=now,
            )
            for m in mismatches
        )
        for m in mismatches:
            report = by_symbol.get(m.symbol)
            Position.objects.update_or_create(
                symbol=m.symbol,
                defaults={
                    "qty": m.broker_qty,
                    "avg_entry_price": report.avg_entry_price if report else None,
                    "updated_at": now,
                },
            )
        Position.objects.exclude(symbol__in=moved).update(synced_at=now)
    if moved:
        logger.info("positions moved during the run, compared next run: %s", sorted(moved))
    for m in mismatches:
        logger.warning(
            "position mismatch %s: database %s, broker %s (corrected)",
            m.symbol,
            m.db_qty,
            m.broker_qty,
        )
    return len(mismatches)


def _finish(
    run: ReconciliationRun,
    state: ReconciliationState,
    diff: OrdersDiff,
    fetched: _Fetched,
    dry_run: bool,
    *,
    elapsed: float,
) -> None:
    finished = timezone.now()
    run.status = ReconciliationRun.Status.SUCCEEDED
    run.finished_at = finished
    run.summary = {
        **run.summary,
        "updates": [o.client_order_id for o in diff.updates][:100],
        "marked_failed": diff.mark_failed[:100],
        "new_orphans": [o.broker_order_id for o in diff.new_orphans][:100],
        "id_conflicts": diff.id_conflicts[:20],
    }
    if elapsed > settings.RECONCILIATION_TIMEOUT_SECONDS:
        logger.critical(
            "reconciliation took %.1fs (> %ss)", elapsed, settings.RECONCILIATION_TIMEOUT_SECONDS
        )
    if dry_run:
        run.save()
        return
    run.high_water_mark_after = fetched.high_water_mark
    with transaction.atomic():
        run.save()
        # Conditional: a run that started before an override or a newer success must not
        # move the state backwards.
        ReconciliationState.objects.filter(
            Q(last_success_at__isnull=True) | Q(last_success_at__lt=run.started_at), pk=state.pk
        ).update(
            last_success_at=run.started_at,
            last_run_at=finished,
            last_run_status=run.status,
            last_error="",
            high_water_mark=fetched.high_water_mark,
            # An override given while this run was going stays: this run's success is older.
            override_active=Case(
                When(override_at__gte=run.started_at, then=F("override_active")),
                default=Value(False),
            ),
        )


def _after_success(run: ReconciliationRun, diff: OrdersDiff) -> None:
    """Metrics and listeners (TWAP recovery) of a run whose success is committed: nothing here
    may turn it into a failure, so errors are logged, never raised."""
    try:
        _observe(run, diff)
    except Exception:
        logger.exception("reconciliation run %s: metrics not recorded", run.pk)
    for receiver, result in hooks.reconciliation_succeeded.send_robust(
        sender=reconciliation_run, kind=run.kind, run_id=run.pk
    ):
        if isinstance(result, Exception):
            logger.error("after reconciliation run %s: %s failed: %r", run.pk, receiver, result)


def _inc(counter: Any, amount: int) -> None:
    """A prometheus counter raises on a negative increment: after the state is saved that
    would turn a successful run into a failed task."""
    if amount > 0:
        counter.inc(amount)


def _observe(run: ReconciliationRun, diff: OrdersDiff) -> None:
    mismatch = metrics.RECONCILIATION_MISMATCHES
    _inc(mismatch.labels("order_status"), run.orders_updated - run.fills_corrected)
    _inc(mismatch.labels("fill"), run.fills_corrected)
    _inc(mismatch.labels("orphan"), len(diff.new_orphans))
    _inc(mismatch.labels("never_submitted"), run.marked_failed)
    _inc(mismatch.labels("reopened"), len(run.summary.get("reopened", [])))
    _inc(mismatch.labels("position"), run.position_mismatches)
    _inc(metrics.RECONCILIATION_CONFLICTS_SKIPPED, run.conflicts_skipped)
    metrics.RECONCILIATION_LAST_RUN.set(run.finished_at.timestamp())
    metrics.RECONCILIATION_RUNS.labels(run.kind, "succeeded").inc()
    metrics.RECONCILIATION_BROKER_CALLS.observe(run.broker_calls)
    logger.info(
        "reconciliation %s: checked %d, updated %d (fills %d), failed %d, orphans %d, "
        "positions %d, conflicts %d, broker calls %d",
        run.kind,
        run.orders_checked,
        run.orders_updated,
        run.fills_corrected,
        run.marked_failed,
        run.orphans_found,
        run.position_mismatches,
        run.conflicts_skipped,
        run.broker_calls,
    )


def _fail(
    run: ReconciliationRun, state: ReconciliationState, exc: Exception, calls: int
) -> RunOutcome:
    """Record the failure (run, state, metrics). A broker error is an expected outage; anything
    else is a defect or a database problem and is logged with its traceback. If even the
    record cannot be written (the database is gone), the original error is raised; the next
    run closes the row as abandoned."""
    expected = isinstance(exc, BrokerError)
    if expected:
        logger.error("reconciliation %s failed: %s", run.kind, exc)
        text = str(exc)
    else:
        logger.exception("reconciliation %s failed unexpectedly", run.kind, exc_info=exc)
        text = f"{exc.__class__.__name__}: {exc}"
    metrics.RECONCILIATION_RUNS.labels(run.kind, "failed").inc()
    metrics.RECONCILIATION_RUN_ERRORS.labels("broker" if expected else "unexpected").inc()
    now = timezone.now()
    run.status = ReconciliationRun.Status.FAILED
    run.finished_at = now
    run.errors += 1
    run.error_text = text[:2000]
    run.broker_calls = calls
    try:
        with transaction.atomic():
            run.save()
            ReconciliationState.objects.filter(pk=state.pk).update(
                last_run_at=now, last_run_status=run.status, last_error=run.error_text
            )
    except DatabaseError:
        logger.exception("reconciliation run %s: the failure could not be recorded", run.pk)
        raise exc from None
    return RunOutcome(run)

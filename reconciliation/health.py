"""The gate in /health and /metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from reconciliation.gate import gate_verdict
from reconciliation.models import (
    OrphanOrder,
    Quarantine,
    ReconciliationRun,
    ReconciliationState,
)
from tradeops.health import DEGRADED, OK, CheckResult

logger = logging.getLogger(__name__)


def check_gate() -> CheckResult:
    """A closed gate degrades health but keeps the web ready: cancels and reduce-only
    orders must still be served while it is closed. A startup reconciliation that has not
    come within RECONCILIATION_TIMEOUT_SECONDS is called out (plan §3: alert, stay gated)."""
    verdict = gate_verdict()
    if verdict.open:
        return CheckResult("reconciliation_gate", OK, True, verdict.reason)
    detail = verdict.reason
    state = ReconciliationState.objects.filter(pk=1).first()
    started = state.last_process_start_at if state else None
    if started is not None and (state.last_success_at is None or state.last_success_at < started):
        waited = (timezone.now() - started).total_seconds()
        if waited > settings.RECONCILIATION_TIMEOUT_SECONDS:
            detail = f"startup reconciliation overdue by {int(waited)}s: {detail}"
            logger.critical("gate closed for %ds since a process start: %s", waited, detail)
    return CheckResult("reconciliation_gate", DEGRADED, True, detail)


def gate_gauges() -> Iterator[GaugeMetricFamily]:
    gate = GaugeMetricFamily("reconciliation_gate_open", "1 when new risk is allowed")
    gate.add_metric([], 1.0 if gate_verdict().open else 0.0)
    yield gate
    state = ReconciliationState.objects.filter(pk=1).first()
    last = GaugeMetricFamily(
        "reconciliation_last_success_timestamp",
        "Unix time of the start of the last successful reconciliation",
    )
    if state is not None and state.last_success_at is not None:
        last.add_metric([], state.last_success_at.timestamp())
    yield last
    failures = GaugeMetricFamily(
        "reconciliation_consecutive_failures",
        "Reconciliation runs (not dry runs) failed since the last successful one",
    )
    failed = ReconciliationRun.objects.filter(status=ReconciliationRun.Status.FAILED, dry_run=False)
    if state is not None and state.last_success_at is not None:
        failed = failed.filter(started_at__gt=state.last_success_at)
    failures.add_metric([], float(failed.count()))
    yield failures
    orphans = GaugeMetricFamily("orphan_orders_untracked", "Orphan orders awaiting an operator")
    orphans.add_metric(
        [], float(OrphanOrder.objects.filter(status=OrphanOrder.Status.UNTRACKED).count())
    )
    yield orphans
    quarantines = GaugeMetricFamily("quarantines_active", "Active quarantines")
    quarantines.add_metric([], float(Quarantine.objects.active().count()))
    yield quarantines

"""The gate in /health and /metrics."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from reconciliation.models import OrphanOrder, Quarantine, ReconciliationState
from reconciliation.selectors import gate_verdict
from tradeops.health import DEGRADED, OK, CheckResult


def check_gate() -> CheckResult:
    """A closed gate degrades health but keeps the web ready: cancels and reduce-only
    orders must still be served while it is closed."""
    verdict = gate_verdict()
    return CheckResult(
        "reconciliation_gate", OK if verdict.open else DEGRADED, True, verdict.reason
    )


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
    orphans = GaugeMetricFamily("orphan_orders_untracked", "Orphan orders awaiting an operator")
    orphans.add_metric(
        [], float(OrphanOrder.objects.filter(status=OrphanOrder.Status.UNTRACKED).count())
    )
    yield orphans
    quarantines = GaugeMetricFamily("quarantines_active", "Active quarantines")
    quarantines.add_metric([], float(Quarantine.objects.active().count()))
    yield quarantines

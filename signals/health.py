"""Signals in /health, /ready/signals and /metrics.

/health's ``signals`` check is ``degraded`` while hydration runs (with its progress), after a
failed hydration, while not ready, or when this process could not load the active model; it
never holds back /ready: the order path (cancels above all) must work during a warm-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.http import HttpRequest, JsonResponse
from prometheus_client.core import GaugeMetricFamily

from signals.models import HydrationRun, ModelVersion, ShadowValidation
from signals.readiness import signals_state
from signals.serving import serving_load_error
from tradeops.health import DEGRADED, OK, CheckResult

logger = logging.getLogger(__name__)


def _detail() -> tuple[str, str]:
    """(status, detail) of the signals check."""
    if not ModelVersion.objects.exists():
        return OK, "no model registered (signals unused)"
    state = signals_state()
    problems = []
    if state.progress:
        problems.append(state.progress)
    latest = state.latest
    if latest is not None and latest.status == HydrationRun.Status.FAILED:
        problems.append(f"last hydration failed: {latest.reason}")
    if not state.ready:
        problems.append(f"not ready: {state.reason}")
    if serving_load_error():
        problems.append(f"active model not loaded here: {serving_load_error()}")
    if problems:
        return DEGRADED, "; ".join(problems)
    served = state.served
    failed = f", {served.symbols_failed} failed" if served and served.symbols_failed else ""
    return OK, f"{state.reason} ({served.symbols_ok if served else 0} symbols{failed})"


def check_signals() -> CheckResult:
    status, detail = _detail()
    return CheckResult("signals", status, True, detail)


def ready_signals_view(request: HttpRequest) -> JsonResponse:
    """GET /ready/signals: 200 when signals can be served, else 503 with the reason."""
    state = signals_state()
    served = state.served
    body = {
        "ready": state.ready,
        "reason": state.reason,
        "model": {"name": state.model.name, "version": state.model.version}
        if state.model
        else None,
        "as_of": served.as_of.isoformat() if served and served.as_of else None,
        "hydration": {
            "status": state.latest.status,
            "symbols_done": state.latest.symbols_done,
            "symbols_total": state.latest.symbols_total,
            "started_at": state.latest.started_at.isoformat(),
        }
        if state.latest
        else None,
    }
    response = JsonResponse(body, status=200 if state.ready else 503)
    if not state.ready:
        from django.conf import settings

        response["Retry-After"] = str(settings.SIGNALS_RETRY_AFTER_SECONDS)
    return response


def signals_gauges() -> Iterator[GaugeMetricFamily]:
    """Database-derived gauges (settings.METRICS_DB_GAUGES)."""
    info = GaugeMetricFamily(
        "signals_active_model_info",
        "1 for the active model version",
        labels=["name", "version", "feature_set"],
    )
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if active is not None:
        info.add_metric([active.name, str(active.version), active.feature_set_version], 1.0)
    yield info
    last = (
        ShadowValidation.objects.filter(
            status=ShadowValidation.Status.FINISHED, kind=ShadowValidation.Kind.SHADOW
        )
        .exclude(outcome=ShadowValidation.Outcome.ERROR)
        .first()
    )
    for name, field, text in (
        ("signals_last_validation_spearman", "spearman_mean", "mean per-date Spearman"),
        ("signals_last_validation_divergence", "divergence", "z-score divergence"),
    ):
        gauge = GaugeMetricFamily(name, f"Last shadow validation's {text}")
        if last is not None and getattr(last, field) is not None:
            gauge.add_metric([], float(getattr(last, field)))
        yield gauge
    yield from _last_validation_outcome(last)
    yield _last_hydration_failed()
    ready = GaugeMetricFamily("signals_ready", "1 when /ready/signals answers 200")
    try:
        ready.add_metric([], 1.0 if signals_state(request_refill=False).ready else 0.0)
    except Exception:  # Redis down is "not ready", never a failed scrape
        logger.exception("signals readiness unknown")
        ready.add_metric([], 0.0)
    yield ready


def _last_validation_outcome(last: ShadowValidation | None) -> Iterator[GaugeMetricFamily]:
    """Whether the last shadow validation refused its candidate, and when it finished: an
    alert on a rejection can then age out instead of firing until the next promotion."""
    rejected = GaugeMetricFamily(
        "signals_last_validation_rejected",
        "1 when the last shadow validation rejected its candidate (the old model kept serving)",
    )
    finished = GaugeMetricFamily(
        "signals_last_validation_timestamp_seconds",
        "Unix time at which the last shadow validation finished",
    )
    if last is not None:
        rejected.add_metric([], 1.0 if last.outcome == ShadowValidation.Outcome.REJECTED else 0.0)
        if last.finished_at is not None:
            finished.add_metric([], last.finished_at.timestamp())
    yield rejected
    yield finished


def _last_hydration_failed() -> GaugeMetricFamily:
    """1 while the latest feature hydration (skipped ones aside) failed; a later success
    clears it. Read from the run's row: a counter's first increment is invisible to increase()."""
    gauge = GaugeMetricFamily(
        "signals_last_hydration_failed", "1 when the latest feature hydration run failed"
    )
    latest = HydrationRun.objects.exclude(status=HydrationRun.Status.SKIPPED).first()
    if latest is not None:
        gauge.add_metric([], 1.0 if latest.status == HydrationRun.Status.FAILED else 0.0)
    return gauge

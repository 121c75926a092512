"""Prometheus metrics, each defined once at module level (re-defining raises in prometheus_client).

Counters live in the process that increments them; run every process with the same
PROMETHEUS_MULTIPROC_DIR to see the job cluster's, the dispatcher's and the stream's counts on
the web's /metrics (the demo does). A Gauge here must pass ``multiprocess_mode`` (how the
processes' values combine; the default keeps one series per pid, dead ones included). Gauges
that describe database state (switches, gate, open orders) are computed at scrape time by
``DatabaseStateCollector``, so they are right whichever process serves /metrics.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# --- orders -------------------------------------------------------------------------------
ORDERS_SUBMITTED = Counter(
    "orders_submitted", "Orders sent to the broker and acknowledged", ["origin"]
)
ORDERS_REJECTED = Counter(
    "orders_rejected", "Orders refused, by reason (risk check code or broker_rejected)", ["reason"]
)
ORDERS_UNCONFIRMED = Counter(
    "orders_submitted_unconfirmed", "Submits with an ambiguous outcome (timeout, 5xx)"
)
ORDERS_IDEMPOTENT_REPLAYS = Counter(
    "orders_idempotent_replays", "Order requests answered with an existing order"
)
ORDER_UPDATES = Counter(
    "order_updates", "Order status updates offered to the CAS", ["source", "outcome"]
)
ORDER_UPDATES_SKIPPED = Counter(
    "order_updates_skipped", "Order status updates refused by the CAS, by reason", ["reason"]
)
ORDERS_RESENT = Counter(
    "orders_resent",
    "Orders that failed without reaching the broker, sent again because the same request came "
    "again (same client_order_id)",
)
ORDERS_REOPENED = Counter(
    "orders_reopened",
    "Orders ended locally (failed, canceled or blocked before the broker said anything) that a "
    "broker report reopened, by the source of that report",
    ["source"],
)
for _source in ("stream", "submit", "reconciliation", "manual"):  # orders.status.Source
    ORDERS_REOPENED.labels(_source)
FAT_FINGER_VERDICTS = Counter(
    "fat_finger_verdicts",
    "Fat-finger verdicts of the pre-trade check, by tier (ok, warn, step_up, refuse) and origin "
    "(admin: an operator; api: a strategy)",
    ["tier", "origin"],
)
for _tier in ("ok", "warn", "step_up", "refuse"):  # orders.fat_finger.TIERS
    for _origin in ("admin", "api"):
        FAT_FINGER_VERDICTS.labels(_tier, _origin)
# Orders placed from the admin's "Place order" page (orders.manual), by what became of them.
MANUAL_ORDER_OUTCOMES = (
    "submitted",  # at the broker
    "planned",  # a TWAP plan recorded
    "unconfirmed",  # the broker did not answer: submitted_unconfirmed
    "rejected",  # the broker refused it
    "refused",  # the fat-finger policy or the pre-trade pipeline refused it
    "asked_again",  # not confirmed enough for the fresh verdict: the review was shown again
    "step_up_failed",  # a wrong or reused OTP code
    "replayed",  # the same form again (double click, re-POST): the first one's order
)
MANUAL_ORDERS = Counter(
    "manual_orders", "Orders placed from the admin's Place order page, by outcome", ["outcome"]
)
for _outcome in MANUAL_ORDER_OUTCOMES:
    MANUAL_ORDERS.labels(_outcome)
BROKER_REQUESTS = Counter(
    "broker_requests", "Broker calls made through tradeops.broker, by call", ["call"]
)
BROKER_ERRORS = Counter("broker_errors", "Broker calls that failed, by kind", ["kind"])
BROKER_RATE_LIMITED = Counter(
    "broker_rate_limited",
    "HTTP 429 answers from the broker, each one (alpaca-py retries them by itself, so most never "
    "become an error): the 200-requests-per-minute budget is spent",
)

# Label values an alert watches are created at 0 when the module loads: Prometheus' increase()
# and rate() need a sample before the first increment, or the first error is never seen.
for _kind in ("unavailable", "rejected", "duplicate_client_order_id", "unreadable"):
    BROKER_ERRORS.labels(_kind)

ASSET_REFRESHES = Counter(
    "asset_refreshes", "Loads of the broker's asset list, by outcome", ["outcome"]
)

# --- reconciliation ----------------------------------------------------------------------------
RECONCILIATION_MISMATCHES = Counter(
    "reconciliation_mismatches", "Drift found by reconciliation", ["kind"]
)
RECONCILIATION_CONFLICTS_SKIPPED = Counter(
    "reconciliation_conflicts_skipped", "Broker states the CAS refused during reconciliation"
)
RECONCILIATION_LAST_RUN = Gauge(
    "reconciliation_last_run_timestamp",
    "Unix time of the last finished reconciliation run (of all processes in multiprocess mode)",
    multiprocess_mode="max",  # across processes: the latest run anywhere
)
RECONCILIATION_RUNS = Counter("reconciliation_runs", "Reconciliation runs", ["kind", "outcome"])
RECONCILIATION_RUN_ERRORS = Counter(
    "reconciliation_run_errors",
    "Failed reconciliation runs by cause: broker (an outage), unexpected (a defect or a "
    "database error), abandoned (its process died; found by the next run)",
    ["cause"],
)
for _cause in ("broker", "unexpected", "abandoned"):
    RECONCILIATION_RUN_ERRORS.labels(_cause)
RECONCILIATION_BROKER_CALLS = Histogram(
    "reconciliation_broker_calls",
    "Broker HTTP requests per reconciliation run",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
SYMBOLS_QUARANTINED = Counter("symbols_quarantined", "Quarantines created")

# --- TWAP -------------------------------------------------------------------------------------
TWAP_SLICES_RECOVERED = Counter("twap_slices_recovered", "Slices rescheduled by recovery")
TWAP_SLICES_SKIPPED_PARENT_INVALID = Counter(
    "twap_slices_skipped_parent_invalid", "Slices canceled at recovery because the plan ended"
)
TWAP_SLICE_LATENESS = Histogram(
    "twap_slice_lateness_seconds",
    "Seconds between a slice's scheduled time and its submission",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300),
)
TWAP_SLICES = Counter("twap_slices", "Slices dispatched, by outcome", ["outcome"])

# --- operators ----------------------------------------------------------------------------------
STEP_UP_FAILURES = Counter(
    "step_up_failures",
    "OTP step-ups refused for a wrong, reused or throttled code, by the action it guarded",
    ["action"],
)


class DatabaseStateCollector(Collector):
    """Gauges read from the database at scrape time: each app lists its own in
    settings.METRICS_DB_GAUGES (callables yielding metric families), so this module knows no
    app. A scrape never fails because the database is down: an app whose gauges cannot be
    read is logged and left out."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Nothing declared: registering must not run collect() (queries during app start).
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.conf import settings
        from django.utils.module_loading import import_string

        for path in settings.METRICS_DB_GAUGES:
            try:
                families = list(import_string(path)())  # all of an app's gauges, or none
            except Exception:
                logger.exception("database gauges unavailable: %s", path)
                continue
            yield from families


_db_collector = DatabaseStateCollector()


def register_collectors() -> None:
    """Called once from TradeOpsConfig.ready()."""
    with contextlib.suppress(ValueError):  # already registered: ready() ran twice
        REGISTRY.register(_db_collector)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """/metrics: the global registry, or every process's files in multiprocess mode plus the
    database gauges (django-prometheus' own view drops custom collectors in that mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_db_collector)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

"""Signals' Prometheus metrics, each defined once at module level. Counters live in the process
that increments them (django-q2 workers: PROMETHEUS_MULTIPROC_DIR); the gauges that describe
database state (active model, last validation, readiness) are read at scrape time by
``signals.health.signals_gauges``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HYDRATION_RUNS = Counter("signals_hydration_runs", "Feature hydration runs", ["trigger", "status"])
HYDRATION_SECONDS = Histogram(
    "signals_hydration_seconds",
    "Duration of feature hydration runs",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
HYDRATION_SYMBOLS = Counter(
    "signals_hydration_symbols", "Symbols hydrated, by outcome (ok|failed)", ["outcome"]
)
FEATURE_CACHE_READS = Counter(
    "signals_feature_cache_reads", "Feature cache reads by the signal API (hit|miss)", ["result"]
)
SHADOW_VALIDATIONS = Counter(
    "signals_shadow_validations", "Shadow validations finished, by outcome", ["outcome"]
)
MODEL_LOADS = Counter("signals_model_loads", "Model loads in this process, by outcome", ["outcome"])
SIGNALS_SERVED = Counter("signals_served", "Signal API answers", ["outcome"])

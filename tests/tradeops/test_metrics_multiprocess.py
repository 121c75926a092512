"""/metrics in production: every process counts into PROMETHEUS_MULTIPROC_DIR and the web's
/metrics adds them up (prometheus_client's multiprocess mode), so what a job cluster worker,
the dispatcher or ``reconcile --once`` counts is visible where Prometheus scrapes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, Gauge
from prometheus_client.parser import text_string_to_metric_families

from tests.orders.twap_support import MANAGE, manage_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_counters_of_other_processes_show_on_the_web_metrics(
    paper: Any, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    for _ in range(2):  # one after the other: a second manual run is skipped while one runs
        done = subprocess.run(
            [*MANAGE, "reconcile", "--once"],
            env=manage_env(paper, PROMETHEUS_MULTIPROC_DIR=str(shared)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    # The web process (this one) started with the same directory.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    text = client.get("/metrics").content.decode()
    # One series: the two processes' counts added up.
    assert samples(text, "reconciliation_runs_total") == [
        ({"kind": "manual", "outcome": "succeeded"}, 2.0)
    ]
    # A gauge combines the processes' values into one series (no per-pid label).
    ((labels, last_run),) = samples(text, "reconciliation_last_run_timestamp")
    assert labels == {} and last_run > 0
    # The database gauges are still there in multiprocess mode.
    assert samples(text, "orders_open") == [({}, 0.0)]


def test_every_gauge_says_how_processes_combine() -> None:
    """prometheus_client's default for gauges ("all") keeps one series per process, pid
    label included, and dead processes' series forever: every gauge must choose a mode."""
    gauges = [
        collector
        for collector in REGISTRY._collector_to_names  # no public listing of collectors
        if isinstance(collector, Gauge)
        # django-prometheus' migration gauges are exported only with
        # PROMETHEUS_EXPORT_MIGRATIONS, which TradeOps leaves off.
        and not collector._name.startswith("django_migrations_")
    ]
    assert gauges, "no gauge found: the registry lookup is broken"
    assert {g._name: g._multiprocess_mode for g in gauges if g._multiprocess_mode == "all"} == {}

"""The API and TWAP benchmarks at CI size: each runs end to end (paper broker, gunicorn or two
``run_slices``) against the test database, keeps its invariants (exit status 0: nothing sent
twice, nothing lost) and prints its figures as one JSON object on the last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.orders.twap_support import database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BENCH = Path(settings.BASE_DIR) / "bench"


def run_bench(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--database-url", database_url(), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_api_latency_bench_places_every_order_once_through_gunicorn() -> None:
    figures = run_bench("api_latency.py", "--rate", "20", "--seconds", "1", "--warmup", "5")
    assert figures["api_orders"] == figures["raw_orders"] == 20
    assert (figures["duplicates"], figures["never_sent"], figures["api_failures"]) == (0, 0, 0)
    assert figures["server"].startswith("gunicorn")
    assert {"added_p50_ms", "added_p99_ms", "ratio_p50", "web_cpu_ms_per_order"} <= set(figures)


def test_twap_capacity_bench_sends_every_slice_once() -> None:
    figures = run_bench("twap_capacity.py", "--slices", "60")
    assert figures["slices"] == 60 and figures["statuses"] == {"filled": 60}
    assert (figures["duplicates"], figures["never_sent"], figures["pending"]) == (0, 0, 0)
    assert figures["ratio"] > 0 and figures["dispatcher_cpu_ms_per_slice"] > 0

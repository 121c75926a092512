"""CI-sized runs of the proof harnesses (bench/crash_trials.py, bench/fault_soak.py,
bench/two_nodes.py; docs/proof.md): each as the operator runs it, a real process tree on its
own PostgreSQL database, judged by its exit status and its --json figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

pytestmark = pytest.mark.slow

HANG_GUARD_SECONDS = 600  # a hung harness fails the test instead of stalling CI


def run_bench(script: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run ``bench/<script> --json`` on the test database's ``_proof`` sibling; its figures."""
    database_url = os.environ["DATABASE_URL"].rstrip("/") + "_proof"
    done = subprocess.run(
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "bench" / script),
            *args,
            "--json",
            "--database-url",
            database_url,
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    report = json.loads(lines[-1])
    assert done.returncode == 0, (report, done.stdout[-3000:], done.stderr[-3000:])
    return report


def test_crash_trials_kill_each_process_once(tmp_path: Path) -> None:
    report = run_bench("crash_trials.py", tmp_path, "--trials", "4", "--cycle")
    assert report["trials"] == 4
    assert report["kills"] == {"web": 1, "stream": 1, "jobs": 1, "slices": 1}
    assert (report["duplicates"], report["unresolved"], report["slice_problems"]) == (0, 0, 0)
    assert report["client"]["http_500s"] == 0
    assert report["slices"] > 0 and report["orders"] > 0  # the flow was real


def test_fault_soak_of_60_orders(tmp_path: Path) -> None:
    report = run_bench("fault_soak.py", tmp_path, "--orders", "60", "--threads", "4")
    assert report["client"]["requests"] == 60
    assert sum(report["faults_injected"].values()) > 0  # the broker did fail calls
    assert (report["duplicates"], report["unresolved"], report["http_500s"]) == (0, 0, 0)


def test_two_nodes_short_run(tmp_path: Path) -> None:
    report = run_bench("two_nodes.py", tmp_path, "--seconds", "20")
    assert (report["duplicates"], report["double_dispatch"]) == (0, 0)
    assert report["overlapping_runs"] == [] and report["duplicate_schedules"] == {}
    assert report["gate_inconsistent"] == 0 and report["gate_samples"] > 0
    assert report["reconciliation_runs"] >= 2  # the two clusters' startup runs, at least
    assert (report["unresolved"], report["http_500s"]) == (0, 0)

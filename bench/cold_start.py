"""Benchmark: cold start to gate open with N orders in the database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python \\
        bench/cold_start.py --orders 10000 --json

Builds a throwaway database (``test_<name>``) holding N filled orders that the in-process
paper broker also holds (1 % of them with a fill the database lost, as after a crash) and no
successful reconciliation yet, so the gate is closed. Then starts the real process —
``manage.py qcluster`` (default: its first worker records the start and asks for the startup
reconciliation, a django-q task) or ``manage.py reconcile --once --kind startup`` — and polls
the database until the gate is open (``reconciliation.gate.gate_verdict``). Reported: seconds
from the process start to the gate open, split into the time until the startup run began and
the run itself, and the CPU seconds the process tree used (the figure a busy machine does
not distort). Exit status 0 only if the gate opened and the drift was corrected.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reconcile_scale  # sets Django up
from django.conf import settings
from django.db import connection
from django.test.utils import setup_test_environment

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0
COMMANDS = {
    "qcluster": ["qcluster"],
    "reconcile": ["reconcile", "--once", "--kind", "startup"],
}


def process_env(broker_url: str) -> dict[str, str]:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "ALPACA_BASE_URL": broker_url,
        "ALPACA_DATA_URL": broker_url,
        "ALPACA_RETRY_WAIT_SECONDS": "0",
    }


def gate_open_at(deadline: float) -> float | None:
    """Poll until a startup run succeeded and the gate is open; the monotonic time, or None."""
    from reconciliation.gate import gate_verdict
    from reconciliation.models import ReconciliationRun

    succeeded = ReconciliationRun.objects.filter(kind="startup", status="succeeded")
    while time.monotonic() < deadline:
        if succeeded.exists() and gate_verdict().open:
            return time.monotonic()
        time.sleep(0.02)
    return None


def measure(via: str, n: int, drifted: int, paper: Any, broker_url: str) -> dict[str, Any]:
    from django_q.models import OrmQ

    from reconciliation.models import ProcessStart, ReconciliationRun, ReconciliationState

    reconcile_scale.prepare(n, drifted, paper)
    # nothing reconciled yet: the gate is closed until the started process's run succeeds
    ReconciliationRun.objects.all().delete()
    ProcessStart.objects.all().delete()
    OrmQ.objects.all().delete()
    ReconciliationState.objects.update(last_success_at=None, override_at=None)
    connection.close()  # the child must not inherit a half-used connection's state
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0, t0 = time.time(), time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *COMMANDS[via]],
        env=process_env(broker_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        opened = gate_open_at(t0 + TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = ReconciliationRun.objects.filter(kind="startup").order_by("-id").first()
    ok = opened is not None and run is not None and run.orders_updated == drifted
    if not ok:  # say why: the child's own last words
        print(f"{via}: {(proc.stderr.read() if proc.stderr else '')[-3000:]}", file=sys.stderr)
    return {
        "via": via,
        "orders": n,
        "drifted": drifted,
        "seconds_to_gate_open": round(opened - t0, 3) if opened else None,
        "seconds_to_run_start": round(run.started_at.timestamp() - wall0, 3) if run else None,
        "run_seconds": round(run.duration_seconds, 3) if run and run.finished_at else None,
        "broker_requests": run.broker_calls if run else None,
        # CPU of the process tree until it exited (qcluster: stopped right after the gate
        # opened): a figure that does not depend on how busy the machine is
        "process_cpu_seconds": round(
            (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 3
        ),
        "ok": ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000, help="orders (default 10000)")
    parser.add_argument("--drift", type=float, default=0.01, help="drifted fraction (0.01)")
    parser.add_argument(
        "--via", choices=[*COMMANDS, "both"], default="both", help="process to start (both)"
    )
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    args = parser.parse_args()
    if args.orders < 1 or not 0 <= args.drift <= 1:
        parser.error("--orders must be >= 1 and --drift within 0..1")
    if connection.vendor != "postgresql":
        parser.error("needs PostgreSQL: set DATABASE_URL=postgres://... (the system of record)")
    from paperbroker.control import PaperControl
    from paperbroker.testing import start_test_server

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    server = start_test_server()
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = server.url
    paper = PaperControl(server.url)
    drifted = round(args.orders * args.drift)
    vias = list(COMMANDS) if args.via == "both" else [args.via]
    try:
        runs = [measure(via, args.orders, drifted, paper, server.url) for via in vias]
    finally:
        server.stop()
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    for r in runs:
        print(
            f"{r['via']}: gate open after {r['seconds_to_gate_open']} s "
            f"(run began after {r['seconds_to_run_start']} s, ran {r['run_seconds']} s; "
            f"{r['process_cpu_seconds']} s CPU)",
            file=sys.stderr,
        )
    ok = all(r["ok"] for r in runs)
    if args.json:
        figures = {
            "orders": args.orders,
            "drifted": drifted,
            **{f"seconds_to_gate_open_{r['via']}": r["seconds_to_gate_open"] for r in runs},
            "failed": sum(not r["ok"] for r in runs),
            "goal_met": ok and all(r["seconds_to_gate_open"] <= 3.0 for r in runs),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, "
            f"{platform.python_implementation()} {platform.python_version()}",
            "runs": runs,
        }
        print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

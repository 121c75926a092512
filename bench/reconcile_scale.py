"""Benchmark: one reconciliation run over N orders (run by hand, not part of the suite).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/reconcile_scale.py

Creates a throwaway database (``test_<name>``), starts the paper broker in-process, and for each
N builds N filled orders that agree at the broker and in the database, then measures a run:
wall time, SQL queries, broker HTTP requests. A second run per N has 1% drift (orders the
broker filled that the database still holds as open), to show that writes scale with the
drift, not with N. Prints a Markdown table (README, "Benchmarks").
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
os.environ.setdefault("ALPACA_RETRY_WAIT_SECONDS", "0")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

START = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
SIZES = [int(x) for x in os.environ.get("BENCH_SIZES", "1000,2500,5000,10000").split(",")]


def measure(n: int, drift_pct: int, paper, server) -> dict:
    from orders.models import Order, Position
    from reconciliation.engine import reconciliation_run
    from reconciliation.models import ReconciliationState
    from tests.helpers import mirror_orders

    paper.reset(fill_model="immediate", random_walk=False)
    Order.objects.all().delete()
    Position.objects.all().delete()
    mirror_orders(paper, n, start=START)
    Position.objects.create(symbol="AAPL", qty=n)
    drifted = n * drift_pct // 100
    if drifted:  # the database forgets the fill of `drifted` orders: reconciliation restores
        ids = list(Order.objects.order_by("id").values_list("id", flat=True)[:drifted])
        Order.objects.filter(id__in=ids).update(
            status="new",
            status_rank=2,
            is_terminal=False,
            filled_qty=0,
            filled_avg_price=None,
            broker_updated_at=START,
        )
        Position.objects.filter(symbol="AAPL").update(qty=n - drifted)
    ReconciliationState.objects.update_or_create(
        pk=1, defaults={"high_water_mark": START - timedelta(seconds=1)}
    )
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        outcome = reconciliation_run(kind="periodic")
    elapsed = time.perf_counter() - started
    run = outcome.run
    assert run.status == "succeeded", run.error_text
    return {
        "n": n,
        "drift": drifted,
        "seconds": elapsed,
        "queries": len(queries),
        "calls": run.broker_calls,
        "updated": run.orders_updated,
    }


def main() -> None:
    from paperbroker.control import PaperControl
    from paperbroker.testing import start_test_server

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    server = start_test_server()
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = server.url
    paper = PaperControl(server.url)
    rows = []
    try:
        for n in SIZES:
            for drift in (0, 1):
                rows.append(measure(n, drift, paper, server))
                r = rows[-1]
                print(
                    f"N={r['n']:>6} drift={r['drift']:>4}: {r['seconds']:.2f}s, "
                    f"{r['queries']} queries, {r['calls']} broker calls",
                    file=sys.stderr,
                )
    finally:
        server.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print("| orders | drifted | run time | SQL queries | broker requests | ceil(N/500) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['drift']} | {r['seconds']:.2f} s | {r['queries']} | "
            f"{r['calls']} | {-(-r['n'] // 500)} |"
        )


if __name__ == "__main__":
    main()

"""Benchmark: one reconciliation run over N orders with a fraction F drifted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python \\
        bench/reconcile_scale.py --orders 10000 --drift 0.01 --json

Creates a throwaway database (``test_<name>``), starts the paper broker in-process, builds N
filled orders that agree at the broker and in the database, and measures three runs, each
from the same starting state: no drift; F drifted (orders the broker filled that the
database still holds as open) applied set-based (``orders.bulk_updates``, what the engine
does); and the same drift applied one order at a time through ``apply_order_update`` (the
path before issue 14, for the ratio, measured in the same process). Per run: wall seconds,
SQL queries, broker HTTP requests. Exit status 0 only if every drifted order was corrected
and the position restored; ``--json`` prints the figures as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
os.environ.setdefault("ALPACA_RETRY_WAIT_SECONDS", "0")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

START = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


@contextlib.contextmanager
def one_by_one() -> Iterator[None]:
    """Reconciliation's writes through the single path, one order per transaction (the
    engine before the set-based path)."""
    import reconciliation.engine as engine
    from orders.bulk_updates import apply_one

    def apply_each(updates: list[Any], *, source: str) -> list[Any]:
        return [apply_one(u, source) for u in updates]

    engine.apply_order_updates, saved = apply_each, engine.apply_order_updates
    try:
        yield
    finally:
        engine.apply_order_updates = saved


def prepare(n: int, drifted: int, paper: Any, **broker_config: Any) -> None:
    """N mirrored orders, the first ``drifted`` with a fill the database lost."""
    from orders.models import Order, OrderEvent, Position
    from reconciliation.models import ReconciliationState
    from tests.helpers import mirror_orders

    paper.reset(**{"fill_model": "immediate", "random_walk": False, **broker_config})
    OrderEvent.objects.all().delete()
    Order.objects.all().delete()
    Position.objects.all().delete()
    mirror_orders(paper, n, start=START)
    Position.objects.create(symbol="AAPL", qty=n)
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


def measure(n: int, drifted: int, paper: Any, path: str) -> dict[str, Any]:
    from orders.models import Order, Position
    from reconciliation.engine import reconciliation_run

    prepare(n, drifted, paper)
    with one_by_one() if path == "one_by_one" else contextlib.nullcontext():
        started, cpu = time.perf_counter(), time.process_time()
        with CaptureQueriesContext(connection) as queries:
            outcome = reconciliation_run(kind="periodic")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    run = outcome.run
    corrected = (
        run.status == "succeeded"
        and run.orders_updated == drifted
        and not Order.objects.filter(is_terminal=False).exists()
        and Position.objects.get(symbol="AAPL").qty == n
    )
    return {
        "path": path,
        "orders": n,
        "drifted": drifted,
        "seconds": round(elapsed, 3),
        # this process's CPU, the in-process paper broker serving the listing included
        "cpu_seconds": round(cpu, 3),
        "queries": len(queries),
        "broker_requests": run.broker_calls,
        "updated": run.orders_updated,
        "corrected": corrected,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000, help="orders (default 10000)")
    parser.add_argument("--drift", type=float, default=0.01, help="drifted fraction (0.01)")
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    args = parser.parse_args()
    if args.orders < 1 or not 0 <= args.drift <= 1:
        parser.error("--orders must be >= 1 and --drift within 0..1")
    from paperbroker.control import PaperControl
    from paperbroker.testing import start_test_server

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    server = start_test_server()
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = server.url
    paper = PaperControl(server.url)
    drifted = round(args.orders * args.drift)
    try:
        runs = [
            measure(args.orders, 0, paper, "set_based"),
            measure(args.orders, drifted, paper, "set_based"),
            measure(args.orders, drifted, paper, "one_by_one"),
        ]
    finally:
        server.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print("| path | orders | drifted | run time | CPU | SQL queries | broker requests |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r['path']} | {r['orders']:,} | {r['drifted']} | {r['seconds']:.2f} s | "
            f"{r['cpu_seconds']:.2f} s | "
            f"{r['queries']} | {r['broker_requests']} |"
        )
    ok = all(r["corrected"] for r in runs)
    if args.json:
        _, drift_run, single = runs
        print(
            json.dumps(
                {
                    "orders": args.orders,
                    "drifted": drifted,
                    "queries": drift_run["queries"],
                    "seconds": drift_run["seconds"],
                    "queries_one_by_one": single["queries"],
                    "seconds_one_by_one": single["seconds"],
                    "cpu_seconds": drift_run["cpu_seconds"],
                    "cpu_seconds_one_by_one": single["cpu_seconds"],
                    "seconds_no_drift": runs[0]["seconds"],
                    "broker_requests": drift_run["broker_requests"],
                    "uncorrected": sum(not r["corrected"] for r in runs),
                    "goal_met": drift_run["queries"] <= 30 and drift_run["seconds"] <= 2.0,
                    "machine": f"{platform.machine()} {os.cpu_count()} cpu, "
                    f"{platform.python_implementation()} {platform.python_version()}",
                    "runs": runs,
                }
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

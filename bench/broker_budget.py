"""Benchmark: broker requests per minute under order flow plus reconciliation, against
Alpaca's 200 requests/minute.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python \\
        bench/broker_budget.py --rate 120 --seconds 60 --json

The in-process paper broker enforces Alpaca's limit (``rate_limit_per_minute=200``, a sliding
window per bucket: trading, market data) and logs every ``/v2`` request. A throwaway database
(``test_<name>``) starts with ``--existing`` orders the broker also holds; the startup
reconciliation pages through all of them. Then, for ``--seconds``, one thread posts orders
through the REST API (``POST /api/v1/orders``, marketable limit orders, in-process client)
at ``--rate`` per minute while another runs a periodic reconciliation every
``--reconcile-every`` seconds.
From the broker's request log: requests by endpoint, the peak of any 60-second window per
bucket, 429 answers, and client_order_ids POSTed more than once. Exit status 0 only if the
limiter answered no 429, no order was sent twice and every order reached a broker status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from bisect import bisect_left
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("ALPACA_RETRY_WAIT_SECONDS", "3")  # alpaca-py's own 429 back-off
sys.path.insert(0, str(Path(__file__).resolve().parent))
import reconcile_scale  # sets Django up
from django.conf import settings
from django.db import close_old_connections, connection
from django.test.utils import setup_test_environment

ALPACA_LIMIT = 200  # requests per minute per account (trading API)


def post_orders(client: Any, rate: float, seconds: float, statuses: Counter[int]) -> None:
    """``rate`` orders a minute for ``seconds``: marketable limit sells and buys in turn,
    distinct ids."""
    interval, start, i = 60.0 / rate, time.monotonic(), 0
    while (due := start + i * interval) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        price = Decimal("100.00") + Decimal(i // 2) / 100 * (1 if i % 2 else -1)
        side, qty = ("buy", 1) if i % 2 else ("sell", 2)
        body = {"symbol": "AAPL", "side": side, "qty": qty, "type": "limit"}
        body |= {"time_in_force": "day", "limit_price": str(price)}
        response = client.post("/api/v1/orders", body, format="json")
        if response.status_code not in statuses and response.status_code >= 400:
            print(f"first {response.status_code}: {response.content[:300]!r}", file=sys.stderr)
        statuses[response.status_code] += 1
        i += 1
    close_old_connections()


def reconcile_every(period: float, seconds: float, outcomes: list[str]) -> None:
    from reconciliation.engine import reconciliation_run

    start = time.monotonic()
    while (due := start + (len(outcomes) + 1) * period) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        outcome = reconciliation_run(kind="periodic")
        outcomes.append("skipped" if outcome.skipped else outcome.run.status)
    close_old_connections()


def peak_per_minute(times: list[float]) -> int:
    """The most requests in any 60-second window (windows end at a request)."""
    times = sorted(times)
    return max((i + 1 - bisect_left(times, t - 60.0) for i, t in enumerate(times)), default=0)


def endpoint(entry: dict[str, Any]) -> str:
    path = entry["path"]
    if path.startswith("/v2/orders/") and path != "/v2/orders:by_client_order_id":
        path = "/v2/orders/{id}"
    return f"{entry['method']} {path}"


def analyse(log: list[dict[str, Any]]) -> dict[str, Any]:
    stamps: dict[str, list[float]] = {"trading": [], "data": []}
    for e in log:
        bucket = "data" if e["path"].startswith("/v2/stocks") else "trading"
        stamps[bucket].append(datetime.fromisoformat(e["timestamp"]).timestamp())
    # accepted POSTs per id: a POST the limiter refused (429) never reached the book
    posts = Counter(
        e["client_order_id"]
        for e in log
        if (e["method"], e["path"], e["status"]) == ("POST", "/v2/orders", 200)
    )
    return {
        "requests": len(log),
        "by_endpoint": dict(Counter(endpoint(e) for e in log).most_common()),
        "peak_per_minute": {b: peak_per_minute(t) for b, t in stamps.items()},
        "rate_limited_429": sum(e["status"] == 429 for e in log),
        "sent_twice": sum(n > 1 for n in posts.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=120, help="orders per minute (120)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the flow (60)")
    parser.add_argument(
        "--reconcile-every", type=float, default=30, help="seconds between runs (30)"
    )
    parser.add_argument("--existing", type=int, default=10_000, help="orders before (10000)")
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.reconcile_every <= 0 or args.existing < 1:
        parser.error("--rate, --seconds, --reconcile-every and --existing must be positive")
    from orders.controls import trading_switches_ensure
    from orders.models import Order
    from orders.status import UNCONFIRMED_STATUSES
    from paperbroker.control import PaperControl
    from paperbroker.testing import start_test_server
    from reconciliation.engine import reconciliation_run
    from tests.helpers import token_client

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    server = start_test_server(rate_limit_per_minute=ALPACA_LIMIT)
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = server.url
    paper = PaperControl(server.url)
    try:
        reconcile_scale.prepare(args.existing, 0, paper, initial_cash="10000000")
        paper.set_clock(is_open=True)
        paper.set_prices({"AAPL": "100.00"})
        trading_switches_ensure()
        startup_began = time.monotonic()
        assert reconciliation_run(kind="startup").succeeded, "startup reconciliation failed"
        startup_seconds = time.monotonic() - startup_began
        client = token_client("alpha")
        statuses: Counter[int] = Counter()
        outcomes: list[str] = []
        threads = [
            threading.Thread(target=post_orders, args=(client, args.rate, args.seconds, statuses)),
            threading.Thread(
                target=reconcile_every, args=(args.reconcile_every, args.seconds, outcomes)
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        figures = analyse(paper.requests())
        posted = sum(statuses.values())
        # an order the broker's answer never reached (a 429 after retries, a timeout)
        unresolved_count = Order.objects.filter(status__in=UNCONFIRMED_STATUSES).count()
    finally:
        server.stop()
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    per_order = figures["by_endpoint"].get("POST /v2/orders", 0) / max(posted, 1)
    figures |= {
        "limit_per_minute": ALPACA_LIMIT,
        "orders_per_minute": args.rate,
        "seconds": args.seconds,
        "orders_posted": posted,
        "api_statuses": dict(statuses),
        "reconciliations": Counter(outcomes),
        "startup_reconciliation_seconds": round(startup_seconds, 2),
        "broker_requests_per_order": round(per_order, 2),
        "unresolved": unresolved_count,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, "
        f"{platform.python_implementation()} {platform.python_version()}",
    }
    print(
        f"{posted} orders in {args.seconds:.0f} s at {args.rate:.0f}/min, reconciliation every "
        f"{args.reconcile_every:.0f} s: peak {figures['peak_per_minute']} requests/min "
        f"(limit {ALPACA_LIMIT}), {figures['rate_limited_429']} x 429, "
        f"{figures['sent_twice']} sent twice",
        file=sys.stderr,
    )
    for name, n in figures["by_endpoint"].items():
        print(f"  {n:>6}  {name}", file=sys.stderr)
    if args.json:
        print(json.dumps(figures))
    ok = figures["rate_limited_429"] == 0 and figures["sent_twice"] == 0 and not unresolved_count
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

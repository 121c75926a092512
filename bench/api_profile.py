"""Profile: the CPU one ``POST /api/v1/orders`` costs the web process, in-process (issue 14,
point 8; the counterpart of ``bench/api_latency.py``, which measures through gunicorn).

    .venv/bin/python bench/api_profile.py [--orders 300] [--database-url postgres://...]
        [--profile FILE] [--top 40]

The paper broker runs as its own process (its CPU is not counted); the orders go through
Django's WSGI handler in this process (``django.test.Client``: the whole middleware stack,
the token authentication, the submit path and the broker call). Prints the CPU and wall time
per order, the SQL statements per order, and with ``--profile`` a cProfile of the measured
orders (CPU time, cumulative, the top ``--top`` entries; the raw stats written to FILE).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import harness
from api_latency import prepare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--database-url", default=harness.DEFAULT_DATABASE_URL)
    parser.add_argument("--profile", default="", help="write cProfile stats here")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--phases", action="store_true", help="CPU per order of each step of the submit path"
    )
    args = parser.parse_args()

    harness.ensure_database(args.database_url)
    broker_port = harness.free_port()
    env = harness.bench_env(args.database_url, broker_port, DB_CONN_MAX_AGE="60")
    harness.django_setup(env)
    broker, _control = harness.start_paperbroker(env, broker_port)
    try:
        key = prepare()
        run(args, key)
    finally:
        harness.stop(broker)
    return 0


def run(args: argparse.Namespace, key: str) -> None:
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {key}", HTTP_HOST="127.0.0.1")

    def post(i: int) -> None:
        terms = harness.order_terms(100_000 + i)
        body = {**terms, "side": "buy", "type": "limit", "time_in_force": "day"}
        response = client.post("/api/v1/orders", body, content_type="application/json")
        assert response.status_code == 201, (response.status_code, response.content[:300])

    phases = phase_timers() if args.phases else {}
    for i in range(args.warmup):
        post(i)
    for totals in phases.values():
        totals[0] = 0.0
    with CaptureQueriesContext(connection) as queries:
        post(args.warmup)
    reset_queries()
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(args.warmup + 1, args.warmup + 1 + args.orders):
        post(i)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{args.orders} orders: CPU {cpu / args.orders * 1000:.2f} ms/order, "
        f"wall {wall / args.orders * 1000:.2f} ms/order, {len(queries)} SQL statements/order"
        f"{' (under cProfile)' if profiler else ''}"
    )
    for name, (total,) in phases.items():
        print(f"  {name:<48} {total / args.orders * 1000:6.2f} ms CPU/order (inclusive)")
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(args.top)


PHASES = [
    "rest_framework.views.APIView.initial",
    "orders.serializers.OrderRequestSerializer.is_valid",
    "orders.services.order_create",
    "orders.risk.prepare_context",
    "orders.risk.pretrade_write",
    "orders.risk.lock_symbol",
    "orders.risk.run_checks",
    "orders.services.order_send_claimed",
    "tradeops.broker.Broker.submit_order",
    "orders.updates.apply_order_update",
    "orders.serializers.OrderSerializer.data",
]


def phase_timers() -> dict[str, list[float]]:
    """Wrap each PHASES callable to add up its CPU time (inclusive of what it calls)."""
    import functools
    import importlib

    totals: dict[str, list[float]] = {}
    for path in PHASES:
        parts = path.split(".")
        for split in range(len(parts) - 1, 0, -1):
            try:
                owner: object = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            for attr in parts[split:-1]:
                owner = getattr(owner, attr)
            break
        name = parts[-1]
        original = inspect_attr(owner, name)
        total = totals[path] = [0.0]
        if isinstance(original, property):
            getter = original.fget

            def timed_get(self, _g=getter, _t=total):  # type: ignore[no-untyped-def]
                start = time.process_time()
                try:
                    return _g(self)
                finally:
                    _t[0] += time.process_time() - start

            setattr(owner, name, property(timed_get))
            continue

        def timed(*a, _f=original, _t=total, **k):  # type: ignore[no-untyped-def]
            start = time.process_time()
            try:
                return _f(*a, **k)
            finally:
                _t[0] += time.process_time() - start

        setattr(owner, name, functools.wraps(original)(timed))
    return totals


def inspect_attr(owner: object, name: str) -> object:
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in vars(klass):
                return vars(klass)[name]
    return getattr(owner, name)


if __name__ == "__main__":
    raise SystemExit(main())

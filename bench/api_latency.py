"""Benchmark: what the order API adds over a raw alpaca-py submit to the same paper broker, at a
steady rate, through the production web server (issue 14, point 8).

    .venv/bin/python bench/api_latency.py [--rate 100] [--seconds 20] [--server gunicorn]
        [--database-url postgres://...] [--json]

One run, one machine, everything real and separate: PostgreSQL (a dedicated database,
``tradeops_bench`` by default, created if missing), the paper broker as its own process, the
web as the README's production command (``gunicorn -c deploy/gunicorn.conf.py``; or
``--server runserver`` for the development server). Two open-loop phases at ``--rate``
orders/s for ``--seconds`` each, the same orders (marketable limit buys spread over ten
symbols): first alpaca-py's ``submit_order`` straight to the broker, then
``POST /api/v1/orders`` with a strategy token. Latency is each call's wall time in this
process; "added" is the API's percentile minus the raw one's, "ratio" the API's over the raw.
The web's CPU per order (its workers' CPU time over the API phase, /proc) travels better
between machines than its milliseconds.

Exit status 0 only when every API order was placed (201) and reached the broker exactly once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
from typing import Any

import harness

GOAL_ADDED_P50_MS, GOAL_ADDED_P99_MS = 5.0, 20.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="orders per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured orders per phase")
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--database-url", default=harness.DEFAULT_DATABASE_URL)
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    args = parser.parse_args()

    harness.ensure_database(args.database_url)
    broker_port, web_port = harness.free_port(), harness.free_port()
    env = harness.bench_env(args.database_url, broker_port, WEB_BIND=f"127.0.0.1:{web_port}")
    harness.django_setup(env)
    broker, control = harness.start_paperbroker(env, broker_port)
    web = None
    try:
        key = prepare()
        web = start_web(args.server, env, web_port)
        figures = measure(args, control, key, f"http://127.0.0.1:{web_port}", web.pid)
    finally:
        harness.stop(web, broker)
    figures.update(harness.machine(), server=server_label(args.server))
    print_report(figures)
    if args.json:
        print(json.dumps(figures))
    return 0 if figures["ok"] else 1


def prepare() -> str:
    """A clean ledger, limits out of the way, the gate open, a strategy token."""
    from orders.controls import trading_switches_ensure
    from orders.models import Order, Position, RiskLimit, Strategy
    from orders.strategies import strategy_create, strategy_token_issue
    from reconciliation.engine import reconciliation_run
    from reconciliation.models import OrphanOrder, Quarantine

    Order.objects.all().delete()
    Position.objects.all().delete()
    Quarantine.objects.all().delete()
    OrphanOrder.objects.all().delete()
    trading_switches_ensure()
    RiskLimit.objects.update_or_create(
        symbol="*",
        defaults={"max_order_qty": 10**6, "max_order_notional": 10**9, "max_position_qty": 10**9},
    )
    strategy = Strategy.objects.filter(pk="bench").first() or strategy_create(
        strategy_id="bench", actor="bench"
    )
    assert reconciliation_run(kind="startup").succeeded, "reconciliation failed"
    return strategy_token_issue(strategy=strategy, actor="bench")


def start_web(server: str, env: dict[str, str], port: int) -> subprocess.Popen:
    import requests

    from paperbroker.testing import wait_until

    if server == "gunicorn":
        gunicorn = harness.Path(harness.sys.executable).parent / "gunicorn"
        command = [str(gunicorn), "-c", "deploy/gunicorn.conf.py"]  # the README's command
    else:
        command = [*harness.MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"]
    process = subprocess.Popen(
        command, cwd=harness.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def ready() -> bool:
        assert process.poll() is None, f"{server} exited"
        try:
            return requests.get(f"http://127.0.0.1:{port}/ready", timeout=10).ok
        except requests.RequestException:
            return False

    wait_until(ready, timeout=60, interval=0.2, message=f"{server} did not start")
    return process


def server_label(server: str) -> str:
    if server == "runserver":
        return "runserver"
    env = harness.os.environ
    workers, threads = env.get("WEB_WORKERS", "2"), env.get("WEB_THREADS", "4")
    db = (
        "DB_POOL=1"
        if env.get("DB_POOL") == "1"
        else f"DB_CONN_MAX_AGE={env.get('DB_CONN_MAX_AGE', '60')}"
    )
    return f"gunicorn gthread {workers}x{threads}, {db}"


def web_cpu_seconds(server: str, pid: int) -> float:
    """The web's CPU time: gunicorn's workers (children of its master), or runserver itself."""
    return harness.children_cpu_seconds(pid) if server == "gunicorn" else harness.cpu_seconds(pid)


def measure(
    args: argparse.Namespace, control: Any, key: str, url: str, web_pid: int
) -> dict[str, Any]:
    import requests

    raw = harness.RawAlpaca(control.base_url)
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Token {key}"
        return local.session

    def raw_call(i: int) -> str | None:
        raw.submit(**harness.order_terms(i))
        return None

    placed: list[str] = []

    def api_call(i: int) -> str | None:
        terms = harness.order_terms(i)
        body = {**terms, "side": "buy", "type": "limit", "time_in_force": "day"}
        response = session().post(f"{url}/api/v1/orders", json=body, timeout=30)
        if response.status_code != 201:
            return f"{response.status_code} {response.text[:200]}"
        placed.append(response.json()["client_order_id"])
        return None

    count = int(args.rate * args.seconds)
    offset = args.warmup + count  # API orders differ from the warm-up's
    harness.paced(args.rate, args.warmup, raw_call)
    raw_run = harness.paced(args.rate, count, raw_call)
    harness.paced(args.rate, args.warmup, lambda i: api_call(offset + count + i))
    placed.clear()
    cpu = web_cpu_seconds(args.server, web_pid)
    api_run = harness.paced(args.rate, count, api_call)
    cpu = web_cpu_seconds(args.server, web_pid) - cpu

    posts = control.requests(method="POST", path="/v2/orders")
    sent: dict[str, int] = {}
    for entry in posts:
        sent[entry["client_order_id"]] = sent.get(entry["client_order_id"], 0) + 1
    duplicates = sum(n - 1 for n in sent.values() if n > 1)
    never_sent = sum(1 for coid in placed if coid not in sent)
    figures: dict[str, Any] = {
        "rate": args.rate,
        "seconds": args.seconds,
        **raw_run.summary("raw"),
        **api_run.summary("api"),
        "web_cpu_ms_per_order": round(cpu / max(1, len(api_run.latencies)) * 1000, 2),
        "duplicates": duplicates,
        "never_sent": never_sent,
    }
    for pct in ("p50", "p99"):
        api_ms, raw_ms = figures[f"api_{pct}_ms"], figures[f"raw_{pct}_ms"]
        figures[f"added_{pct}_ms"] = round(api_ms - raw_ms, 2)
        figures[f"ratio_{pct}"] = round(api_ms / raw_ms, 2)
    p50_ok = figures["added_p50_ms"] <= GOAL_ADDED_P50_MS
    figures["goal_met"] = p50_ok and figures["added_p99_ms"] <= GOAL_ADDED_P99_MS
    figures["api_failure_sample"] = api_run.failures[:3]
    figures["ok"] = not api_run.failures and not raw_run.failures and not duplicates
    figures["ok"] = figures["ok"] and not never_sent
    return figures


def print_report(f: dict[str, Any]) -> None:
    print(
        f"\norder API latency, {f['server']}, {f['cpus']} CPUs (load {f['loadavg_1m']}), "
        f"{f['rate']:.0f} orders/s for {f['seconds']:.0f}s per phase\n"
        f"  raw alpaca-py: p50 {f['raw_p50_ms']} ms  p99 {f['raw_p99_ms']} ms "
        f"({f['raw_orders']} orders at {f['raw_rate']}/s)\n"
        f"  API:           p50 {f['api_p50_ms']} ms  p99 {f['api_p99_ms']} ms "
        f"({f['api_orders']} orders at {f['api_rate']}/s, {f['api_failures']} failed)\n"
        f"  added:         p50 {f['added_p50_ms']} ms  p99 {f['added_p99_ms']} ms "
        f"(ratio p50 {f['ratio_p50']}, p99 {f['ratio_p99']}); goal p50 <= "
        f"{GOAL_ADDED_P50_MS} ms, p99 <= {GOAL_ADDED_P99_MS} ms: "
        f"{'met' if f['goal_met'] else 'NOT met'}\n"
        f"  web CPU per order {f['web_cpu_ms_per_order']} ms; "
        f"duplicates at the broker {f['duplicates']}, never sent {f['never_sent']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared pieces of the API and TWAP benchmarks: a dedicated database, the paper broker as its
own process, an open-loop pacer and a raw alpaca-py submit loop against the same broker (the
baseline each figure is a ratio to, measured in the same run on the same machine).

Not a test module; imported by ``bench/api_latency.py`` and ``bench/twap_capacity.py``.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]
SYMBOLS = ["AAPL", "MSFT", "TSLA", "AMZN", "NVDA", "META", "GOOG", "NFLX", "AMD", "INTC"]
PRICE = "100.00"
DEFAULT_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tradeops_bench"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a figure that one request really took)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def machine() -> dict[str, Any]:
    """What the figures were measured on: they are only comparable within one run."""
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg_1m": round(load[0], 2),
    }


def bench_env(database_url: str, broker_port: int, **extra: str) -> dict[str, str]:
    """Environment of every process of the run: the bench database, the paper broker (no
    ALPACA_*_KEY: unset keys select it), quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
    env.update(
        DATABASE_URL=database_url,
        PAPERBROKER_PORT=str(broker_port),
        ALPACA_BASE_URL=f"http://127.0.0.1:{broker_port}",
        ALPACA_DATA_URL=f"http://127.0.0.1:{broker_port}",
        ALPACA_RETRY_WAIT_SECONDS="0",
        LIQUIDITY_CHECK_ENABLED="0",  # one bars request per symbol is not what is measured
        CIRCUIT_BREAKER_REJECTS_TO_TRIP="0",
        QUOTE_FALLBACK_URL="",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_paperbroker(env: dict[str, str], port: int) -> tuple[subprocess.Popen, Any]:
    """The paper broker as its own process, reset: immediate fills, open market, fixed prices."""
    from paperbroker.control import PaperControl
    from paperbroker.testing import wait_until

    process = subprocess.Popen(
        [*MANAGE, "paperbroker", "--port", str(port), "--no-random-walk", "--tick-seconds", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    control = PaperControl(f"http://127.0.0.1:{port}")
    wait_until(lambda: _answers(control), timeout=30, message="paper broker did not start")
    reset_broker(control)
    return process, control


def reset_broker(control: Any) -> None:
    """No orders, no positions (a baseline's orders would be orphans to reconciliation)."""
    control.reset(initial_cash=10**10, random_walk=False, fill_model="immediate")
    control.set_clock(is_open=True)
    control.set_prices(dict.fromkeys(SYMBOLS, PRICE))


def _answers(control: Any) -> bool:
    try:
        control.state(include_orders=False)
    except Exception:
        return False
    return True


def stop(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
    for process in processes:
        if process is not None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(parent: int) -> float:
    """CPU time of the live children of ``parent`` (a gunicorn master's workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError):  # exited meanwhile
            continue
    return total


@dataclass
class Paced:
    """What an open-loop run did: per-call seconds (successful calls), failures, wall time."""

    latencies: list[float]
    failures: list[str]
    wall_seconds: float

    @property
    def achieved_rate(self) -> float:
        return (len(self.latencies) + len(self.failures)) / self.wall_seconds

    def summary(self, prefix: str) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies] or [float("nan")]
        return {
            f"{prefix}_orders": len(self.latencies),
            f"{prefix}_failures": len(self.failures),
            f"{prefix}_rate": round(self.achieved_rate, 1),
            f"{prefix}_p50_ms": round(percentile(ms, 50), 2),
            f"{prefix}_p90_ms": round(percentile(ms, 90), 2),
            f"{prefix}_p99_ms": round(percentile(ms, 99), 2),
            f"{prefix}_max_ms": round(max(ms), 2),
        }


def paced(
    rate: float, count: int, call: Callable[[int], str | None], *, threads: int = 16
) -> Paced:
    """Call ``call(i)`` for i in range(count), the i-th at start + i/rate (open loop: a slow
    call does not delay the next one's start, so queueing shows in the figures instead of
    lowering the rate). ``call`` returns None on success, else why it failed."""
    start = time.perf_counter() + 0.2
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # the schedule of an open-loop load, not a synchronisation
        began = time.perf_counter()
        try:
            failure = call(i)
        except Exception as exc:  # a failed call is a figure, not the end of the run
            failure = f"{type(exc).__name__}: {exc}"
        took = time.perf_counter() - began
        with lock:
            (failures.append(failure) if failure else latencies.append(took))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return Paced(latencies, failures, time.perf_counter() - start)


class RawAlpaca:
    """The baseline: alpaca-py's TradingClient straight to the paper broker, one client per
    thread (it holds a requests session), what a strategy without TradeOps would do."""

    def __init__(self, broker_url: str) -> None:
        self.url = broker_url
        self.local = threading.local()

    def client(self) -> Any:
        if not hasattr(self.local, "client"):
            from alpaca.trading.client import TradingClient

            self.local.client = TradingClient("paper", "paper", paper=True, url_override=self.url)
        return self.local.client

    def submit(self, *, symbol: str, qty: int, limit_price: str) -> str:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest

        request = LimitOrderRequest(
            symbol=symbol,
            qty=qty,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=float(limit_price),
            client_order_id=uuid.uuid4().hex[:24],
        )
        order = self.client().submit_order(request)
        return str(order.client_order_id)


def order_terms(i: int) -> dict[str, Any]:
    """The i-th order of a run: distinct terms (so a distinct client_order_id the same day),
    spread over the symbols, a marketable limit (fills at once, no quote needed)."""
    return {
        "symbol": SYMBOLS[i % len(SYMBOLS)],
        "qty": 1 + (i // len(SYMBOLS)) % 50,
        "limit_price": f"{100 + (i // (len(SYMBOLS) * 50)) * 0.01:.2f}",
    }

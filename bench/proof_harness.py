"""The process harness of the proof scripts (bench/crash_trials.py, bench/fault_soak.py,
bench/two_nodes.py) and of their CI-sized tests in tests/proof.

A ``Stack`` runs a deployment as real, separate processes, the way production runs it: the
paper broker (``manage.py paperbroker``), web (``runserver``), ``qcluster``, ``run_slices``
and ``stream_trade_updates``, all on one PostgreSQL database, with one shared
PROMETHEUS_MULTIPROC_DIR. What starts each process and what "ready" means come from
``manage.py demo`` (its ``CHILDREN``), so the harness and the demo cannot disagree. The
harness can SIGKILL any process and restart it, and waits for readiness by polling with a
deadline, never by sleeping.

This process itself is configured for the same database (``bootstrap``): it reads the
database for its checks and creates the strategies the clients trade as.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import ensure_database, free_port, percentile  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tradeops_bench"
START_TIMEOUT_SECONDS = 90.0
# The broker's prices (no random walk): the clients' limit prices are set from them.
PRICES = {
    "AAPL": Decimal("100.00"),
    "MSFT": Decimal("300.00"),
    "TSLA": Decimal("200.00"),
    "AMZN": Decimal("150.00"),
    "NVDA": Decimal("120.00"),
}  # per process: a loaded 2-core machine starts Django slowly

# What every child process runs with, unless the script says otherwise: fast, bounded broker
# calls (alpaca-py has no timeout of its own and sleeps 3 s before retrying a 429), a short
# grace before reconciliation fails an order the broker never saw, and prices from the
# broker (no Redis, no quote ingestor of someone else's on the default port).
CHILD_ENV = {
    "ALPACA_HTTP_TIMEOUT_SECONDS": "3",
    "ALPACA_RETRY_WAIT_SECONDS": "0.2",
    "RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS": "5",
    "TWAP_DISPATCH_RETRY_SECONDS": "0.5",
    "QUOTE_FALLBACK_URL": "",
    "REDIS_URL": "",
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
}


def bootstrap(database_url: str, **env: str) -> None:
    """Point this process at ``database_url`` and the paper broker's defaults, set up Django,
    migrate, and empty every table (a run starts from a fresh install: switches released, the
    global risk row). Must run before anything imports Django models."""
    ensure_database(database_url)
    for key in [k for k in os.environ if k.startswith("ALPACA_")]:
        del os.environ[key]  # unset keys select the paper broker
    os.environ.update(CHILD_ENV, DATABASE_URL=database_url, **env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from orders.controls import trading_switches_ensure
    from orders.models import RiskLimit

    call_command("migrate", verbosity=0)
    call_command("flush", "--no-input", verbosity=0)
    trading_switches_ensure()
    RiskLimit.objects.get_or_create(symbol="*")


def strategy_tokens(names: Iterable[str]) -> dict[str, str]:
    """An API token per strategy (created as needed): what the clients authenticate with."""
    from orders.models import Strategy
    from orders.strategies import strategy_create, strategy_token_issue

    tokens = {}
    for name in names:
        strategy = Strategy.objects.filter(pk=name).first() or strategy_create(
            strategy_id=name, actor="bench"
        )
        tokens[name] = strategy_token_issue(strategy=strategy, actor="bench")
    return tokens


def wait_until(
    what: str,
    predicate: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.2,
    alive: Callable[[], None] | None = None,
) -> float:
    """Poll ``predicate`` until truthy; the seconds waited. ``alive`` raises when a process
    the wait depends on died. Raises TimeoutError naming ``what``."""
    began = time.monotonic()
    while True:
        if alive is not None:
            alive()
        if predicate():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"not within {timeout:.0f} s: {what}")
        time.sleep(interval)


class StackError(RuntimeError):
    """A process of the stack could not start or died unexpectedly."""


@dataclass
class Proc:
    """One named process of the stack (e.g. ``web``, ``web2``, ``slices``) and its lifetime."""

    name: str
    kind: str  # a demo CHILDREN name: web, stream, jobs, slices
    port: int  # the web's port (0 for the others)
    child: Any = None  # the demo's Child while running
    starts: int = 0
    kills: int = 0
    launched: float = 0.0  # monotonic time of the latest launch
    start_seconds: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """A paper broker plus named TradeOps processes; use as a context manager."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)  # extra child environment
    procs: dict[str, Proc] = field(default_factory=dict)
    broker: subprocess.Popen | None = None
    broker_url: str = ""
    paper: Any = None  # PaperControl

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the paper broker --------------------------------------------------------------------
    def start_broker(self, **reset: Any) -> None:
        """The paper broker as its own process on a free port; deterministic prices, open
        market, immediate fills and cash enough for any flow unless ``reset`` says otherwise
        (insufficient buying power would trip the circuit breaker, not test anything)."""
        from paperbroker.control import PaperControl

        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.broker_url = f"http://127.0.0.1:{port}"
        argv = ["paperbroker", "--port", str(port), "--no-random-walk", "--tick-seconds", "0.2"]
        self.broker = self._spawn("broker", argv)
        self.paper = PaperControl(self.broker_url, timeout=10)

        def answers() -> bool:
            try:
                self.paper.config()
            except OSError:
                return False
            return True

        wait_until("the paper broker to answer", answers, timeout=60, alive=self._alive)
        reset = {
            "fill_model": "immediate",
            "random_walk": False,
            "initial_cash": "1000000000",
        } | reset
        self.paper.reset(**reset)
        self.paper.set_clock(is_open=True)
        self.paper.set_prices(PRICES)
        from django.conf import settings

        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = self.broker_url  # our checks
        # Where every child process writes its metrics (emptied: no counts of earlier runs).
        metrics = self.workdir / "prometheus"
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir()
        self.env = {"PAPERBROKER_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(metrics)} | (
            self.env
        )

    # -- TradeOps processes ------------------------------------------------------------------
    def boot(self, *groups: list[str], seed: int) -> None:
        """The paper broker, then each group of processes started together (a name's kind is
        the name without trailing digits: ``web2`` is a second web), then until the startup
        reconciliation opened the gate."""
        from django.utils import timezone

        self.start_broker(seed=seed)
        started = timezone.now()
        for names in groups:
            self.add(*names)
        self.wait_gate_open(started)

    def add(self, *names: str) -> None:
        """Start processes together (kind: web, stream, jobs or slices, from the name) and
        wait until each is ready."""
        for name in names:
            kind = name.rstrip("0123456789")
            self.procs[name] = Proc(name, kind, free_port() if kind == "web" else 0)
            self.launch(name)
        for name in names:
            self.wait_ready(name)

    def start(self, name: str) -> float:
        """(Re)start a process and wait for the demo's readiness check; the seconds it took."""
        self.launch(name)
        return self.wait_ready(name)

    def launch(self, name: str) -> None:
        """Spawn a process without waiting for it."""
        from django.utils import timezone

        from tradeops.management.commands.demo import CHILDREN, Child

        proc = self.procs[name]
        spec = next(s for s in CHILDREN if s.name == proc.kind)
        argv = [a.format(host="127.0.0.1", port=proc.port) for a in spec.argv]
        launched_at = timezone.now()
        popen = self._spawn(name, argv)
        proc.child = Child(spec, popen, " ".join(argv), launched_at, proc.url, self.broker_url)
        proc.starts += 1
        proc.launched = time.monotonic()

    def wait_ready(self, name: str) -> float:
        """Until the demo's readiness check passes; the seconds since the launch."""
        proc = self.procs[name]
        spec = proc.child.spec
        wait_until(
            f"{name} ({spec.waits_for})",
            lambda: spec.ready(proc.child),
            timeout=START_TIMEOUT_SECONDS,
            alive=self._alive,
        )
        took = time.monotonic() - proc.launched
        proc.start_seconds.append(took)
        return took

    def kill(self, name: str) -> None:
        """SIGKILL to the process and everything it forked (qcluster's sentinel and workers),
        as an OOM kill of a container or systemd's control-group kill does: no handler runs,
        nothing is cleaned up. (Killing only qcluster's first process leaves its sentinel and
        workers running headless, still taking tasks.)"""
        proc = self.procs[name]
        os.killpg(proc.child.proc.pid, signal.SIGKILL)
        proc.child.proc.wait(timeout=30)
        proc.kills += 1
        proc.child = None

    def restart(self, name: str) -> float:
        """SIGKILL then start again; the seconds until it was ready."""
        self.kill(name)
        return self.start(name)

    def wait_gate_open(self, since: Any, timeout: float = 120) -> float:
        """Until a reconciliation succeeded after ``since`` and the gate is open."""
        from tradeops.management.commands.demo import gate_open_since

        return wait_until(
            "a reconciliation to open the gate",
            lambda: gate_open_since(since),
            timeout=timeout,
            alive=self._alive,
        )

    def web_urls(self) -> list[str]:
        return [p.url for p in self.procs.values() if p.kind == "web"]

    def kills(self) -> dict[str, int]:
        return {name: p.kills for name, p in self.procs.items()}

    def stop(self) -> None:
        """Terminate everything still running (SIGKILL what does not stop within 20 s)."""
        running = [p.child.proc for p in self.procs.values() if p.child is not None]
        if self.broker is not None:
            running.append(self.broker)
        for popen in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        for popen in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):  # stragglers of the group too
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
        self.procs.clear()
        self.broker = None

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
        env.update(self.env)
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *argv],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,  # its own process group: kill() reaches its children
            )
        finally:
            log.close()

    def _alive(self) -> None:
        """Raise StackError when a process that should be running has exited."""
        from tradeops.management.commands.demo import exit_text

        if self.broker is not None and self.broker.poll() is not None:
            raise StackError(f"the paper broker {exit_text(self.broker.returncode)}")
        for proc in self.procs.values():
            if proc.child is not None and proc.child.proc.poll() is not None:
                tail = (self.workdir / f"{proc.name}.log").read_text(errors="replace")[-2000:]
                code = exit_text(proc.child.proc.returncode)
                raise StackError(f"{proc.name} {code}; its log ends:\n{tail}")


# --- checks at the broker --------------------------------------------------------------------
def broker_counts(paper: Any) -> tuple[Counter[str], Counter[str]]:
    """(orders the broker holds per client_order_id, POST /v2/orders it received per id)."""
    held = Counter(o["client_order_id"] for o in paper.state()["orders"])
    posts = Counter(r["client_order_id"] for r in paper.requests(method="POST", path="/v2/orders"))
    return held, posts


def broker_statuses(paper: Any) -> dict[str, str]:
    """The broker's status of each order it holds, by client_order_id."""
    return {o["client_order_id"]: o["status"] for o in paper.state()["orders"]}


def unresolved_orders(held: Counter[str], statuses: dict[str, str]) -> list[dict[str, Any]]:
    """Orders left hanging or disagreeing with the broker: not terminal in the database unless
    the broker holds them open in the same status (resting);
    ``filled`` in the database but not held exactly once at the broker; or held at the broker
    in another status than the database's (e.g. failed here, filled there). A terminal status
    other than filled for an order the broker never held (canceled, failed, rejected,
    blocked_*) is the reason it ended without a fill."""
    from orders.models import Order
    from orders.status import TERMINAL_STATUSES

    bad = []
    for coid, status in Order.objects.values_list("client_order_id", "status"):
        at_broker = statuses.get(coid)
        if status not in TERMINAL_STATUSES:
            if at_broker != status:  # else resting at the broker, and both say so
                bad.append({"client_order_id": coid, "status": status, "broker": at_broker})
        elif status == "filled" and held[coid] != 1:
            bad.append({"client_order_id": coid, "status": status, "held": held[coid]})
        elif at_broker is not None and at_broker != status:
            bad.append({"client_order_id": coid, "status": status, "broker": at_broker})
    return bad


def duplicates(held: Counter[str]) -> list[str]:
    """client_order_ids the broker holds more than once (the one invariant that must be 0)."""
    return sorted(coid for coid, n in held.items() if n > 1)


# --- clients ---------------------------------------------------------------------------------
class ApiClient:
    """A strategy's HTTP client over one or more webs: a request that gets no answer (the web
    was killed, the connection dropped) is sent again, same body, to the next web until one
    answers or ``patience`` runs out, as a careful strategy would (the client_order_id makes
    that safe)."""

    def __init__(self, urls: list[str], token: str, *, patience: float = 120.0) -> None:
        import requests

        self.urls = urls
        self.patience = patience
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self._next = 0

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any, float]:
        """(status, JSON body or None, seconds of the answered attempt)."""
        import requests

        deadline = time.monotonic() + self.patience
        while True:
            url = self.urls[self._next % len(self.urls)] + path
            self._next += 1
            began = time.monotonic()
            try:
                response = self.session.request(method, url, json=body, timeout=30)
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the web is restarting: try again shortly
                continue
            took = time.monotonic() - began
            try:
                payload = response.json()
            except ValueError:
                payload = None
            return response.status_code, payload, took


@dataclass
class FlowStats:
    """What an order flow saw: HTTP statuses, latencies of answered requests, error codes."""

    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def add(self, status: int, payload: Any, took: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(took)
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            self.codes[str(payload["error"].get("code"))] += 1

    def merge(self, other: FlowStats) -> None:
        self.statuses.update(other.statuses)
        self.codes.update(other.codes)
        self.latencies.extend(other.latencies)

    def to_json(self) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies]
        return {
            "requests": len(self.latencies),
            "http_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "http_500s": sum(v for k, v in self.statuses.items() if k >= 500 and k != 503),
            "error_codes": dict(sorted(self.codes.items())),
            "latency_ms": {
                "p50": round(percentile(ms, 50), 1) if ms else 0.0,
                "p90": round(percentile(ms, 90), 1) if ms else 0.0,
                "p99": round(percentile(ms, 99), 1) if ms else 0.0,
                "max": round(max(ms, default=0.0), 1),
            },
        }


def random_order(rng: Any, symbols: list[str], *, max_qty: int = 20) -> dict[str, Any]:
    """A market order or a marketable limit order (1-4 % through the price, so it fills at
    once) of a few shares. The limit price makes most orders new; the same draw twice is the
    idempotent repeat a retrying strategy makes (client_order_ids are deterministic per day).
    """
    symbol, side = rng.choice(symbols), rng.choice(["buy", "sell"])
    body = {"symbol": symbol, "side": side, "qty": rng.randint(1, max_qty), "time_in_force": "day"}
    if rng.random() < 0.25:
        return body | {"type": "market"}
    through = Decimal(rng.randint(100, 400)) / 10_000
    limit = PRICES[symbol] * (1 + through if side == "buy" else 1 - through)
    return body | {"type": "limit", "limit_price": str(limit.quantize(Decimal("0.01")))}


def twap_place(
    client: ApiClient,
    stats: FlowStats,
    *,
    symbol: str,
    qty: int,
    interval_seconds: int,
    side: str = "buy",
) -> tuple[int, Any]:
    """POST a one-minute TWAP plan of market slices; (status, body)."""
    body = {
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "type": "market",
        "time_in_force": "day",
        "duration_minutes": 1,
        "interval_seconds": interval_seconds,
    }
    status, payload, took = client.call("POST", "/api/v1/orders/slice", body)
    stats.add(status, payload, took)
    return status, payload


def order_flow(
    client: ApiClient,
    rng: Any,
    symbols: list[str],
    stats: FlowStats,
    *,
    count: int | None = None,
    stop: Any = None,
    max_qty: int = 20,
) -> None:
    """POST ``count`` random orders (or until ``stop`` is set) and record what came back."""
    sent = 0
    while (count is None or sent < count) and not (stop is not None and stop.is_set()):
        body = random_order(rng, symbols, max_qty=max_qty)
        stats.add(*client.call("POST", "/api/v1/orders", body))
        sent += 1


def reconciliation_figures() -> dict[str, int]:
    """What the recorded reconciliation runs found: drift an operator would be shown (a false
    position mismatch or conflict under a harness is a defect to look at)."""
    from django.db.models import Count, Q, Sum

    from reconciliation.models import ReconciliationRun

    totals = ReconciliationRun.objects.aggregate(
        runs=Count("pk"),
        failed=Count("pk", filter=Q(status="failed")),
        position_mismatches=Sum("position_mismatches"),
        conflicts_skipped=Sum("conflicts_skipped"),
        orphans_found=Sum("orphans_found"),
        marked_failed=Sum("marked_failed"),
    )
    return {key: value or 0 for key, value in totals.items()}


# --- the scripts' common frame ---------------------------------------------------------------
def bench_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """The options every proof script has: --seed, --json, --database-url, --workdir."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to use (created if missing, emptied first)",
    )
    parser.add_argument(
        "--workdir", default=str(ROOT / "var" / "bench" / name), help="process logs, metrics"
    )
    return parser


@dataclass
class Settled:
    seconds: float
    unresolved: list[dict[str, Any]]
    held: Counter[str]  # orders the broker holds per client_order_id
    posts: Counter[str]  # POST /v2/orders the broker received per client_order_id


def settle(paper: Any, *, timeout: float, interval: float = 0.5) -> Settled:
    """``manage.py reconcile --once`` (in this process) until no order is unresolved, or
    ``timeout`` seconds; then what the broker holds."""
    from io import StringIO

    from django.core.management import call_command

    began = time.monotonic()
    while True:
        call_command("reconcile", "--once", stdout=StringIO())
        held, posts = broker_counts(paper)
        unresolved = unresolved_orders(held, broker_statuses(paper))
        if not unresolved or time.monotonic() - began > timeout:
            return Settled(time.monotonic() - began, unresolved, held, posts)
        time.sleep(interval)


def finish(report: dict[str, Any], *, as_json: bool) -> int:
    """Print the figures (one JSON line with ``as_json``); the exit status."""
    print(json.dumps(report) if as_json else json.dumps(report, indent=2))
    return 0 if report["invariants_hold"] else 1

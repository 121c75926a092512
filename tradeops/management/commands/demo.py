"""python manage.py demo

The demo is a small process supervisor. What it starts is data: ``SETUP_STEPS`` (commands run
in this process before anything else starts) and ``CHILDREN`` (the long-running processes of a
deployment, each with a readiness check). A process that cannot start fails the demo before
the banner; a process that dies later stops the demo. Either way the exit status is non-zero
and the message names the process.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from marketdata.models import QuoteIngestor
from orders.models import DispatcherRun, Strategy
from orders.strategies import strategy_create, strategy_token_issue
from paperbroker.control import PaperControl, PaperControlError
from reconciliation.gate import gate_verdict
from reconciliation.models import ProcessStart, ReconciliationState
from tradeops.otp import qr_text, totp_device_create

DEMO_STRATEGY = "demo"
DEMO_ADMIN = "admin"
START_TIMEOUT_SECONDS = 60.0  # per child, and for the gate to open
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class SetupStep:
    """A management command run in the demo's own process, after the paper broker started and
    before the children start (it may use the database and the broker)."""

    what: str  # the progress line
    command: tuple[str, ...]  # call_command arguments


@dataclass(frozen=True)
class ChildSpec:
    """One long-running process of the demo (DESIGN §7: the processes of a deployment)."""

    name: str  # in progress lines and failure messages
    argv: tuple[str, ...]  # manage.py arguments; "{host}" and "{port}" are the console's
    ready: Callable[[Child], bool]  # polled while the child runs, until true
    waits_for: str  # what ``ready`` waits for, for the progress line
    with_only_web: bool = False  # also started under --only-web


@dataclass
class Child:
    """A started child process, as its readiness check sees it."""

    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    command: str  # "manage.py ..." for messages
    launched_at: datetime  # rows the child writes at start-up are at least this recent
    web_url: str
    broker_url: str


# --- readiness checks ------------------------------------------------------------------------
def web_ready(child: Child) -> bool:
    try:
        return requests.get(f"{child.web_url}/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def trade_stream_ready(child: Child) -> bool:
    try:
        streams = PaperControl(child.broker_url, timeout=2).streams()
    except (requests.RequestException, PaperControlError):
        return False
    return streams["trade_update_listeners"] > 0


def job_cluster_ready(child: Child) -> bool:
    # The first worker of a new cluster records the cluster's start (reconciliation.tasks).
    return ProcessStart.objects.filter(kind="cluster", started_at__gte=child.launched_at).exists()


def dispatcher_ready(child: Child) -> bool:
    return DispatcherRun.objects.filter(pid=child.proc.pid, stopped_at__isnull=True).exists()


def quote_ingestor_ready(child: Child) -> bool:
    # stream_quotes writes its heartbeat row once it runs (docs/marketdata.md).
    return QuoteIngestor.objects.filter(pid=child.proc.pid, stopped_at__isnull=True).exists()


def always_ready(child: Child) -> bool:
    return True


def gate_open_since(started_at: datetime) -> bool:
    """Whether a reconciliation succeeded after ``started_at`` and the gate is open now. The
    stream consumer, the job cluster and the dispatcher close the gate when they start; the
    cluster's startup reconciliation opens it again a few seconds later (also bench/harness.py).
    """
    state = ReconciliationState.objects.filter(pk=1).first()
    last_success = state.last_success_at if state is not None else None
    return last_success is not None and last_success >= started_at and gate_verdict().open


SETUP_STEPS: list[SetupStep] = [
    SetupStep("migrating the database", ("migrate", "--no-input", "--verbosity", "0")),
]

CHILDREN: list[ChildSpec] = [
    ChildSpec(
        "web",
        ("runserver", "{host}:{port}", "--noreload", "--insecure"),
        web_ready,
        "/ready to answer 200",
        with_only_web=True,
    ),
    ChildSpec(
        "stream",
        ("stream_trade_updates",),
        trade_stream_ready,
        "the broker to see a trade_updates listener",
    ),
    ChildSpec("jobs", ("qcluster",), job_cluster_ready, "the job cluster's first worker"),
    # The TWAP dispatcher: second-precise, which the job cluster's scheduler is not.
    ChildSpec("slices", ("run_slices",), dispatcher_ready, "the dispatcher to register"),
    # The quote ingestor: into the demo's Redis, else its own buffer (docs/marketdata.md).
    ChildSpec(
        "quotes",
        ("stream_quotes", "--symbols", "AAPL,MSFT"),
        quote_ingestor_ready,
        "the quote ingestor's heartbeat",
    ),
]


class Interrupted(Exception):
    """SIGINT/SIGTERM/SIGHUP arrived while the demo was starting."""


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR like runserver and the
    paper broker, so a closed connection in TIME_WAIT does not count as busy)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def exit_text(code: int) -> str:
    if code < 0:
        return f"was killed by signal {-code} ({signal.Signals(-code).name})"
    return f"exited with status {code}"


class Command(BaseCommand):
    help = (
        "Run the whole console locally with no keys and no services: starts the built-in paper "
        "broker in-process, migrates the SQLite database under TRADEOPS_VAR_DIR (default var/), "
        "creates a demo strategy with an API token and an admin user with a TOTP device (all "
        "printed), then serves the console and runs the stream consumer, the job cluster, the "
        "TWAP slice dispatcher and the quote ingestor until Ctrl-C. Quotes and the signals' "
        "feature cache go to REDIS_URL if set, else to a redis-server the demo starts on a free "
        "port if one is installed (else quotes stay in the ingestor's memory and signals are "
        "off). Exits non-zero, naming the process, when one of them cannot start or dies."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="Console port (default 8000)")
        parser.add_argument(
            "--broker-port",
            type=int,
            default=settings.PAPERBROKER_PORT,
            help=f"Paper broker port (default {settings.PAPERBROKER_PORT})",
        )
        parser.add_argument(
            "--quotes-port",
            type=int,
            default=settings.QUOTE_FALLBACK_PORT,
            help=f"Quote ingestor's own endpoint (default {settings.QUOTE_FALLBACK_PORT})",
        )
        parser.add_argument(
            "--only-web",
            action="store_true",
            help="Do not start the stream consumer, jobs and slice dispatcher",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # First: a stop signal at any later point must still stop the children cleanly.
        self._stopping = False
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        if not settings.USING_PAPER_BROKER:
            raise CommandError("demo runs on the built-in paper broker: unset ALPACA_API_KEY.")
        host, port = options["host"], options["port"]
        if not port_free(host, port):
            raise CommandError(
                f"the console cannot listen on {host}:{port}: the port is in use. Stop what "
                "listens there or choose another port with --port."
            )
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        broker: Any = None
        children: list[Child] = []
        try:
            broker = self._start_broker(options["broker_port"], var)
            for step in SETUP_STEPS:
                self._step(f"{step.what}...")
                call_command(*step.command)
            self._step("creating the demo strategy, its API token and the admin user...")
            token, token_file, password, device = self._demo_users(var)
            env = self._child_env(options["broker_port"], var, options["quotes_port"])
            redis = self._redis(var, env, options, broker)
            if redis is not None:
                children.append(redis)
            if not options["only_web"]:
                self._signals_prepare()
            specs = [s for s in CHILDREN if s.with_only_web or not options["only_web"]]
            started_at = timezone.now()
            for spec in specs:
                child = self._start_child(spec, env, host=host, port=port, broker=broker)
                children.append(child)
                waited = self._wait_until(spec.waits_for, partial(spec.ready, child), children)
                self._progress(f"{spec.name} ready ({waited:.1f} s)")
            if not options["only_web"]:
                self._step("waiting for the startup reconciliation to open the gate...")
                waited = self._wait_until(
                    "the startup reconciliation to open the gate",
                    lambda: gate_open_since(started_at),
                    children,
                    failure=lambda: f"the gate is still closed: {gate_verdict().reason}",
                )
                self._progress(f"gate open ({waited:.1f} s)")
                self._signals_wait(children)
            self._banner(options, token, token_file, password, device)
            self._supervise(children)
        except Interrupted:
            pass
        finally:
            self._stop_children(children)
            if broker is not None:
                broker.stop()
            self._progress("stopped")

    def _stop(self, *_: Any) -> None:
        # Only a flag: the loops look at it every POLL_SECONDS (an Event set from a signal
        # handler can deadlock the main thread it interrupts).
        self._stopping = True

    # -- steps ------------------------------------------------------------------------------
    def _progress(self, text: str) -> None:
        self.stdout.write(f"demo: {text}")
        self.stdout.flush()

    def _step(self, text: str) -> None:
        """The next start-up step, unless a stop signal came during the last one."""
        if self._stopping:
            raise Interrupted
        self._progress(text)

    def _start_broker(self, port: int, var: Path) -> Any:
        from paperbroker.server import PaperBrokerServer

        server = PaperBrokerServer(
            host="127.0.0.1", port=port, state_file=var / "paperbroker.json", random_walk=True
        )
        try:
            server.start()
        except (OSError, RuntimeError) as exc:
            raise CommandError(
                f"the paper broker cannot listen on 127.0.0.1:{port} ({exc}). Stop what listens "
                "there or choose another port with --broker-port."
            ) from None
        # This process's setup steps and readiness checks use the same broker as the children.
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = server.url
        settings.ALPACA_STREAM_URL = server.stream_url
        settings.ALPACA_DATA_STREAM_URL = server.data_stream_url
        self._progress(f"paper broker on {server.url} (state in {var / 'paperbroker.json'})")
        return server

    def _child_env(self, broker_port: int, var: Path, quotes_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env["PAPERBROKER_PORT"] = str(broker_port)
        env["TRADEOPS_VAR_DIR"] = str(var)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self._metrics_dir(var))
        env["QUOTE_FALLBACK_PORT"] = str(quotes_port)
        env["QUOTE_FALLBACK_URL"] = settings.QUOTE_FALLBACK_URL = f"http://127.0.0.1:{quotes_port}"
        return env

    def _metrics_dir(self, var: Path) -> Path:
        """Every child counts into one directory, so the console's /metrics shows what the job
        cluster, the dispatcher and the stream count. Emptied first: files of processes from
        an earlier run would add their counts to this run's."""
        path = var / "prometheus"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        self._progress(f"metrics of every process in {path} (PROMETHEUS_MULTIPROC_DIR)")
        return path

    def _demo_users(self, var: Path) -> tuple[str, Path, str, TOTPDevice]:
        strategy = Strategy.objects.filter(pk=DEMO_STRATEGY).first() or strategy_create(
            strategy_id=DEMO_STRATEGY, name="Demo strategy", actor="command:demo"
        )
        token = strategy_token_issue(strategy=strategy, actor="command:demo")
        token_file = var / "demo-token.txt"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        User = get_user_model()
        user = User.objects.filter(username=DEMO_ADMIN).first()
        if user is None:
            user = User.objects.create_superuser(DEMO_ADMIN, "admin@example.com", None)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save(update_fields=["password"])
        device = TOTPDevice.objects.filter(user=user).first() or totp_device_create(
            user=user, name="demo", replace=False, actor="command:demo"
        )
        return token, token_file, password, device

    def _redis(
        self, var: Path, env: dict[str, str], options: dict[str, Any], broker: Any
    ) -> Child | None:
        """Where quotes and the feature cache go: REDIS_URL if set; else a redis-server of the
        demo's own on a free port (no persistence, supervised like the other children) if one
        is installed; else nowhere: the quote ingestor runs in buffering state and its fallback
        endpoint prices orders (/health says quotes are degraded), and signals are off."""
        self._step("choosing the Redis for quotes and the feature cache...")
        if settings.REDIS_URL:
            self._progress("quotes and features go to REDIS_URL")
            return None
        binary = shutil.which("redis-server", path=env.get("PATH"))
        if binary is None:
            self._progress(
                "redis-server not found: quotes stay in the ingestor's memory (its fallback "
                f"endpoint {settings.QUOTE_FALLBACK_URL}) and signals are off"
            )
            return None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            redis_port = probe.getsockname()[1]
        argv = [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(var)]  # fmt: skip
        launched_at = timezone.now()
        proc = subprocess.Popen(  # noqa: S603 - the installed redis-server, our arguments
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"redis://127.0.0.1:{redis_port}/0"
        if not self._redis_answers(url, proc):
            proc.kill()
            proc.wait()
            raise CommandError(f"the demo's redis-server ({' '.join(argv)}) did not start.")
        env["REDIS_URL"] = settings.REDIS_URL = url
        self._progress(f"quotes and features: redis-server on {url} (no persistence)")
        spec = ChildSpec("redis", ("redis-server",), always_ready, "Redis to answer")
        host, port = options["host"], options["port"]
        return Child(spec, proc, " ".join(argv), launched_at, f"http://{host}:{port}", broker.url)

    @staticmethod
    def _redis_answers(url: str, proc: subprocess.Popen, timeout: float = 10) -> bool:
        import redis

        from marketdata.quotes import redis_client

        client = redis_client(url, timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                return bool(client.ping())
            except redis.RedisError:  # not up yet
                time.sleep(0.1)
        return False

    def _signals_prepare(self) -> None:
        """Signals (docs/signals.md): bars and a first model promoted; the job cluster
        validates it and hydrates the feature cache."""
        from signals.demo import demo_signals_prepare

        self._step("preparing signals (daily bars, a first model)...")
        demo_signals_prepare(self.stdout.write)

    def _signals_wait(self, children: list[Child]) -> None:
        from signals.demo import demo_signals_wait

        def alive() -> bool:
            return not self._stopping and all(c.proc.poll() is None for c in children)

        demo_signals_wait(self.stdout.write, alive)

    def _start_child(
        self, spec: ChildSpec, env: dict[str, str], *, host: str, port: int, broker: Any
    ) -> Child:
        argv = [arg.format(host=host, port=port) for arg in spec.argv]
        command = "manage.py " + " ".join(argv)
        self._step(f"starting {spec.name} ({command}); waiting for {spec.waits_for}...")
        launched_at = timezone.now()
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        proc = subprocess.Popen([*manage, *argv], env=env)  # noqa: S603 - our own manage.py
        return Child(spec, proc, command, launched_at, f"http://{host}:{port}", broker.url)

    def _wait_until(
        self,
        what: str,
        ready: Callable[[], bool],
        children: list[Child],
        *,
        failure: Callable[[], str] | None = None,
        timeout: float = START_TIMEOUT_SECONDS,
    ) -> float:
        """Poll ``ready`` until it is true; returns the seconds waited. Fails when a child
        exits meanwhile or time runs out; raises Interrupted on a stop signal."""
        began = time.monotonic()
        while True:
            self._check_children(children, when="while starting")
            if ready():
                break
            if time.monotonic() - began > timeout:
                reason = failure() if failure else f"still waiting for {what}"
                raise CommandError(f"not ready after {timeout:.0f} s: {reason}.")
            time.sleep(POLL_SECONDS)
            if self._stopping:
                raise Interrupted
        # Still ours: a server that already held the port may have answered for a child that
        # is exiting because it could not listen.
        self._check_children(children, when="while starting")
        return time.monotonic() - began

    def _check_children(self, children: list[Child], *, when: str) -> None:
        for child in children:
            code = child.proc.poll()
            if code is not None and not self._stopping:
                raise CommandError(
                    f"{child.spec.name} ({child.command}) {exit_text(code)} {when}; "
                    "the demo stopped everything (its output is above)."
                )

    def _banner(
        self,
        options: dict[str, Any],
        token: str,
        token_file: Path,
        password: str,
        device: TOTPDevice,
    ) -> None:
        base = f"http://{options['host']}:{options['port']}"
        w = self.stdout.write
        w("")
        w("=" * 78)
        w(f"TradeOps demo on {base}   (Ctrl-C stops everything)")
        w(f"  admin:   {base}/admin/   user '{DEMO_ADMIN}', password '{password}'")
        w(
            "           + a TOTP code: scan the QR below, or run "
            f"`./dev manage otp_code {DEMO_ADMIN}`"
        )
        w(f"  otpauth: {device.config_url}")
        w(qr_text(device.config_url))
        w(f"  API token of strategy '{DEMO_STRATEGY}': {token}  (also in {token_file})")
        w(f"  API docs: {base}/api/docs/    health: {base}/health    metrics: {base}/metrics")
        w(f"  signals: curl -s {base}/api/v1/signals -H 'Authorization: Token {token}'")
        w(f"  quotes:  admin page {base}/admin/marketdata/quoteingestor/quotes/")
        w(f"           API {base}/api/v1/quotes/AAPL/latest (same token)")
        w("  place an order:")
        w(f"    curl -s -X POST {base}/api/v1/orders -H 'Authorization: Token {token}' \\")
        w("      -H 'Content-Type: application/json' \\")
        w(
            '      -d \'{"symbol":"AAPL","side":"buy","qty":10,"type":"market",'
            '"time_in_force":"day"}\''
        )
        w("  or a TWAP (here 30 shares over 5 minutes, a slice every 30 s):")
        w(f"    curl -s -X POST {base}/api/v1/orders/slice -H 'Authorization: Token {token}' \\")
        w("      -H 'Content-Type: application/json' \\")
        w(
            '      -d \'{"symbol":"AAPL","side":"buy","qty":30,"type":"market",'
            '"time_in_force":"day","duration_minutes":5,"interval_seconds":30}\''
        )
        w("=" * 78)
        self.stdout.flush()

    def _supervise(self, children: list[Child]) -> None:
        """Until a stop signal; a child that dies meanwhile fails the demo."""
        while not self._stopping:
            self._check_children(children, when="after start-up")
            time.sleep(POLL_SECONDS)

    def _stop_children(self, children: list[Child]) -> None:
        running = [c for c in children if c.proc.poll() is None]
        if running:
            self._progress("stopping " + ", ".join(c.spec.name for c in running) + "...")
        for child in running:
            child.proc.terminate()
        for child in children:
            try:
                child.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()

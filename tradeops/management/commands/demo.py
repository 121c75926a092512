"""python manage.py demo"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.models import Strategy
from orders.strategies import strategy_create, strategy_token_issue
from tradeops.otp import qr_text, totp_device_create

DEMO_STRATEGY = "demo"
DEMO_ADMIN = "admin"

# The long-running processes of a deployment (DESIGN §7), as `manage.py` arguments.
CHILDREN: dict[str, list[str]] = {
    "stream": ["stream_trade_updates"],
    "jobs": ["qcluster"],
    "slices": ["run_slices"],  # the TWAP dispatcher (second-precise; the job cluster is not)
    "quotes": ["stream_quotes", "--symbols", "AAPL,MSFT"],  # the quote ingestor
}


class Command(BaseCommand):
    help = (
        "Run the whole console locally with no keys and no services: migrates the SQLite "
        "database under var/, starts the built-in paper broker in-process, creates a demo "
        "strategy with an API token and an admin user with a TOTP device (all printed), then "
        "serves the console and runs the stream consumer, the job cluster, the TWAP slice "
        "dispatcher and the quote ingestor until Ctrl-C. Quotes go to REDIS_URL if set, else to "
        "a redis-server the demo starts on a free port if one is installed, else they stay in "
        "the ingestor's memory (served by its fallback endpoint)."
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
        # First: a SIGTERM/Ctrl-C at any later point must still stop the children cleanly.
        self._stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if not settings.USING_PAPER_BROKER:
            raise CommandError("demo runs on the built-in paper broker: unset ALPACA_API_KEY.")
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        self.stdout.write("demo: migrating the database...")
        call_command("migrate", interactive=False, verbosity=0)
        broker = self._start_broker(options["broker_port"], var)
        env = self._child_env(options["broker_port"])
        redis = self._quotes_env(env, options["quotes_port"], var)
        try:
            started = timezone.now()
            token, password, device = self._demo_users(var)
            children = self._start_children(options, env)
            if not options["only_web"]:
                self._wait_for_gate(children, started)
            self._banner(options, token, password, device)
            self._supervise(children, broker)
        finally:
            if redis is not None:
                redis.terminate()
                redis.wait(10)

    # -- steps ------------------------------------------------------------------------------
    def _start_broker(self, port: int, var: Path) -> Any:
        from paperbroker.server import PaperBrokerServer

        server = PaperBrokerServer(
            host="127.0.0.1", port=port, state_file=var / "paperbroker.json", random_walk=True
        )
        try:
            server.start()
        except OSError as exc:
            raise CommandError(f"paper broker cannot listen on port {port}: {exc}") from None
        self.stdout.write(f"demo: paper broker on {server.url} (state in {var}/paperbroker.json)")
        return server

    def _child_env(self, broker_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env["PAPERBROKER_PORT"] = str(broker_port)
        env.setdefault("TRADEOPS_VAR_DIR", str(settings.VAR_DIR))
        # The in-process settings must point at the same broker as the children.
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = f"http://127.0.0.1:{broker_port}"
        settings.ALPACA_STREAM_URL = f"ws://127.0.0.1:{broker_port}/stream"
        return env

    def _quotes_env(self, env: dict[str, str], port: int, var: Path) -> subprocess.Popen | None:
        """Where the quote ingestor writes: REDIS_URL if set; else a redis-server of the demo's
        own on a free port (no persistence), if one is installed; else nowhere (the ingestor
        runs in buffering state and its fallback endpoint serves the quotes: /health says
        quotes are degraded, orders are still priced). Returns the redis-server it started."""
        env["QUOTE_FALLBACK_PORT"] = str(port)
        env["QUOTE_FALLBACK_URL"] = settings.QUOTE_FALLBACK_URL = f"http://127.0.0.1:{port}"
        if settings.REDIS_URL:
            self.stdout.write("demo: quotes go to REDIS_URL")
            return None
        binary = shutil.which("redis-server", path=env.get("PATH"))
        if binary is None:
            self.stdout.write(
                "demo: redis-server not found: quotes stay in the ingestor's memory "
                f"(fallback endpoint http://127.0.0.1:{port})"
            )
            return None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            redis_port = probe.getsockname()[1]
        proc = subprocess.Popen(  # noqa: S603 - the installed redis-server, our arguments
            [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(var)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{redis_port}/0"
        if not self._redis_answers(url, proc):
            proc.kill()
            self.stderr.write("demo: redis-server did not start: quotes stay in memory")
            return None
        env["REDIS_URL"] = settings.REDIS_URL = url
        self.stdout.write(f"demo: quotes cache: redis-server on {url} (no persistence)")
        return proc

    @staticmethod
    def _redis_answers(url: str, proc: subprocess.Popen, timeout: float = 10) -> bool:
        from marketdata.quotes import redis_client

        client = redis_client(url, timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                return bool(client.ping())
            except Exception:
                time.sleep(0.1)
        return False

    def _demo_users(self, var: Path) -> tuple[str, str, TOTPDevice]:
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
        return token, password, device

    def _start_children(self, options: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        web = [
            *manage,
            "runserver",
            f"{options['host']}:{options['port']}",
            "--noreload",
            "--insecure",
        ]
        children = {"web": subprocess.Popen(web, env=env)}  # noqa: S603 - our own manage.py
        if not options["only_web"]:
            for name, argv in CHILDREN.items():
                children[name] = subprocess.Popen([*manage, *argv], env=env)  # noqa: S603
        return children

    def _wait_for_gate(
        self, children: dict[str, Any], started: datetime, timeout: float = 60
    ) -> None:
        """The stream consumer and the job cluster close the gate when they start; the
        cluster's startup reconciliation opens it again a few seconds later."""
        from reconciliation.models import ReconciliationState
        from reconciliation.selectors import gate_verdict

        self.stdout.write("demo: waiting for the startup reconciliation to open the gate...")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = ReconciliationState.objects.filter(pk=1).first()
            fresh = (
                state is not None
                and state.last_success_at is not None
                and (state.last_success_at >= started)
            )
            if fresh and gate_verdict().open:
                self.stdout.write("demo: gate open")
                return
            if self._stopping or any(p.poll() is not None for p in children.values()):
                return
            time.sleep(0.5)
        self.stderr.write(f"demo: gate still closed: {gate_verdict().reason}")

    def _banner(
        self, options: dict[str, Any], token: str, password: str, device: TOTPDevice
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
        w(f"  API token of strategy '{DEMO_STRATEGY}': {token}  (also in var/demo-token.txt)")
        w(f"  API docs: {base}/api/docs/    health: {base}/health    metrics: {base}/metrics")
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

    def _stop(self, *_: Any) -> None:
        self._stopping = True

    def _supervise(self, children: dict[str, Any], broker: Any) -> None:
        try:
            while not self._stopping:
                dead = [n for n, p in children.items() if p.poll() is not None]
                if dead:
                    self.stderr.write(f"demo: {', '.join(dead)} exited; stopping everything")
                    break
                time.sleep(0.5)
        finally:
            for proc in children.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in children.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            broker.stop()
            self.stdout.write("demo: stopped")

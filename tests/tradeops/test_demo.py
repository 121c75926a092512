"""`manage.py demo` end to end: the README's first command, on the embedded default (SQLite +
paper broker, no keys), in a scratch var/ directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None) -> tuple:
    headers = {"Authorization": f"Token {token}"} if token else {}
    response = requests.request(method, url, json=body, headers=headers, timeout=10)
    return response.status_code, response.json()


def start_demo(tmp_path: Path, **env_overrides: str) -> tuple[subprocess.Popen, int]:
    """``manage.py demo`` on free ports with the embedded defaults: no DATABASE_URL, no
    ALPACA_*, no REDIS_URL (the README promises no services)."""
    web, broker, quotes = free_port(), free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "ALPACA_", "REDIS_URL", "QUOTE_"))
    }
    env.update(TRADEOPS_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1", **env_overrides)
    # A file, not a pipe: nobody reads a pipe while we poll, and a full pipe blocks the demo.
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "demo",
            "--port",
            str(web),
            "--broker-port",
            str(broker),
            "--quotes-port",
            str(quotes),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, web


def wait_until_true(probe: Any, message: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, message
        time.sleep(0.2)
    return value


def test_demo_serves_the_console_on_sqlite_and_stops_cleanly(tmp_path: Path) -> None:
    proc, web = start_demo(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = http("GET", f"http://127.0.0.1:{web}/health")
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "demo.log").read_text()
                assert time.monotonic() < deadline, "demo did not come up"
                time.sleep(0.5)
        assert status == 200
        assert health["checks"]["database"]["detail"] == "sqlite"
        assert (tmp_path / "tradeops.sqlite3").exists()
        token = (tmp_path / "demo-token.txt").read_text().strip()
        status_url = f"http://127.0.0.1:{web}/api/v1/reconciliation/status"
        while not http("GET", status_url, token=token)[1]["gate"]["open"]:
            assert time.monotonic() < deadline, "the startup reconciliation never came"
            time.sleep(0.5)
        status, order = http(
            "POST",
            f"http://127.0.0.1:{web}/api/v1/orders",
            token=token,
            body={
                "symbol": "AAPL",
                "side": "buy",
                "qty": 3,
                "type": "market",
                "time_in_force": "day",
            },
        )
        assert status == 201
        assert order["status"] == "filled"
        # A TWAP: the demo's slice dispatcher sends its first slice at once.
        status, plan = http(
            "POST",
            f"http://127.0.0.1:{web}/api/v1/orders/slice",
            token=token,
            body={
                "symbol": "MSFT",
                "side": "buy",
                "qty": 2,
                "type": "market",
                "time_in_force": "day",
                "duration_minutes": 1,
                "interval_seconds": 30,
            },
        )
        assert status == 201 and plan["slice_count"] == 2, plan
        deadline = time.monotonic() + 30
        while (
            http("GET", f"http://127.0.0.1:{web}/api/v1/plans/{plan['id']}", token=token)[1][
                "filled_qty"
            ]
            < 1
        ):
            assert time.monotonic() < deadline, "the demo did not send the first slice"
            time.sleep(0.2)
        # Quotes: the ingestor streams into the demo's own redis-server.
        quote_url = f"http://127.0.0.1:{web}/api/v1/quotes/AAPL/latest"
        wait_until_true(
            lambda: http("GET", quote_url, token=token)[1].get("source") == "redis",
            "quotes never reached the demo's Redis",
        )
        wait_until_true(
            lambda: (
                http("GET", f"http://127.0.0.1:{web}/health")[1]["checks"]["quotes"]["status"]
                == "ok"
            ),
            "the quote ingestor never reported streaming",
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        output = (tmp_path / "demo.log").read_text()
        assert proc.returncode == 0, output
        assert "demo: quotes cache: redis-server on redis://127.0.0.1:" in output
        assert "password '" in output and "otpauth://totp/" in output
        assert "demo: gate open" in output
        assert "demo: stopped" in output
        assert (tmp_path / "paperbroker.json").exists()  # broker state saved
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # no child outlived the demo
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_demo_without_redis_server_keeps_quotes_in_the_ingestor(tmp_path: Path) -> None:
    """No redis-server on PATH and no REDIS_URL: the demo still comes up, the ingestor runs in
    buffering state, its fallback endpoint prices market orders, /health says why."""
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "redis-server").exists()
    )
    proc, web = start_demo(tmp_path, PATH=path)
    try:
        base = f"http://127.0.0.1:{web}"
        wait_until_true(lambda: _answers(f"{base}/health"), "demo did not come up", timeout=60)
        token = (tmp_path / "demo-token.txt").read_text().strip()
        quote = wait_until_true(
            lambda: (
                (q := http("GET", f"{base}/api/v1/quotes/MSFT/latest", token=token)[1]).get(
                    "source"
                )
                == "buffer"
                and q
            ),
            "the ingestor's buffer never answered",
        )
        assert Decimal(quote["bid"]) > 0
        check = wait_until_true(
            lambda: (
                (c := http("GET", f"{base}/health")[1]["checks"]["quotes"])["detail"].startswith(
                    "buffering"
                )
                and c
            ),
            "health never showed the ingestor buffering",
        )
        assert check["status"] == "degraded" and "REDIS_URL is not set" in check["detail"]
        wait_until_true(
            lambda: http("GET", f"{base}/api/v1/reconciliation/status", token=token)[1]["gate"][
                "open"
            ],
            "the startup reconciliation never came",
            timeout=60,
        )
        status, order = http(
            "POST",
            f"{base}/api/v1/orders",
            token=token,
            body={"symbol": "MSFT", "side": "buy", "qty": 1, "type": "market",
                  "time_in_force": "day"},
        )  # fmt: skip
        assert (status, order["status"]) == (201, "filled")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        output = (tmp_path / "demo.log").read_text()
        assert proc.returncode == 0, output
        assert "demo: redis-server not found" in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def _answers(url: str) -> bool:
    try:
        return http("GET", url)[0] == 200
    except requests.ConnectionError:
        return False

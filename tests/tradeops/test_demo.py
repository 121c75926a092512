"""`manage.py demo` end to end: the README's first command, on the embedded default (SQLite +
paper broker, no keys, no REDIS_URL), in a scratch var/ directory — with quotes and signals
through the demo's own redis-server, or quotes in the ingestor's buffer without one; and how it
fails: a busy port, a child that cannot start, a child that dies later."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_for

pytestmark = pytest.mark.slow

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None) -> tuple:
    headers = {"Authorization": f"Token {token}"} if token else {}
    response = requests.request(method, url, json=body, headers=headers, timeout=10)
    return response.status_code, response.json()


def demo_env(var: Path, **extra: str) -> dict[str, str]:
    # The embedded defaults: no DATABASE_URL, no ALPACA_*, no REDIS_URL (no services).
    skip = ("DATABASE_URL", "ALPACA_", "REDIS_URL", "QUOTE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(TRADEOPS_VAR_DIR=str(var), PYTHONUNBUFFERED="1", **extra)
    return env


def start_demo(var: Path, *args: str, **env: str) -> subprocess.Popen:
    """``manage.py demo`` in its own session, its output in ``var/demo.log`` (a file, not a
    pipe: nobody reads a pipe while we poll, and a full pipe blocks the demo)."""
    log = (var / "demo.log").open("w")
    if "--quotes-port" not in args:  # never the default 8766 another process may hold
        args = (*args, "--quotes-port", str(free_port()))
    return subprocess.Popen(
        [sys.executable, MANAGE, "demo", *args],
        env=demo_env(var, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def session_pids(proc: subprocess.Popen) -> list[int]:
    """Processes in the demo's session (the demo and its children)."""
    found = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def finish(proc: subprocess.Popen, var: Path, *, timeout: float = 60) -> str:
    """Wait for the demo to exit by itself; its output. No child may outlive it."""
    output = lambda: (var / "demo.log").read_text()  # noqa: E731
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"the demo did not exit within {timeout}s:\n{output()}") from None
    leftovers = session_pids(proc)
    if leftovers:
        os.killpg(proc.pid, signal.SIGKILL)
    assert leftovers == [], output()
    return output()


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value in a /metrics page (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def banner_shown(proc: subprocess.Popen, var: Path) -> bool:
    output = (var / "demo.log").read_text()
    assert proc.poll() is None, output
    return "TradeOps demo on" in output


def test_demo_serves_the_console_on_sqlite_and_stops_cleanly(tmp_path: Path) -> None:
    web, broker = free_port(), free_port()
    base = f"http://127.0.0.1:{web}"
    proc = start_demo(tmp_path, "--port", str(web), "--broker-port", str(broker))
    try:
        wait_for(lambda: banner_shown(proc, tmp_path), timeout=90, interval=0.2)
        # The banner comes only once every process is ready and the gate is open.
        status, health = http("GET", f"{base}/health")
        assert status == 200
        assert health["checks"]["database"]["detail"] == "sqlite"
        assert (tmp_path / "tradeops.sqlite3").exists()
        token = (tmp_path / "demo-token.txt").read_text().strip()
        assert http("GET", f"{base}/api/v1/reconciliation/status", token=token)[1]["gate"]["open"]
        order = {"symbol": "AAPL", "side": "buy", "qty": 3, "type": "market"}
        status, placed = http(
            "POST", f"{base}/api/v1/orders", token=token, body={**order, "time_in_force": "day"}
        )
        assert status == 201
        assert placed["status"] == "filled"
        # A TWAP: the demo's slice dispatcher sends its first slice at once.
        status, plan = http(
            "POST",
            f"{base}/api/v1/orders/slice",
            token=token,
            body={
                **order,
                "symbol": "MSFT",
                "qty": 2,
                "time_in_force": "day",
                "duration_minutes": 1,
                "interval_seconds": 30,
            },
        )
        assert status == 201 and plan["slice_count"] == 2, plan
        plan_url = f"{base}/api/v1/plans/{plan['id']}"
        wait_for(lambda: http("GET", plan_url, token=token)[1]["filled_qty"] >= 1, timeout=30)
        # The console's /metrics shows what the other processes count: the slice went out
        # from run_slices, the startup reconciliation ran in a job cluster worker.
        scrape = lambda: requests.get(f"{base}/metrics", timeout=10).text  # noqa: E731
        wait_for(lambda: metric(scrape(), "twap_slices_total", outcome="submitted") == 1)
        text = scrape()
        assert metric(text, "reconciliation_runs_total", kind="startup", outcome="succeeded") >= 1
        assert metric(text, "reconciliation_last_run_timestamp") > 0
        assert metric(text, "orders_submitted_total", origin="api") == 1  # the console's own
        assert (tmp_path / "prometheus").is_dir()
        # Quotes: the ingestor streams into the demo's own redis-server.
        quote_url = f"{base}/api/v1/quotes/AAPL/latest"
        wait_for(lambda: http("GET", quote_url, token=token)[1].get("source") == "redis")
        quotes_ok = lambda: http("GET", f"{base}/health")[1]["checks"]["quotes"]["status"] == "ok"  # noqa: E731
        wait_for(quotes_ok, timeout=30, interval=0.2)
        # Signals: bars synced, a first model trained, validated and activated by the job
        # cluster, the feature cache hydrated, all within the start-up.
        status, signals = http("GET", f"{base}/api/v1/signals", token=token)
        assert status == 200, signals
        assert signals["model"] == {"name": "demo-alpha", "version": 1}
        assert len(signals["signals"]) == len(settings.SIGNAL_UNIVERSE)
        status, models = http("GET", f"{base}/api/v1/models", token=token)
        assert status == 200, models
        assert models["results"][0]["status"] == "active"
        assert models["results"][0]["latest_validation"]["kind"] == "first"
        proc.send_signal(signal.SIGTERM)
        output = finish(proc, tmp_path, timeout=40)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert "password '" in output and "otpauth://totp/" in output
    assert f"(also in {tmp_path / 'demo-token.txt'})" in output  # TRADEOPS_VAR_DIR honoured
    steps = ("web ready", "stream ready", "jobs ready", "slices ready", "quotes ready")
    for step in (*steps, "gate open"):
        assert f"demo: {step} (" in output, step
    assert "demo: quotes and features: redis-server on redis://127.0.0.1:" in output
    assert "demo: signals ready (demo-alpha v1" in output
    assert "demo: stopped" in output
    assert (tmp_path / "paperbroker.json").exists()  # broker state saved


def test_a_busy_console_port_fails_the_demo_before_the_banner(
    tmp_path: Path, taken_port: int
) -> None:
    proc = start_demo(tmp_path, "--port", str(taken_port), "--broker-port", str(free_port()))
    output = finish(proc, tmp_path)
    assert proc.returncode == 1, output
    assert f"cannot listen on 127.0.0.1:{taken_port}" in output
    assert "--port" in output
    assert "TradeOps demo on" not in output and "password '" not in output


def test_a_busy_broker_port_fails_the_demo_before_the_banner(
    tmp_path: Path, taken_port: int
) -> None:
    proc = start_demo(tmp_path, "--port", str(free_port()), "--broker-port", str(taken_port))
    output = finish(proc, tmp_path)
    assert proc.returncode == 1, output
    assert f"paper broker cannot listen on 127.0.0.1:{taken_port}" in output
    assert "--broker-port" in output
    assert "TradeOps demo on" not in output and "password '" not in output


def test_a_child_that_cannot_start_fails_the_demo_and_names_it(tmp_path: Path) -> None:
    proc = start_demo(
        tmp_path,
        "--port",
        str(free_port()),
        "--broker-port",
        str(free_port()),
        DJANGO_SETTINGS_MODULE="tests.tradeops.demo_settings",
        DEMO_TEST_FAIL_COMMAND="run_slices",
    )
    output = finish(proc, tmp_path, timeout=90)
    assert proc.returncode == 1, output
    assert "slices (manage.py run_slices) exited with status 3 while starting" in output
    assert (
        "demo: stopping redis, web, stream, jobs..." in output
    )  # the others were started, and stopped
    assert "TradeOps demo on" not in output and "password '" not in output


def test_a_child_that_dies_after_start_up_stops_the_demo_and_names_it(tmp_path: Path) -> None:
    port = free_port()
    proc = start_demo(
        tmp_path, "--only-web", "--port", str(port), "--broker-port", str(free_port())
    )
    try:
        wait_for(lambda: banner_shown(proc, tmp_path), timeout=60, interval=0.2)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid), "-f", "runserver"], capture_output=True, text=True
        )
        (web,) = children.stdout.split()  # --only-web: the console is the only manage.py child
        os.kill(int(web), signal.SIGKILL)
        output = finish(proc, tmp_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, output
    assert (
        f"web (manage.py runserver 127.0.0.1:{port} --noreload --insecure) was killed by "
        "signal 9 (SIGKILL) after start-up"
    ) in output


def test_demo_without_redis_server_keeps_quotes_in_the_ingestor(tmp_path: Path) -> None:
    """No redis-server on PATH and no REDIS_URL: the demo still comes up, the ingestor runs in
    buffering state, its fallback endpoint prices market orders, /health says why."""
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "redis-server").exists()
    )
    web = free_port()
    base = f"http://127.0.0.1:{web}"
    proc = start_demo(tmp_path, "--port", str(web), "--broker-port", str(free_port()), PATH=path)
    try:
        wait_for(lambda: banner_shown(proc, tmp_path), timeout=90, interval=0.2)
        token = (tmp_path / "demo-token.txt").read_text().strip()
        quote_url = f"{base}/api/v1/quotes/MSFT/latest"
        wait_for(lambda: http("GET", quote_url, token=token)[1].get("source") == "buffer")
        assert Decimal(http("GET", quote_url, token=token)[1]["bid"]) > 0
        check = http("GET", f"{base}/health")[1]["checks"]["quotes"]
        assert check["status"] == "degraded" and "REDIS_URL is not set" in check["detail"]
        body = {"symbol": "MSFT", "side": "buy", "qty": 1, "type": "market"}
        status, order = http(
            "POST", f"{base}/api/v1/orders", token=token, body={**body, "time_in_force": "day"}
        )
        assert (status, order["status"]) == (201, "filled"), order
        proc.send_signal(signal.SIGTERM)
        output = finish(proc, tmp_path, timeout=40)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert "demo: redis-server not found" in output

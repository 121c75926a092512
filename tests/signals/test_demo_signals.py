"""`manage.py demo` (SQLite, paper broker, a private Redis) answers /api/v1/signals within its
start-up: bars synced, a first model trained, validated and activated by its job cluster, the
cache hydrated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.tradeops.test_demo import free_port

pytestmark = pytest.mark.slow


def test_demo_serves_signals_after_its_start_up(tmp_path: Path) -> None:
    web, broker = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "ALPACA_", "REDIS_URL"))
    }
    env.update(TRADEOPS_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "demo",
                "--port",
                str(web),
                "--broker-port",
                str(broker),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "TradeOps demo on" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        output = log_path.read_text()
        assert "demo: signals ready (demo-alpha v1" in output, output
        token = (tmp_path / "demo-token.txt").read_text().strip()
        answer = requests.get(
            f"http://127.0.0.1:{web}/api/v1/signals",
            headers={"Authorization": f"Token {token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == {"name": "demo-alpha", "version": 1}
        assert len(body["signals"]) == len(settings.SIGNAL_UNIVERSE)
        models = requests.get(
            f"http://127.0.0.1:{web}/api/v1/models",
            headers={"Authorization": f"Token {token}"},
            timeout=10,
        ).json()
        assert models[0]["status"] == "active"
        assert models[0]["latest_validation"]["kind"] == "first"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""  # the private redis-server stopped too

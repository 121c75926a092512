"""``manage.py paperbroker`` for real: a subprocess on a free port, SIGTERM, --help."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus
from alpaca.trading.requests import MarketOrderRequest

from paperbroker.control import PaperControl
from paperbroker.testing import start_test_server

from .helpers import fast

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = [
    "--host",
    "--port",
    "--state",
    "--seed",
    "--rate-limit",
    "--api-key",
    "--secret-key",
    "--random-walk",
    "--no-random-walk",
    "--tick-seconds",
    "--fill-model",
    "--clock",
]


def manage(*args: str, **kwargs):
    return subprocess.Popen(
        [sys.executable, "manage.py", "paperbroker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_command_serves_alpaca_py_and_stops_cleanly_on_sigterm(tmp_path):
    state_file = tmp_path / "state.json"
    process = manage(
        "--port",
        "0",
        "--no-random-walk",
        "--tick-seconds",
        "0.2",
        "--seed",
        "3",
        "--rate-limit",
        "100",
        "--api-key",
        "k1",
        "--secret-key",
        "s1",
        "--state",
        str(state_file),
    )
    try:
        first_line = process.stdout.readline()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first_line).group(1)
        trading = fast(TradingClient("k1", "s1", url_override=url))
        order = trading.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=2, side="buy", time_in_force="day")
        )
        assert order.status == OrderStatus.FILLED
        config = PaperControl(url).config()
        assert (config["random_walk"], config["tick_seconds"], config["seed"]) == (False, 0.2, 3)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "paper broker stopped (1 orders)" in out
    assert "Traceback" not in err
    assert json.loads(state_file.read_text())["orders"][0]["id"] == str(order.id)


def listening_url(process) -> str:
    first_line = process.stdout.readline()
    return re.search(r"listening on (http://127\.0\.0\.1:\d+)", first_line).group(1)


def test_restart_with_state_keeps_restored_settings_unless_given_again(tmp_path):
    state_file = tmp_path / "state.json"
    server = start_test_server(state_file=state_file)  # no random walk, 0.1 s ticks
    try:  # a drill switched to manual fills and another seed at runtime
        PaperControl(server.url).set_config(fill_model="manual", seed=7, tick_seconds=0.5)
    finally:
        server.stop()

    process = manage("--port", "0", "--state", str(state_file), "--seed", "9")
    try:
        config = PaperControl(listening_url(process)).config()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert config["seed"] == 9  # given again: the option wins
    assert (config["fill_model"], config["random_walk"], config["tick_seconds"]) == (
        "manual",
        False,
        0.5,
    )


def test_command_help_documents_every_option():
    process = manage("--help")
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "paper broker" in out.lower() and "failure drills" in out
    for option in OPTIONS:
        assert option in out, option


def test_command_reports_a_busy_port_and_a_broken_state_file(broker, tmp_path):
    busy = manage("--port", str(broker.port))
    _, err = busy.communicate(timeout=30)
    assert busy.returncode == 1
    assert "cannot listen on" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    process = manage("--port", "0", "--state", str(broken))
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "cannot restore --state" in err

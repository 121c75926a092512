"""A real Prometheus (Debian's binary) scrapes a live TradeOps with deploy/prometheus's scrape
configuration and alert rules: both targets come up, the key series are there, every rule
evaluates without error, every dashboard query is valid PromQL to the real engine, and the
kill-switch alert goes from inactive to firing when an operator engages the switch in the admin.

The configuration is deploy/prometheus/prometheus.yml with only the targets (this live server
and a real ``stream_quotes``), the intervals (1 s) and the rules' path replaced; the rules are
alerts.yml with every ``for`` set to 0 s, so that the test waits seconds, not the minute the
production rule waits (``promtool test rules`` covers the ``for`` durations)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from tests.deploy.promql import (
    ALERTS,
    QUOTES_JOB,
    SCRAPE_CONFIG,
    WEB_JOB,
    alert_rules,
    dashboard_expressions,
)
from tests.helpers import wait_for
from tests.marketdata.support import IngestorProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Prometheus:
    """``prometheus`` on a free loopback port with a temporary storage directory."""

    def __init__(self, config: Path, tmp: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: .ci/run installs Debian's prometheus package"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def api(self, path: str, **params: str) -> Any:
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def alert_state(self, name: str) -> str:
        states = [
            a["state"] for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name
        ]
        return states[0] if states else "inactive"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def rules_for_test(tmp: Path) -> Path:
    """alerts.yml with every ``for`` at 0 s (everything else as deployed)."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    path = tmp / "alerts.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def scrape_config(tmp: Path, targets: dict[str, str]) -> Path:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules_for_test(tmp))]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def prometheus(
    live_server: Any,
    paper: Any,
    paper_server: Any,
    trading_ready: None,
    settings: Any,
    tmp_path: Path,
) -> Iterator[Prometheus]:
    ingestor = IngestorProcess(paper, paper_server, tmp_path, REDIS_URL=settings.REDIS_URL or "")
    ingestor.start("--symbols", "AAPL")
    server = None
    try:
        web = urlsplit(live_server.url).netloc
        config = scrape_config(tmp_path, {WEB_JOB: web, QUOTES_JOB: f"127.0.0.1:{ingestor.port}"})
        server = Prometheus(config, tmp_path)
        wait_for(server.ready, timeout=20, interval=0.2)
        yield server
    finally:
        if server is not None:
            server.stop()
        ingestor.kill()


def up(prometheus: Prometheus, job: str) -> bool:
    return any(r["value"][1] == "1" for r in prometheus.query(f'up{{job="{job}"}}'))


def test_prometheus_scrapes_tradeops_and_fires_the_kill_switch_alert(
    prometheus: Prometheus, ops_admin: Any
) -> None:
    wait_for(lambda: up(prometheus, WEB_JOB) and up(prometheus, QUOTES_JOB), timeout=30)
    for expr in (
        f'trading_switch_engaged{{job="{WEB_JOB}", switch="kill_switch"}} == 0',
        f'reconciliation_gate_open{{job="{WEB_JOB}"}} == 1',
        f'orders_open{{job="{WEB_JOB}"}}',
        f'orders_unconfirmed_oldest_age_seconds{{job="{WEB_JOB}"}}',
        f'twap_dispatchers_running{{job="{WEB_JOB}"}}',
        f'trade_streams_connected{{job="{WEB_JOB}"}}',
        f'broker_requests_total{{job="{WEB_JOB}"}}',
        f'quote_stream_connects_total{{job="{QUOTES_JOB}"}}',
    ):
        assert prometheus.query(expr), f"no series for {expr}"

    # Every rule is loaded and evaluates without error.
    wait_for(
        lambda: all(
            rule.get("lastEvaluation", "").startswith("20")
            for group in prometheus.api("rules")["groups"]
            for rule in group["rules"]
        ),
        timeout=10,
    )
    rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for r in alert_rules())
    assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
    # Every dashboard query is valid PromQL to the real engine.
    for title, expr in dashboard_expressions():
        prometheus.query(expr)  # asserts status "success"
        assert title

    assert prometheus.alert_state("KillSwitchEngaged") == "inactive"
    engaged = ops_admin.post(
        "/admin/orders/tradingswitch/",
        {
            "action": "engage",
            "_selected_action": ["kill_switch"],
            "confirmed": "yes",
            "reason": "prometheus drill",
        },
    )
    assert engaged.status_code == 302, engaged.content
    wait_for(lambda: prometheus.alert_state("KillSwitchEngaged") == "firing", timeout=20)
    (alert,) = [
        a
        for a in prometheus.api("alerts")["alerts"]
        if a["labels"]["alertname"] == "KillSwitchEngaged"
    ]
    assert alert["labels"] == {
        "alertname": "KillSwitchEngaged",
        "job": WEB_JOB,
        "severity": "critical",
        "switch": "kill_switch",
    }
    assert alert["annotations"]["runbook_url"] == "docs/runbook.md#killswitchengaged"

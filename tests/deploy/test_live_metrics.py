"""Every series the Grafana dashboard and the alert rules read exists on what a running
TradeOps exposes after it has done some work: the web's /metrics (job "tradeops") and the quote
ingestor's own endpoint (job "tradeops-quotes"). Metric names come from parsing the PromQL
(tests/deploy/promql.py); a name must be a sample of an exposed family with the suffix its type
has (a counter NAME_total, a histogram NAME_bucket/_count/_sum), and the label matchers must
select at least one series. A new panel or rule is checked as soon as it is added."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.live import Exposition, exercise, ingestor_scraped
from tests.deploy.promql import (
    QUOTES_JOB,
    WEB_JOB,
    alert_rules,
    dashboard_expressions,
    selectors,
)
from tests.marketdata.support import IngestorProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_dashboard_and_alerts_read_only_series_a_running_instance_exposes(
    paper: Any,
    paper_server: Any,
    trader: Any,
    ops_admin: Any,
    client: Any,
    stored_bars: Any,
    q_sync: None,
    settings: Any,
    tmp_path: Path,
) -> None:
    exercise(paper=paper, trader=trader, ops_admin=ops_admin)
    ingestor = IngestorProcess(paper, paper_server, tmp_path, REDIS_URL=settings.REDIS_URL)
    ingestor.start("--symbols", "AAPL")
    try:
        pages = {
            QUOTES_JOB: ingestor_scraped(ingestor.url),
            WEB_JOB: Exposition.parse(client.get("/metrics").content.decode()),
        }
    finally:
        ingestor.kill()
    expressions = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    expressions += [(f"panel {title!r}", expr) for title, expr in dashboard_expressions()]
    problems = [
        f"{where}: {problem}"
        for where, expr in expressions
        for selector in selectors(expr)
        if (problem := pages[selector.job].problem(selector))
    ]
    assert problems == []


def test_the_check_finds_a_misspelt_metric_a_wrong_suffix_and_an_absent_series() -> None:
    page = Exposition.parse(
        "# TYPE orders_submitted counter\n"
        'orders_submitted_total{origin="api"} 1.0\n'
        "# TYPE twap_slice_lateness_seconds histogram\n"
        'twap_slice_lateness_seconds_bucket{le="+Inf"} 1.0\n'
        "twap_slice_lateness_seconds_count 1.0\n"
        "twap_slice_lateness_seconds_sum 0.1\n"
    )

    def problem(expr: str) -> str | None:
        (selector,) = selectors(expr)
        return page.problem(selector)

    assert problem('rate(orders_submitted_total{job="tradeops", origin="api"}[1m])') is None
    assert problem("rate(twap_slice_lateness_seconds_bucket[1m])") is None
    assert problem("up") is None  # made by Prometheus
    assert "no such metric" in problem("orders_submited_total")
    assert "no such metric" in problem("orders_submitted")  # a counter without _total
    assert "no such metric" in problem("twap_slice_lateness_seconds")  # a bare histogram
    assert "no such metric" in problem("orders_submitted_created")  # not in multiprocess mode
    assert "no series matches" in problem('orders_submitted_total{origin="twap"}')
    assert "no series matches" in problem('orders_submitted_total{origin=~"tw.*"}')

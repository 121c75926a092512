"""deploy/grafana/tradeops.json is a dashboard Grafana imports as it is: its Prometheus data
source is a variable, its rows are the ones operators look for, and every panel's PromQL
parses and names the job it reads. Whether those series exist is checked against a running
instance in test_live_metrics.py."""

from __future__ import annotations

import pytest

from tests.deploy.promql import (
    QUOTES_JOB,
    WEB_JOB,
    dashboard,
    dashboard_expressions,
    dashboard_panels,
    selectors,
)

ROWS = [
    "Trading health",
    "Orders",
    "Reconciliation",
    "TWAP",
    "Quotes",
    "Signals",
    "Broker",
    "Operators",
]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_the_dashboard_is_importable_with_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39
    assert board["uid"] == "tradeops" and board["title"] == "TradeOps"
    assert board["id"] is None  # Grafana assigns it on import
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    assert [p["title"] for p in board["panels"] if p["type"] == "row"] == ROWS


def test_every_panel_reads_the_datasource_variable_and_has_a_query() -> None:
    panels = dashboard_panels()
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize(
    ("title", "expr"), dashboard_expressions(), ids=[t for t, _ in dashboard_expressions()]
)
def test_every_query_parses_and_names_the_job_it_reads(title: str, expr: str) -> None:
    found = selectors(expr)
    assert found, f"{title}: no series selected"
    for selector in found:
        assert selector.job in {WEB_JOB, QUOTES_JOB}, (title, selector)

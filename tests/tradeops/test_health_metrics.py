"""/health, /ready, /metrics and the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.helpers import place
from tests.marketdata.support import ingestor_reporting

pytestmark = pytest.mark.django_db


def test_health_is_200_and_ready_when_database_and_broker_answer(
    trading_ready: None, client: Any
) -> None:
    ingestor_reporting(state="streaming")  # a stream_quotes is running
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    assert client.get("/ready").status_code == 200


def test_broker_outage_degrades_health_but_not_readiness(
    trading_ready: None, paper: Any, client: Any
) -> None:
    paper.add_fault(method="GET", path="/v2/clock", mode="error500", count=-1)
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["broker"]["status"] == "degraded"
    assert client.get("/ready").status_code == 200  # cancels must still be served


def test_metrics_count_submits_and_rejections(paper: Any, trader: Any, client: Any) -> None:
    from orders.controls import trading_switch_set

    def sample(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = client.get("/metrics").content.decode()
    place(trader)
    trading_switch_set(name="kill_switch", engaged=True, actor="test", reason="drill x")
    place(trader, qty=3)
    after = client.get("/metrics").content.decode()
    submitted = 'orders_submitted_total{origin="api"}'
    rejected = 'orders_rejected_total{reason="kill_switch"}'
    assert sample(after, submitted) == sample(before, submitted) + 1
    assert sample(after, rejected) == sample(before, rejected) + 1
    assert 'trading_switch_engaged{switch="kill_switch"} 1.0' in after
    submits = 'broker_requests_total{call="submit_order"}'
    assert sample(after, submits) == sample(before, submits) + 1


def broken_gauges() -> Any:
    """An app's gauges whose query fails (its database table is gone, say)."""
    raise RuntimeError("relation does not exist")
    yield  # a generator, like the real ones


def test_metrics_list_every_apps_database_gauges_and_survive_a_broken_one(
    client: Any, settings: Any, trading_switches: None
) -> None:
    settings.METRICS_DB_GAUGES = [
        "tests.tradeops.test_health_metrics.broken_gauges",
        *settings.METRICS_DB_GAUGES,
    ]
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    for gauge in (
        'trading_switch_engaged{switch="kill_switch"} 0.0',
        "orders_open 0.0",
        "reconciliation_gate_open 0.0",
        "quarantines_active 0.0",
    ):
        assert gauge in text


def test_openapi_schema_documents_the_order_api(client: Any) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    for path in (
        "/api/v1/orders",
        "/api/v1/orders/{client_order_id}",
        "/api/v1/orders/{client_order_id}/cancel",
    ):
        assert path in paths
    assert "post" in paths["/api/v1/orders"]
    assert {"strategyToken": []} in paths["/api/v1/orders"]["post"]["security"]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["strategyToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schemes["strategyToken"]["description"],
    }
    requests = schema["components"]["schemas"]
    order = requests["OrderRequest"]
    assert order["additionalProperties"] is False
    assert order["properties"]["qty"]["oneOf"][0] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1_000_000,  # ORDER_MAX_QTY
    }
    assert order["properties"]["symbol"]["pattern"] == "^[A-Za-z]{1,6}(\\.[A-Za-z]{1,2})?$"
    assert order["properties"]["limit_price"]["type"] == "string"
    assert "pattern" in order["properties"]["limit_price"]
    interval = requests["SliceRequest"]["properties"]["interval_seconds"]["oneOf"][0]
    assert interval == {"type": "integer", "minimum": 1, "maximum": 3600}
    assert client.get("/api/docs/").status_code == 200

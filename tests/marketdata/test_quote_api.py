"""GET /api/v1/quotes/{symbol}/latest: who may call it, what it answers, every failure a clear
4xx/503 with the error envelope; and its OpenAPI description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from marketdata.ingest import RedisQuoteWriter
from marketdata.quoting import Quote
from tradeops.symbols import SYMBOL_PATTERN

pytestmark = pytest.mark.django_db


def store(settings: Any, symbol: str, *, age: float, bid: str, ask: str) -> None:
    made = datetime.now(UTC) - timedelta(seconds=age)
    quote = Quote(symbol, Decimal(bid), Decimal(ask), 7, 9, made, made)
    RedisQuoteWriter(settings.REDIS_URL).write([quote])


def test_a_strategy_reads_the_latest_quote(paper: Any, trader: Any, settings: Any) -> None:
    store(settings, "BRK.B", age=0.5, bid="412.30", ask="412.40")
    response = trader.get("/api/v1/quotes/brk.b/latest")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("symbol", "bid", "ask", "bid_size", "ask_size", "mid")} == {
        "symbol": "BRK.B",
        "bid": "412.3000",
        "ask": "412.4000",
        "bid_size": 7,
        "ask_size": 9,
        "mid": "412.3500",
    }
    assert body["source"] == "redis" and 0.5 <= body["age_seconds"] < 5
    assert body["timestamp"].endswith("Z")


def test_verified_staff_may_read_quotes_and_anonymous_may_not(paper: Any, ops_admin: Any) -> None:
    assert ops_admin.get("/api/v1/quotes/AAPL/latest").json()["source"] == "broker"
    anonymous = APIClient().get("/api/v1/quotes/AAPL/latest")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("raw", ["AAPL1", "%C4%B1bm", "TOOLONGX", "A.B.C", "BRK.", "%20AAPL"])
def test_a_malformed_symbol_is_a_400(trader: Any, raw: str) -> None:
    response = trader.get(f"/api/v1/quotes/{raw}/latest")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_a_stale_quote_is_a_503_with_its_age(paper: Any, trader: Any, settings: Any) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 10
    store(settings, "MSFT", age=120, bid="300.00", ask="300.10")
    paper.add_fault(method="GET", path="/v2/stocks/quotes/latest", mode="error500", count=-1)
    response = trader.get("/api/v1/quotes/MSFT/latest")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "quote_stale"
    assert 120 <= error["details"]["age_seconds"] < 130
    assert error["details"]["source"] == "redis" and error["details"]["max_age_seconds"] == 10
    assert response["Retry-After"] == str(settings.QUOTE_RETRY_AFTER_SECONDS)


def test_no_quote_anywhere_is_a_503_quote_unavailable(paper: Any, trader: Any) -> None:
    paper.add_fault(method="GET", path="/v2/stocks/quotes/latest", mode="timeout", count=-1)
    response = trader.get("/api/v1/quotes/TSLA/latest")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "quote_unavailable"
    assert response["Retry-After"]


def test_the_quote_endpoint_is_in_the_openapi_schema(client: Any) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"]["/api/v1/quotes/{symbol}/latest"]["get"]
    assert {"200", "400", "401", "503"} <= set(operation["responses"])
    (symbol,) = [p for p in operation["parameters"] if p["name"] == "symbol"]
    assert symbol["schema"]["pattern"] == SYMBOL_PATTERN  # the one rule, as the orders API
    quote = schema["components"]["schemas"]["Quote"]["properties"]
    assert quote["source"]["allOf"] == [{"$ref": "#/components/schemas/QuoteSourceEnum"}]
    assert schema["components"]["schemas"]["QuoteSourceEnum"]["enum"] == [
        "redis",
        "buffer",
        "broker",
    ]
    assert {"bid", "ask", "mid", "timestamp", "age_seconds"} <= set(quote)

"""The orphan and quarantine listings through HTTP: filters and their defaults."""

from __future__ import annotations

from typing import Any

import pytest

from reconciliation.models import OrphanOrder
from reconciliation.services import orphan_cancel
from tests.helpers import reconcile

pytestmark = pytest.mark.django_db


def orphans_on(paper: Any, *symbols: str) -> dict[str, OrphanOrder]:
    """A resting orphan order on each symbol, found by a reconciliation (each quarantined)."""
    for symbol in symbols:
        paper.place_order(symbol, 7, "buy", type="limit", limit_price="10.00", time_in_force="gtc")
    reconcile()
    return {o.symbol: o for o in OrphanOrder.objects.filter(symbol__in=symbols)}


@pytest.fixture
def one_active_one_cleared(paper: Any, trading_ready: None) -> None:
    """MSFT quarantined (active); TSLA's orphan canceled, so its quarantine is cleared."""
    orphans = orphans_on(paper, "MSFT", "TSLA")
    orphan_cancel(orphan=orphans["TSLA"], actor="test", reason="not ours, canceled")


def keys(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    rows = response.json()["results"]
    return sorted(f"{q['key']}:{'active' if q['active'] else 'cleared'}" for q in rows)


def test_quarantines_without_a_filter_lists_active_and_cleared(
    trader: Any, one_active_one_cleared: None
) -> None:
    assert keys(trader.get("/api/v1/quarantines")) == ["*:MSFT:active", "*:TSLA:cleared"]


@pytest.mark.parametrize(
    ("active", "expected"),
    [
        ("true", ["*:MSFT:active"]),
        ("false", ["*:TSLA:cleared"]),
    ],
)
def test_quarantines_active_filter(
    trader: Any, one_active_one_cleared: None, active: str, expected: list[str]
) -> None:
    assert keys(trader.get("/api/v1/quarantines", {"active": active})) == expected


FULL_WIDTH_TRUE = "\uff54\uff52\uff55\uff45"


@pytest.mark.parametrize("active", ["maybe", "yes", "1", "True", "TRUE ", FULL_WIDTH_TRUE])
def test_a_bad_active_filter_is_400(trader: Any, active: str) -> None:
    response = trader.get("/api/v1/quarantines", {"active": active})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "active" in response.json()["error"]["details"]["fields"]


@pytest.mark.parametrize("path", ["/api/v1/orphans", "/api/v1/quarantines"])
def test_symbol_filters_are_validated_as_sent_then_upper_cased(
    trader: Any, one_active_one_cleared: None, path: str
) -> None:
    rows = trader.get(path, {"symbol": "msft"}).json()["results"]
    assert {row["symbol"] for row in rows} == {"MSFT"}
    for bad in ("m\u0131sft", "MSFT ", "MS!FT"):
        response = trader.get(path, {"symbol": bad})
        assert response.status_code == 400, bad
        assert "symbol" in response.json()["error"]["details"]["fields"]


@pytest.mark.parametrize("path", ["/api/v1/orphans", "/api/v1/quarantines"])
def test_lists_page_like_orders_newest_first(
    trader: Any, one_active_one_cleared: None, path: str
) -> None:
    first = trader.get(path, {"limit": 1}).json()
    second = trader.get(first["next"]).json()
    assert first["previous"] is None and second["next"] is None
    ids = [row["id"] for row in first["results"] + second["results"]]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    assert trader.get(path, {"cursor": "cD1hYmM="}).status_code == 400


def test_every_list_endpoint_is_paginated() -> None:
    """One convention: no GET operation in the schema answers a bare JSON array."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    bare = []
    for path, item in schema["paths"].items():
        ok = item.get("get", {}).get("responses", {}).get("200", {})
        body = ok.get("content", {}).get("application/json", {}).get("schema", {})
        if body.get("type") == "array":
            bare.append(path)
        elif "$ref" in body and "Paginated" in body["$ref"]:
            params = {p["name"] for p in item["get"].get("parameters", [])}
            assert {"cursor", "limit"} <= params, path
    assert bare == []

"""One rule for every API query string (tradeops.api_fields.QueryFilterSerializer, applied by
tradeops.api_views.ApiView), checked over every GET operation of the OpenAPI schema: what an
endpoint does not read is a 400 naming it, blank and repeated parameters are 400s, and only a
paginated listing takes ``cursor`` and ``limit``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


def _get_operations() -> list[tuple[str, dict[str, Any]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(path, item["get"]) for path, item in schema["paths"].items() if "get" in item]


GET_OPERATIONS = _get_operations()


def url_of(path: str, operation: dict[str, Any]) -> str:
    """The path with each path parameter filled in (its answer does not matter: the query
    string is judged first)."""
    kinds = {p["name"]: p["schema"].get("type") for p in operation.get("parameters", [])}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return "1" if kinds.get(name) == "integer" else "AAPL" if name == "symbol" else "x1"

    return re.sub(r"\{(\w+)\}", value, path)


def query_names(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


def refused(response: Any, name: str, reason: str) -> bool:
    body = response.json()
    return (
        response.status_code == 400
        and body["error"]["code"] == "validation_error"
        and body["error"]["details"]["fields"].get(name) == [reason]
        and name in body["error"]["message"]
    )


def test_the_schema_has_the_get_operations_this_checks() -> None:
    paths = {path for path, _ in GET_OPERATIONS}
    assert {"/api/v1/orders", "/api/v1/signals", "/api/v1/models"} <= paths
    assert len(paths) >= 10


@pytest.mark.parametrize(("path", "operation"), GET_OPERATIONS, ids=[p for p, _ in GET_OPERATIONS])
def test_an_unknown_parameter_is_refused_by_name(
    trader: Any, path: str, operation: dict[str, Any]
) -> None:
    response = trader.get(url_of(path, operation), {"symbl": "AAPL"})
    assert refused(response, "symbl", "Unknown parameter."), response.json()


@pytest.mark.parametrize(("path", "operation"), GET_OPERATIONS, ids=[p for p, _ in GET_OPERATIONS])
def test_only_a_paginated_listing_takes_cursor_and_limit(
    trader: Any, path: str, operation: dict[str, Any]
) -> None:
    response = trader.get(url_of(path, operation), {"limit": "1"})
    if {"cursor", "limit"} <= query_names(operation):
        assert not refused(response, "limit", "Unknown parameter."), response.json()
        assert response.status_code != 400, response.json()
    else:
        assert refused(response, "limit", "Unknown parameter."), response.json()


@pytest.mark.parametrize(("path", "operation"), GET_OPERATIONS, ids=[p for p, _ in GET_OPERATIONS])
def test_a_blank_or_repeated_filter_is_refused(
    trader: Any, path: str, operation: dict[str, Any]
) -> None:
    for name in sorted(query_names(operation) - {"cursor", "limit"}):
        blank = trader.get(url_of(path, operation), {name: ""})
        assert refused(blank, name, "May not be blank: leave the parameter out for no filter.")
        twice = trader.get(f"{url_of(path, operation)}?{name}=a&{name}=b")
        assert refused(twice, name, "Given more than once.")


def test_a_post_takes_no_query_parameters_either(trader: Any) -> None:
    """``POST /orders?dry_run=true`` must not quietly place a real order."""
    body = {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit", "limit_price": "1.00",
            "time_in_force": "day"}  # fmt: skip
    response = trader.post("/api/v1/orders?dry_run=true", body, format="json")
    assert refused(response, "dry_run", "Unknown parameter.")
    listing_filter = trader.post("/api/v1/orders?status=open", body, format="json")
    assert refused(listing_filter, "status", "Unknown parameter.")

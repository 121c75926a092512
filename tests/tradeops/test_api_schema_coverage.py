"""Every API route is in the OpenAPI schema, so the schemathesis run (which finds its
operations there) fuzzes every endpoint; a route left out of the schema would escape it."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver

from tests.tradeops.api_coverage import schema_operations


def api_routes() -> set[str]:
    """Django's routes under /api/v1/, as view names."""
    names: set[str] = set()

    def walk(patterns: list, prefix: str, namespace: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, route, ns)
            elif isinstance(p, URLPattern) and route.startswith("api/v1/"):
                names.add(namespace + (p.name or route))

    walk(get_resolver().url_patterns, "", "")
    return names


def test_every_api_route_has_operations_in_the_schema() -> None:
    in_schema = set(schema_operations().values())
    assert api_routes() - in_schema == set()
    assert len(in_schema) >= 13  # orders, plans, reconciliation, orphans, quotes, signals, ...

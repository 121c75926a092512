"""Which API operations a fuzz run reached: the operations of /api/schema/ mapped to Django
view names, and the responses the live server (a thread of the test process) counted per view,
method and status in django-prometheus' request metrics."""

from __future__ import annotations

import re
from collections import Counter

from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from prometheus_client import REGISTRY

METHODS = ("get", "post", "put", "patch", "delete")
RESPONSES = "django_http_responses_total_by_status_view_method"

Operation = tuple[str, str]  # ("POST", "/api/v1/orders")


def schema_operations() -> dict[Operation, str]:
    """Every operation of the OpenAPI schema -> the view name its path resolves to."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {}
    for path, item in schema["paths"].items():
        view = resolve(re.sub(r"\{[^}]+\}", "1", path)).view_name
        for method in METHODS:
            if method in item:
                operations[(method.upper(), path)] = view
    return operations


def responses() -> Counter[tuple[str, str, int]]:
    """Responses so far, by (view name, method, status)."""
    counts: Counter[tuple[str, str, int]] = Counter()
    for family in REGISTRY.collect():
        if family.name != RESPONSES:
            continue
        for sample in family.samples:
            if sample.name == f"{RESPONSES}_total":
                key = (sample.labels["view"], sample.labels["method"], int(sample.labels["status"]))
                counts[key] += int(sample.value)
    return counts


def unreached(
    before: Counter[tuple[str, str, int]], *, past_auth: bool
) -> dict[str, dict[int, int]]:
    """The schema's operations that got no response since ``before`` (``past_auth``: none but
    401/403), each with what it did get."""
    since = responses() - before
    missing = {}
    for (method, path), view in schema_operations().items():
        got = {s: n for (v, m, s), n in since.items() if v == view and m == method}
        reached = {s: n for s, n in got.items() if not past_auth or s not in (401, 403)}
        if not reached:
            missing[f"{method} {path}"] = got
    return missing

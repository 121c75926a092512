"""/health (liveness: 200 while the process can answer; "healthy" or "degraded") and /ready
(readiness: 503 until every readiness check passes). Checks are listed in settings.HEALTH_CHECKS
so each app contributes its own (gate state, feature hydration, quote source...)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string

OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # ok | degraded | down
    ready: bool  # False keeps /ready at 503
    detail: str = ""


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return CheckResult("database", DOWN, False, f"{exc.__class__.__name__}: {exc}")
    if pending:
        return CheckResult("database", DEGRADED, False, f"{len(pending)} migrations not applied")
    return CheckResult("database", OK, True, connection.vendor)


_broker_cache: dict[str, Any] = {}


def check_broker() -> CheckResult:
    """Broker reachability, cached for 10 s so probes do not eat the 200/min request budget.
    Not a readiness condition: cancels must keep working while the broker is away."""
    cached = _broker_cache.get("result")
    if cached and time.monotonic() - _broker_cache["at"] < 10:
        return cached
    from tradeops.broker import BrokerError, get_broker

    try:
        clock = get_broker().get_clock()
        result = CheckResult(
            "broker", OK, True, "market open" if clock.is_open else "market closed"
        )
    except BrokerError as exc:
        result = CheckResult("broker", DEGRADED, True, exc.message)
    _broker_cache.update(result=result, at=time.monotonic())
    return result


def run_checks() -> list[CheckResult]:
    results = []
    for path in settings.HEALTH_CHECKS:
        try:
            results.append(import_string(path)())
        except Exception as exc:  # a broken check reports itself, it does not 500 the probe
            results.append(CheckResult(path, DOWN, False, f"{exc.__class__.__name__}: {exc}"))
    return results


def _payload(results: list[CheckResult]) -> dict[str, Any]:
    status = "healthy" if all(r.status == OK for r in results) else "degraded"
    return {
        "status": status,
        "ready": all(r.ready for r in results),
        "checks": {r.name: asdict(r) for r in results},
    }


def health_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_payload(run_checks()), status=200)


def ready_view(request: HttpRequest) -> JsonResponse:
    payload = _payload(run_checks())
    return JsonResponse(payload, status=200 if payload["ready"] else 503)

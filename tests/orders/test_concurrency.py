"""Concurrent submits on PostgreSQL: the symbol lock keeps two orders from jointly breaching;
the same request at once (an order, a TWAP plan) is one row."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from orders.models import Order, RiskLimit, SlicingPlan
from tests.helpers import metric, place
from tests.orders import slow_check
from tests.orders.twap_support import twap

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_concurrent_orders_that_together_breach_the_position_limit(
    paper: Any, trader: APIClient, settings: Any
) -> None:
    RiskLimit.objects.update_or_create(symbol="AAPL", defaults={"max_position_qty": 100})
    # Hold each order inside its risk transaction for a moment: without the row lock both
    # would pass their checks before either inserted.
    settings.PRETRADE_CHECKS = [
        *settings.PRETRADE_CHECKS,
        "tests.orders.slow_check.check_hold_lock",
    ]
    token = trader._credentials["HTTP_AUTHORIZATION"]
    barrier = threading.Barrier(2)
    results: list[int] = []

    def submit(qty: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=token)
        barrier.wait()
        try:
            results.append(place(client, qty=qty, type="limit", limit_price="99.00").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(qty,)) for qty in (60, 61)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [201, 422]
    assert Order.objects.count() == 1
    assert Order.objects.get().qty in (60, 61)


def test_same_request_concurrently_is_one_order(paper: Any, trader: APIClient) -> None:
    token = trader._credentials["HTTP_AUTHORIZATION"]
    barrier = threading.Barrier(3)
    results: list[tuple[int, str]] = []

    def submit() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=token)
        barrier.wait()
        try:
            r = place(client, qty=5)
            results.append((r.status_code, r.json()["client_order_id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len({coid for _, coid in results}) == 1
    assert sorted(code for code, _ in results) == [200, 200, 201]
    assert Order.objects.count() == 1
    coid = results[0][1]
    posts = [r for r in paper.requests() if r["path"] == "/v2/orders" and r["method"] == "POST"]
    assert [r.get("client_order_id") for r in posts] == [coid]


def test_same_plan_request_concurrently_is_one_plan_the_losers_replay_the_winner(
    paper: Any, trader: APIClient, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # All three pass "no such plan yet" before any inserts: two inserts then fail on the
    # plan's unique key, under the symbol lock, and answer with the winner's plan.
    monkeypatch.setattr(slow_check, "MEETING", threading.Barrier(3))
    settings.PRETRADE_PREPARE = [*settings.PRETRADE_PREPARE, "tests.orders.slow_check.prepare_meet"]
    token = trader._credentials["HTTP_AUTHORIZATION"]
    replays_before = metric("orders_idempotent_replays_total")
    results: list[tuple[int, int]] = []

    def submit() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=token)
        try:
            r = twap(client, type="limit", limit_price="99.00")
            results.append((r.status_code, r.json()["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(code for code, _ in results) == [200, 200, 201]
    assert len({plan_id for _, plan_id in results}) == 1
    assert SlicingPlan.objects.count() == 1
    assert Order.objects.count() == SlicingPlan.objects.get().slice_count
    assert metric("orders_idempotent_replays_total") - replays_before == 2

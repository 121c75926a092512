"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

from django.core.management import call_command
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient


def place(client: APIClient, **overrides: Any) -> Any:
    """POST an order; a 10-share AAPL market buy unless overridden."""
    body = {"symbol": "AAPL", "side": "buy", "qty": 10, "type": "market", "time_in_force": "day"}
    body.update(overrides)
    return client.post("/api/v1/orders", body, format="json")


def totp_now(device: Any, *, offset_steps: int = 0) -> str:
    """The device's code for now (+ offset steps): what the authenticator app would show."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


def next_code(device: Any) -> str:
    """A code the device accepts now: this step's, or the next one when this step's code was
    already used (django-otp refuses a step at or before ``last_t``). Fails rather than
    returning a code that would be refused (and throttled)."""
    from django_otp.oath import TOTP

    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    offset = max(0, device.last_t + 1 - totp.t())
    assert offset <= device.tolerance, "no fresh code left in this step; the test uses too many"
    return totp_now(device, offset_steps=offset)


def step_up_of(user: Any, action: str) -> Any:
    """A real step-up of ``user`` for ``action``: a fresh code of their device, verified."""
    from tradeops.otp import step_up_verify

    return step_up_verify(user=user, token=next_code(user.totpdevice_set.get()), action=action)


def metric(name: str, **labels: str) -> float:
    """A sample's value in this process's Prometheus registry (0 while it has none)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def reconcile(*args: str) -> str:
    """``manage.py reconcile --once [args]`` in this process; its output."""
    out = StringIO()
    call_command("reconcile", "--once", *args, stdout=out)
    return out.getvalue()


def wait_for(predicate: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def token_client(strategy_id: str) -> APIClient:
    """An API client with a fresh token of ``strategy_id`` (created if needed)."""
    from orders.models import Strategy
    from orders.strategies import strategy_create, strategy_token_issue

    strategy = Strategy.objects.filter(pk=strategy_id).first() or strategy_create(
        strategy_id=strategy_id, actor="test"
    )
    client = APIClient()
    key = strategy_token_issue(strategy=strategy, actor="test")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def mirror_orders(paper: Any, n: int, *, start: datetime, per_instant: int = 3) -> list[dict]:
    """n filled orders at the broker and the same n in the database, in agreement
    (``per_instant`` of them share each submitted_at).

    Built in bulk on both sides: placing 10,000 orders one by one through the API would
    measure the API, not reconciliation (used by the scale test and bench/)."""
    from orders.models import Order, Strategy

    created = paper.place_orders(
        {
            "symbol": "AAPL",
            "side": "buy",
            "qty": 1,
            "type": "market",
            "time_in_force": "day",
            "client_order_id": f"mirror-{n}-{i}",
            "submitted_at": (start + timedelta(milliseconds=i // per_instant)).isoformat(),
        }
        for i in range(n)
    )
    strategy = Strategy.objects.get_or_create(id="alpha")[0]
    Order.objects.bulk_create(
        [
            Order(
                client_order_id=o["client_order_id"],
                strategy=strategy,
                symbol="AAPL",
                side="buy",
                qty=1,
                order_type="market",
                time_in_force="day",
                status=o["status"],
                status_rank=5,
                is_terminal=True,
                filled_qty=int(o["filled_qty"]),
                filled_avg_price=Decimal(o["filled_avg_price"]),
                broker_order_id=o["id"],
                broker_updated_at=parse_datetime(o["updated_at"]),
                trade_date=start.date(),
                origin="api",
                created_at=start,
                send_claimed_at=start,
                submitted_at=parse_datetime(o["submitted_at"]),
            )
            for o in created
        ],
        batch_size=2000,
    )
    return created


def scraped(client: Any, name: str, **labels: str) -> float | None:
    """A sample's value on ``GET /metrics`` as Prometheus would read it (None: no such sample),
    database gauges computed at scrape time included."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None

"""The broker acts only on requests it received whole.

Driven at the ASGI interface (what uvicorn calls), because the case is a client that dies
between its headers and the end of its body: over a socket nothing observable would say when
the server had seen the disconnect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from paperbroker.asgi import build_app
from paperbroker.engine import Engine

from .helpers import KEY, SECRET

ORDER = {
    "symbol": "AAPL",
    "qty": "1",
    "side": "buy",
    "type": "market",
    "time_in_force": "day",
    "client_order_id": "whole-or-nothing",
}


def post_orders(body_messages: list[dict[str, Any]]) -> tuple[Engine, list[dict[str, Any]]]:
    """POST /v2/orders to a fresh app, the request body arriving as ``body_messages``."""
    engine = Engine()
    app = build_app(engine, api_key=KEY, secret_key=SECRET)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/orders",
        "query_string": b"",
        "headers": [
            (b"apca-api-key-id", KEY.encode()),
            (b"apca-api-secret-key", SECRET.encode()),
            (b"content-type", b"application/json"),
        ],
    }
    inbox = list(body_messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return engine, sent


def test_a_body_cut_off_by_a_disconnect_is_neither_processed_nor_logged() -> None:
    body = json.dumps(ORDER).encode()
    engine, sent = post_orders(
        [
            {"type": "http.request", "body": body[:25], "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    assert sent == []
    assert list(engine.request_log) == []
    assert engine.state_json()["orders"] == []


def test_the_same_body_delivered_whole_in_two_parts_places_the_order() -> None:
    body = json.dumps(ORDER).encode()
    engine, sent = post_orders(
        [
            {"type": "http.request", "body": body[:25], "more_body": True},
            {"type": "http.request", "body": body[25:], "more_body": False},
        ]
    )
    assert sent[0]["status"] == 200
    assert [(r["method"], r["client_order_id"]) for r in engine.request_log] == [
        ("POST", "whole-or-nothing")
    ]
    assert [o["client_order_id"] for o in engine.state_json()["orders"]] == ["whole-or-nothing"]

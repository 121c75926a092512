"""Hostile input at the HTTP API: every bad request is a 4xx with the error envelope, never a
500 (forged cursors, deep or duplicated JSON, oversized bodies), on every endpoint."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import pytest

from orders.models import Order
from tests.helpers import place

pytestmark = pytest.mark.django_db


def assert_error(response: Any, status: int, code: str = "validation_error") -> dict:
    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def cursor(text: str) -> str:
    return b64encode(text.encode()).decode()


FORGED_CURSORS = [
    "cD1hYmM=",  # p=abc: the database refused "id < 'abc'" (500)
    cursor("p=1e5"),
    cursor("p=-1"),
    cursor("p=\uff11"),  # a full-width 1 (int() would take it)
    cursor("p=1&p=2"),
    cursor("o=-1"),
    cursor("r=2"),
    cursor("x=1"),
    cursor("p=" + "9" * 40),
    "!!!",  # not base64 (DRF ignored the bad characters and served the first page)
    "cD0x!",  # a character outside base64
    "\u00e9t\u00e9",
]


@pytest.mark.parametrize("forged", FORGED_CURSORS)
@pytest.mark.parametrize("path", ["/api/v1/orders"])
def test_a_forged_cursor_is_400(paper: Any, trader: Any, path: str, forged: str) -> None:
    error = assert_error(trader.get(path, {"cursor": forged}), 400)
    assert "cursor" in error["details"]["fields"]


@pytest.mark.parametrize("limit", ["0", "501", "-1", "1.5", "\uff15", "ten", "1e2"])
def test_a_bad_page_size_is_400(paper: Any, trader: Any, limit: str) -> None:
    error = assert_error(trader.get("/api/v1/orders", {"limit": limit}), 400)
    assert "limit" in error["details"]["fields"]


def test_the_cursors_the_api_hands_out_still_work(paper: Any, trader: Any) -> None:
    for qty in (1, 2, 3):
        assert place(trader, qty=qty).status_code == 201
    first = trader.get("/api/v1/orders", {"limit": 2}).json()
    second = trader.get(first["next"]).json()
    back = trader.get(second["previous"]).json()
    assert [o["qty"] for o in first["results"] + second["results"]] == [3, 2, 1]
    assert [o["qty"] for o in back["results"]] == [3, 2]
    assert Order.objects.count() == 3

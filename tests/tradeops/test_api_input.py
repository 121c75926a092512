"""Hostile input at the HTTP API: every bad request is a 4xx with the error envelope, never a
500 (forged cursors, deep or duplicated JSON, oversized bodies), on every endpoint."""

from __future__ import annotations

import re
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


@pytest.mark.parametrize(
    "path", ["/api/v1/orders", "/api/v1/orphans", "/api/v1/quarantines", "/api/v1/plans/{}/slices"]
)
def test_a_forged_cursor_is_400_on_every_list(paper: Any, trader: Any, path: str) -> None:
    from tests.orders.twap_support import twap

    plan = twap(trader).json()
    url = path.format(plan["id"])
    assert trader.get(url).status_code == 200
    for forged in FORGED_CURSORS:
        error = assert_error(trader.get(url, {"cursor": forged}), 400)
        assert "cursor" in error["details"]["fields"], forged
    assert "limit" in assert_error(trader.get(url, {"limit": "0"}), 400)["details"]["fields"]


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


def body_operations() -> list[tuple[str, str]]:
    """(method, path) of every API operation that takes a request body, read from the OpenAPI
    schema, so an endpoint added later is covered without editing this list. Path parameters
    become 1: the body is parsed before anything is looked up."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    )


BODY_OPERATIONS = body_operations()


def test_the_body_endpoints_are_found() -> None:
    assert {
        ("POST", "/api/v1/orders"),
        ("POST", "/api/v1/orders/slice"),
        ("POST", "/api/v1/orders/1/cancel"),
        ("DELETE", "/api/v1/plans/1/slices"),
        ("POST", "/api/v1/reconciliation/run"),
        ("POST", "/api/v1/reconciliation/force-complete"),
    } <= set(BODY_OPERATIONS)


def send(client: Any, method: str, path: str, body: str | bytes, **extra: Any) -> Any:
    extra.setdefault("content_type", "application/json")
    return client.generic(method, path, body, **extra)


@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
def test_deeply_nested_json_is_400_everywhere(ops_admin: Any, method: str, path: str) -> None:
    for depth in (1000, 100_000, 21):
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            error = assert_error(send(ops_admin, method, path, body), 400)
            assert "nested deeper than 20" in error["message"], (depth, body[:30])


def test_deeply_nested_json_from_a_strategy_token_is_400(paper: Any, trader: Any) -> None:
    body = '{"symbol": ' + "[" * 1000 + "]" * 1000 + "}"
    assert_error(send(trader, "POST", "/api/v1/orders", body), 400)
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000,  # unbalanced, deep: json.loads would recurse before finding the error
        '["' + "[" * 1000 + '"]',  # brackets inside a string do not nest: a plain 400
        "{" * 25 + "}" * 24,
    ],
)
def test_unbalanced_or_string_brackets_are_plain_400s(ops_admin: Any, body: str) -> None:
    assert_error(send(ops_admin, "POST", "/api/v1/reconciliation/run", body), 400)


@pytest.mark.parametrize(
    ("text", "within"),
    [
        ("{}", True),
        ('{"a": [1, {"b": [2]}]}', True),
        ("[" * 20 + "]" * 20, True),
        ("[" * 21 + "]" * 21, False),
        ('["' + "]" * 50 + '"]', True),
        ('["\\"[[[["]', True),
        ('["\\\\", [[]]]', True),
        ("[[]", False),
        ("[]]", False),
        ("[}", False),
        ("][", False),
        ('"plain"', True),
        ("", True),
    ],
)
def test_json_depth_within(text: str, within: bool) -> None:
    from tradeops.parsers import json_depth_within

    assert json_depth_within(text, 20) is within


ORDER = '"symbol": "AAPL", "type": "market", "time_in_force": "day"'


@pytest.mark.parametrize(
    "body",
    [
        "{" + ORDER + ', "side": "buy", "qty": 1, "qty": 999}',  # placed 999
        "{" + ORDER + ', "qty": 5, "side": "sell", "side": "buy"}',  # placed a buy
        "{" + ORDER + ', "qty": 5, "side": "buy", "strategy": "alpha", "strategy": "alpha"}',
    ],
)
def test_a_repeated_key_in_an_order_is_400_and_nothing_is_sent(
    paper: Any, trader: Any, body: str
) -> None:
    error = assert_error(send(trader, "POST", "/api/v1/orders", body), 400)
    assert "Duplicate key" in error["message"]
    assert Order.objects.count() == 0
    assert paper.requests(method="POST", path="/v2/orders") == []


@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
def test_a_repeated_key_is_400_everywhere(ops_admin: Any, method: str, path: str) -> None:
    for body in ('{"reason": "a", "reason": "b"}', '{"x": {"k": 1, "k": 2}}'):
        error = assert_error(send(ops_admin, method, path, body), 400)
        assert "Duplicate key" in error["message"], body


def test_the_upload_limit_is_djangos(settings: Any) -> None:
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2_621_440  # the tests below exceed it


BIG = 3 * 1024 * 1024


@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
def test_a_body_over_the_upload_limit_is_413_everywhere(
    ops_admin: Any, method: str, path: str
) -> None:
    body = '{"reason": "' + "a" * BIG + '"}'
    error = assert_error(send(ops_admin, method, path, body), 413, "payload_too_large")
    assert "2621440" in error["message"]


def test_a_big_order_from_a_strategy_token_is_413(paper: Any, trader: Any) -> None:
    body = '{"symbol": "' + "A" * BIG + '"}'
    assert_error(send(trader, "POST", "/api/v1/orders", body), 413, "payload_too_large")
    form = "symbol=" + "A" * BIG
    response = send(trader, "POST", "/api/v1/orders", form, content_type="text/plain")
    assert response.status_code in (400, 413), response.content[:200]
    assert response.json()["error"]["code"] in ("validation_error", "payload_too_large")
    assert Order.objects.count() == 0


def test_a_big_form_on_an_api_session_is_a_plain_400(ops_user: Any) -> None:
    # A session's CSRF check reads the form inside DRF's authentication (the default test
    # client skips that check, so enforce it); DRF refuses the media type there, unread.
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_user)
    session = client.session
    session["otp_device_id"] = ops_user.totpdevice_set.get().persistent_id
    session.save()
    client.cookies["csrftoken"] = "k" * 32  # a well-formed secret: the check goes on to the form
    form = "reason=" + "a" * BIG
    response = send(
        client,
        "POST",
        "/api/v1/reconciliation/run",
        form,
        content_type="application/x-www-form-urlencoded",
    )
    assert "must be JSON" in assert_error(response, 400)["message"]


def test_a_big_form_on_the_admin_login_page_is_413_not_500(db: Any) -> None:
    from django.test import Client

    client = Client()
    response = client.generic(
        "POST",
        "/admin/login/",
        "username=" + "a" * BIG,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert b"too large" in response.content.lower()


@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
def test_a_body_that_is_not_an_object_is_400_everywhere(
    ops_admin: Any, method: str, path: str
) -> None:
    for body in ("[]", "null", "0", "false", '""', "[1]", '"AAPL"', "  \n"):
        assert_error(send(ops_admin, method, path, body), 400)


@pytest.mark.parametrize(
    "qty",
    ["NaN", "Infinity", "-Infinity", "1e400", "10.0", "1E1", "9" * 5000, "true", "null"],
)
def test_numbers_that_are_not_integers_are_400(paper: Any, trader: Any, qty: str) -> None:
    body = "{" + ORDER + ', "side": "buy", "qty": ' + qty + "}"
    assert_error(send(trader, "POST", "/api/v1/orders", body), 400)
    assert Order.objects.count() == 0


def test_json_fractions_arrive_as_decimals_never_floats(paper: Any, trader: Any) -> None:
    body = "{" + ORDER + ', "side": "buy", "qty": 1, "limit_price": 0.1}'
    error = assert_error(send(trader, "POST", "/api/v1/orders", body), 400)
    assert "JSON number (0.1)" in error["message"]  # the text sent, not 0.1000000000000000055


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        ({"qty": ["Must be between 1 and 10."]}, "qty: Must be between 1 and 10."),
        (
            {"a": ["Required."], "b": ["Too long.", "Not a slug."]},
            "a: Required; b: Too long; b: Not a slug.",
        ),
        ({"non_field_errors": ["Pick one."]}, "Pick one."),
        ({"x": {"y": ["Bad?"]}}, "x.y: Bad?"),
        (
            ["Invalid data. Expected a dictionary, but got list."],
            "Invalid data. Expected a dictionary, but got list.",
        ),
        ({}, "Invalid input."),
    ],
)
def test_validation_messages_read_as_one_sentence(detail: Any, message: str) -> None:
    from rest_framework.exceptions import ValidationError

    from tradeops.errors import api_exception_handler

    body = api_exception_handler(ValidationError(detail), {}).data["error"]
    assert body["message"] == message
    assert body["code"] == "validation_error"


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/orders?symbol=",
        "/api/v1/orders?status=",
        "/api/v1/orders?strategy=",
        "/api/v1/orders?limit=",
        "/api/v1/orders?cursor=",
        "/api/v1/orphans?status=",
        "/api/v1/orphans?symbol=",
        "/api/v1/quarantines?active=",
        "/api/v1/quarantines?symbol=",
    ],
)
def test_a_blank_query_parameter_is_400_not_every_row(paper: Any, trader: Any, query: str) -> None:
    assert place(trader, qty=1).status_code == 201
    name = query.rsplit("?", 1)[1].rstrip("=")
    error = assert_error(trader.get(query), 400)
    assert name in error["details"]["fields"]


def test_the_schema_states_the_bounds_in_force(paper: Any, trader: Any, settings: Any) -> None:
    settings.ORDER_MAX_QTY = 500
    schema = trader.get("/api/schema/", {"format": "json"}).json()
    qty = schema["components"]["schemas"]["OrderRequest"]["properties"]["qty"]["oneOf"][0]
    assert qty["maximum"] == 500
    assert "qty" in assert_error(place(trader, qty=501), 400)["details"]["fields"]
    assert place(trader, qty=500).status_code == 201

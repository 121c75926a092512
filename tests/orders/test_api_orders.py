"""The order API through HTTP, against the paper broker reached by the real alpaca-py client."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orders.models import Order, OrderEvent
from tests.helpers import place

pytestmark = pytest.mark.django_db


def broker_submits(paper: Any, coid: str) -> int:
    """How many POST /v2/orders the broker received for this client_order_id."""
    return paper.submit_count(coid)


def test_same_post_twice_is_one_order_at_the_broker(paper: Any, trader: Any) -> None:
    first = place(trader)
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["status"] == "filled"
    assert body["filled_qty"] == 10
    assert Decimal(body["filled_avg_price"]) == Decimal("100")
    again = place(trader)
    assert again.status_code == 200
    assert again.json()["client_order_id"] == body["client_order_id"]
    assert Order.objects.count() == 1
    assert broker_submits(paper, body["client_order_id"]) == 1
    assert (
        len([o for o in paper.state()["orders"] if o["client_order_id"] == body["client_order_id"]])
        == 1
    )


def test_response_fields(paper: Any, trader: Any) -> None:
    body = place(trader, type="limit", limit_price="99.50", time_in_force="gtc").json()
    for key in (
        "strategy",
        "symbol",
        "side",
        "qty",
        "type",
        "limit_price",
        "stop_price",
        "time_in_force",
        "client_order_id",
        "broker_order_id",
        "status",
        "filled_qty",
        "filled_avg_price",
        "created_at",
        "submitted_at",
    ):
        assert key in body
    assert body["strategy"] == "alpha"
    assert body["limit_price"] == "99.5000"
    assert body["status"] == "new"  # resting below the market (open: the paper broker says new)
    assert len(body["client_order_id"]) == 24


def test_submit_timeout_leaves_the_order_unconfirmed_and_never_resends(
    paper: Any, trader: Any
) -> None:
    paper.add_fault(method="POST", path="/v2/orders", mode="timeout", count=1, delay=2)
    response = place(trader)
    assert response.status_code == 202
    coid = response.json()["client_order_id"]
    assert response.json()["status"] == "submitted_unconfirmed"
    # The client asks again: the same order comes back, nothing is sent again.
    again = place(trader)
    assert again.status_code == 200
    assert again.json()["status"] == "submitted_unconfirmed"
    assert broker_submits(paper, coid) == 1
    assert Order.objects.count() == 1
    assert OrderEvent.objects.filter(status="submitted_unconfirmed", applied=True).count() == 1


def test_lost_response_after_commit_is_unconfirmed(paper: Any, trader: Any) -> None:
    paper.add_fault(method="POST", path="/v2/orders", mode="drop_response_after_commit", count=1)
    response = place(trader)
    assert response.status_code == 202
    coid = response.json()["client_order_id"]
    # The broker did take it: exactly one order exists there under our id.
    assert [o["client_order_id"] for o in paper.state()["orders"]] == [coid]


def test_broker_500_on_submit_is_unconfirmed_not_rejected(paper: Any, trader: Any) -> None:
    paper.add_fault(method="POST", path="/v2/orders", mode="error500", count=1)
    response = place(trader)
    assert response.status_code == 202
    assert Order.objects.get().status == "submitted_unconfirmed"


def test_duplicate_client_order_id_at_the_broker_is_looked_up_and_applied(
    paper: Any, trader: Any
) -> None:
    from orders.risk import OrderIntent
    from orders.services import order_client_id

    intent = OrderIntent("alpha", "AAPL", "buy", 10, "market", "day")
    from django.utils import timezone

    coid = order_client_id(intent, timezone.now())
    # An earlier attempt reached the broker (and filled) but our database never heard back.
    paper.place_order(
        symbol="AAPL", side="buy", qty=10, type="market", time_in_force="day", client_order_id=coid
    )
    response = place(trader)
    assert response.status_code == 201
    assert response.json()["status"] == "filled"
    assert response.json()["broker_order_id"]
    assert broker_submits(paper, coid) == 1  # our one attempt, answered 422 duplicate
    assert OrderEvent.objects.filter(note__contains="duplicate client_order_id").exists()


def test_broker_rejection_with_limits_out_of_the_way(paper: Any, trader: Any) -> None:
    from orders.models import RiskLimit

    RiskLimit.objects.filter(symbol="*").update(max_order_notional=Decimal("10000000"))
    response = place(trader, qty=5000, symbol="MSFT")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "broker_rejected"
    order = Order.objects.get()
    assert order.status == "rejected"
    assert "buying power" in order.reject_reason


def test_list_filters_and_pages(paper: Any, trader: Any, outsider: Any) -> None:
    for qty in (1, 2, 3):
        assert place(trader, qty=qty).status_code == 201
    assert place(trader, symbol="MSFT", qty=1).status_code == 201
    assert place(outsider, qty=7).status_code == 201
    listing = trader.get("/api/v1/orders", {"limit": 2}).json()
    assert len(listing["results"]) == 2
    rest = trader.get(listing["next"]).json()
    seen = {o["client_order_id"] for o in listing["results"] + rest["results"]}
    assert len(seen) == 4  # alpha's four, never beta's
    assert trader.get("/api/v1/orders", {"symbol": "msft"}).json()["results"][0]["symbol"] == "MSFT"
    assert len(trader.get("/api/v1/orders", {"status": "filled"}).json()["results"]) == 4
    assert trader.get("/api/v1/orders", {"status": "open"}).json()["results"] == []
    bad = trader.get("/api/v1/orders", {"status": "bogus"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"


def test_get_one_and_other_strategies_orders_are_not_found(
    paper: Any, trader: Any, outsider: Any
) -> None:
    coid = place(trader).json()["client_order_id"]
    assert trader.get(f"/api/v1/orders/{coid}").json()["client_order_id"] == coid
    hidden = outsider.get(f"/api/v1/orders/{coid}")
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "not_found"
    assert outsider.post(f"/api/v1/orders/{coid}/cancel", {}, format="json").status_code == 404


def test_token_acts_only_for_its_own_strategy(paper: Any, trader: Any, outsider: Any) -> None:
    response = place(trader, strategy="beta")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Order.objects.count() == 0


def test_no_token_is_401(paper: Any, client: Any) -> None:
    response = client.post("/api/v1/orders", {}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"
    bad = client.get("/api/v1/orders", HTTP_AUTHORIZATION="Token nope")
    assert bad.status_code == 401


def test_cancel_a_resting_order(paper: Any, trader: Any) -> None:
    coid = place(trader, type="limit", limit_price="90.00", time_in_force="gtc").json()[
        "client_order_id"
    ]
    response = trader.post(
        f"/api/v1/orders/{coid}/cancel", {"reason": "changed my mind"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"  # the paper broker cancels at once
    twice = trader.post(f"/api/v1/orders/{coid}/cancel", {}, format="json")
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "conflict"


BAD_BODIES = [
    ({"qty": None}, "qty"),
    ({"qty": 0}, "qty"),
    ({"qty": -5}, "qty"),
    ({"qty": 1.5}, "qty"),
    ({"qty": "1.5"}, "qty"),
    ({"qty": 10**12}, "qty"),
    ({"qty": "ten"}, "qty"),
    ({"qty": True}, "qty"),
    ({"side": "hold"}, "side"),
    ({"type": "iceberg"}, "type"),
    ({"time_in_force": "forever"}, "time_in_force"),
    ({"time_in_force": "opg"}, "time_in_force"),
    ({"type": "limit"}, "limit_price"),
    ({"type": "stop_limit", "limit_price": "10"}, "stop_price"),
    ({"type": "market", "limit_price": "10"}, "limit_price"),
    ({"type": "limit", "limit_price": "10.12345"}, "limit_price"),
    ({"type": "limit", "limit_price": "10.123"}, "limit_price"),  # sub-penny above $1
    ({"type": "limit", "limit_price": "0"}, "limit_price"),
    ({"type": "limit", "limit_price": "-1"}, "limit_price"),
    ({"type": "limit", "limit_price": "NaN"}, "limit_price"),
    ({"type": "limit", "limit_price": "abc"}, "limit_price"),
    # qty: a JSON integer or a string of ASCII digits, nothing else (int() takes all of these).
    ({"qty": "\u0661\u0660"}, "qty"),  # Arabic-Indic 10
    ({"qty": "\uff11"}, "qty"),  # full-width 1
    ({"qty": "1_000"}, "qty"),
    ({"qty": " 10"}, "qty"),
    ({"qty": "10\n"}, "qty"),
    ({"qty": "+10"}, "qty"),
    ({"qty": "1e3"}, "qty"),
    ({"qty": 1e3}, "qty"),  # a JSON number with an exponent is not an integer
    ({"qty": 10.0}, "qty"),
    ({"qty": "10.0"}, "qty"),
    ({"qty": "0x10"}, "qty"),
    ({"qty": ""}, "qty"),
    ({"qty": [10]}, "qty"),
    ({"qty": "9" * 5000}, "qty"),
    # Prices: a JSON string of ASCII digits with an optional single "." (Decimal() takes these).
    ({"type": "limit", "limit_price": "1_000"}, "limit_price"),
    ({"type": "limit", "limit_price": "1.5e2"}, "limit_price"),
    ({"type": "limit", "limit_price": "\uff11\uff10.\uff15"}, "limit_price"),  # full-width 10.5
    ({"type": "limit", "limit_price": "\u0661\u0660"}, "limit_price"),  # Arabic-Indic 10
    ({"type": "limit", "limit_price": " 10.5"}, "limit_price"),
    ({"type": "limit", "limit_price": "10.5 "}, "limit_price"),
    ({"type": "limit", "limit_price": "+10.5"}, "limit_price"),
    ({"type": "limit", "limit_price": "10."}, "limit_price"),
    ({"type": "limit", "limit_price": ".5"}, "limit_price"),
    ({"type": "limit", "limit_price": "10.5.1"}, "limit_price"),
    ({"type": "limit", "limit_price": "1,000.00"}, "limit_price"),
    ({"type": "limit", "limit_price": "Infinity"}, "limit_price"),
    ({"type": "limit", "limit_price": "-0"}, "limit_price"),
    # One spelling per price: no leading zeros, the sub-penny rule counts the digits sent.
    ({"type": "limit", "limit_price": "007.10"}, "limit_price"),
    ({"type": "limit", "limit_price": "00.5"}, "limit_price"),
    ({"type": "limit", "limit_price": "10.500"}, "limit_price"),
    ({"type": "limit", "limit_price": "0.50120"}, "limit_price"),
    ({"type": "limit", "limit_price": "0.0000"}, "limit_price"),
    ({"qty": "007"}, "qty"),
    ({"type": "limit", "limit_price": "1" * 30}, "limit_price"),
    ({"type": "limit", "limit_price": 99.5}, "limit_price"),  # JSON numbers: refused
    ({"type": "limit", "limit_price": 100}, "limit_price"),
    ({"type": "limit", "limit_price": True}, "limit_price"),
    ({"type": "limit", "limit_price": ["10"]}, "limit_price"),
    ({"type": "stop", "stop_price": "1.5e2"}, "stop_price"),
    ({"type": "stop", "stop_price": 150}, "stop_price"),
    ({"symbol": "AAPL!!"}, "symbol"),
    ({"symbol": ""}, "symbol"),
    ({"symbol": "A" * 40}, "symbol"),
    ({"symbol": "A" * 100_000}, "symbol"),
    # Upper-cased before validation these became real symbols: IBM, SS, FF, IBM, KO, SPY.
    ({"symbol": "\u0131bm"}, "symbol"),  # dotless i
    ({"symbol": "\u00df"}, "symbol"),  # sharp s
    ({"symbol": "\ufb00"}, "symbol"),  # the ff ligature
    ({"symbol": "\uff29\uff22\uff2d"}, "symbol"),  # full-width IBM
    ({"symbol": "\u212ao"}, "symbol"),  # Kelvin sign + o
    ({"symbol": "\u017fpy"}, "symbol"),  # long s + py
    ({"symbol": " AAPL"}, "symbol"),
    ({"symbol": "AAPL\n"}, "symbol"),
    ({"symbol": "AAPL\u00a0"}, "symbol"),  # no-break space (str.strip() removed it)
    ({"symbol": "AA\u0000PL"}, "symbol"),
    ({"symbol": "BRK."}, "symbol"),
    ({"symbol": ".B"}, "symbol"),
    ({"symbol": "BRK..B"}, "symbol"),
    ({"symbol": "BRK.BBB"}, "symbol"),
    ({"symbol": "ABCDEFG"}, "symbol"),
    ({"symbol": 1234}, "symbol"),
    ({"symbol": ["AAPL"]}, "symbol"),
    ({"symbol": True}, "symbol"),
    ({"strategy": "external"}, "strategy"),
    ({"strategy": "Not A Slug"}, "strategy"),
    ({"limitprice": "10"}, "limitprice"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BODIES)
def test_bad_input_is_400_with_a_reason_and_writes_nothing(
    paper: Any, trader: Any, change: dict, field: str
) -> None:
    body = {"symbol": "AAPL", "side": "buy", "qty": 10, "type": "market", "time_in_force": "day"}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = trader.post("/api/v1/orders", body, format="json")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"], error
    assert field in error["message"]
    assert Order.objects.count() == 0
    assert paper.requests(method="POST", path="/v2/orders") == []


@pytest.mark.parametrize(
    ("change", "stored"),
    [
        ({"qty": "12"}, {"qty": 12}),
        ({"qty": 12}, {"qty": 12}),
        ({"type": "limit", "limit_price": "99.5"}, {"limit_price": "99.5000"}),
        ({"type": "limit", "limit_price": "0.5012"}, {"limit_price": "0.5012"}),
        ({"type": "limit", "limit_price": "100"}, {"limit_price": "100.0000"}),
        ({"type": "limit", "limit_price": "0.5"}, {"limit_price": "0.5000"}),
        ({"type": "limit", "limit_price": "10.50"}, {"limit_price": "10.5000"}),
    ],
)
def test_plain_ascii_numbers_are_accepted(
    paper: Any, trader: Any, change: dict, stored: dict
) -> None:
    response = place(trader, **change)
    assert response.status_code == 201, response.json()
    assert {key: response.json()[key] for key in stored} == stored


def test_a_json_number_price_is_refused_with_the_rule(paper: Any, trader: Any) -> None:
    response = place(trader, type="limit", limit_price=99.5)
    message = response.json()["error"]["message"]
    assert response.status_code == 400
    assert 'decimal string such as "99.50"' in message and "JSON number" in message


@pytest.mark.parametrize(
    ("sent", "placed"), [("aapl", "AAPL"), ("brk.b", "BRK.B"), ("Msft", "MSFT")]
)
def test_ascii_symbols_are_upper_cased_after_validation(
    paper: Any, trader: Any, sent: str, placed: str
) -> None:
    paper.set_prices({placed: "10.00"})
    response = place(trader, symbol=sent, qty=1)
    assert response.status_code == 201, response.json()
    assert response.json()["symbol"] == placed
    assert [o["symbol"] for o in paper.state()["orders"]] == [placed]


def test_a_symbol_filter_is_validated_like_a_symbol(paper: Any, trader: Any) -> None:
    assert place(trader, qty=1).status_code == 201
    assert len(trader.get("/api/v1/orders", {"symbol": "aapl"}).json()["results"]) == 1
    for bad in ("\u0131bm", "AAPL!", "A" * 40):
        response = trader.get("/api/v1/orders", {"symbol": bad})
        assert response.status_code == 400
        assert "symbol" in response.json()["error"]["details"]["fields"]


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        ("{not json", "application/json"),
        ("qty=10", "application/x-www-form-urlencoded"),
        ("[1, 2]", "application/json"),
        ('"AAPL"', "application/json"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    paper: Any, trader: Any, payload: str, content_type: str
) -> None:
    response = trader.generic("POST", "/api/v1/orders", payload, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert Order.objects.count() == 0


def test_unknown_api_path_is_a_json_404(client: Any) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"

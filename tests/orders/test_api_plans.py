"""TWAP plans through HTTP: creation (one pre-trade decision, idempotent), strict validation,
reading, token scoping and cancel-remaining."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils.dateparse import parse_datetime

from orders.controls import trading_switch_set
from orders.ids import slice_client_order_id
from orders.models import Order, RiskLimit, SlicingPlan
from orders.services import order_end_locally
from tests.helpers import place
from tests.orders.twap_support import twap
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


def broker_posts(paper: Any) -> list[dict]:
    return paper.requests(method="POST", path="/v2/orders")


def test_post_slice_creates_the_plan_and_every_slice_in_one_go(paper: Any, trader: Any) -> None:
    response = twap(trader, qty=103)
    assert response.status_code == 201, response.json()
    plan = response.json()
    assert plan["status"] == "active"
    assert plan["slice_count"] == 10 and len(plan["slices"]) == 10
    assert [s["qty"] for s in plan["slices"]] == [11, 11, 11, 10, 10, 10, 10, 10, 10, 10]
    start = parse_datetime(plan["start_at"])
    for i, s in enumerate(plan["slices"]):
        assert s["plan"] == plan["id"] and s["slice_num"] == i
        assert parse_datetime(s["scheduled_time"]) == start + timedelta(seconds=60 * i)
        assert s["client_order_id"] == slice_client_order_id(plan_key=plan["key"], slice_num=i)
        assert (s["status"], s["origin"], s["strategy"]) == ("pending_new", "twap", "alpha")
    assert plan["slices_by_status"] == {"pending_new": 10}
    assert plan["liquidity"]["source"] == "bars"
    assert plan["liquidity"]["max_slice_qty"] >= 1
    assert broker_posts(paper) == []  # nothing is sent by the API: the dispatcher sends
    assert Order.objects.filter(plan_id=plan["id"]).count() == 10


def test_same_slice_request_the_same_day_returns_the_existing_plan(paper: Any, trader: Any) -> None:
    first = twap(trader)
    again = twap(trader)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert [s["client_order_id"] for s in again.json()["slices"]] == [
        s["client_order_id"] for s in first.json()["slices"]
    ]
    assert SlicingPlan.objects.count() == 1 and Order.objects.count() == 10
    other = twap(trader, interval_seconds=120)  # a different schedule is a different plan
    assert other.status_code == 201 and other.json()["slice_count"] == 5


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"qty": 5}, "qty"),  # fewer shares than the 10 slices
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 10_000}, "duration_minutes"),
        ({"duration_minutes": 1.5}, "duration_minutes"),
        ({"interval_seconds": "sixty"}, "interval_seconds"),
        ({"interval_seconds": True}, "interval_seconds"),
        ({"interval_seconds": None}, "interval_seconds"),
        ({"interval_seconds": "\u0666\u0660"}, "interval_seconds"),  # Arabic-Indic 60
        ({"duration_minutes": "\uff15"}, "duration_minutes"),  # full-width 5
        ({"duration_minutes": 5.0}, "duration_minutes"),
        ({"qty": "1_000"}, "qty"),
        ({"type": "limit", "limit_price": 99.5}, "limit_price"),
        ({"type": "limit"}, "limit_price"),
        ({"type": "stop_limit", "stop_price": "120.00"}, "limit_price"),
        ({"limit_price": "99.00"}, "limit_price"),  # not allowed for market
        ({"slices": 4}, "slices"),  # unknown field
        ({"symbol": "aapl!"}, "symbol"),
        ({"qty": 5000, "duration_minutes": 60, "interval_seconds": 1}, "interval_seconds"),
    ],
)
def test_bad_slice_requests_are_400_with_the_field_and_write_nothing(
    paper: Any, trader: Any, overrides: dict, field: str
) -> None:
    response = twap(trader, **overrides)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"], error
    assert not SlicingPlan.objects.exists() and not Order.objects.exists()


def test_missing_schedule_fields_are_required(paper: Any, trader: Any) -> None:
    response = trader.post(
        "/api/v1/orders/slice",
        {"symbol": "AAPL", "side": "buy", "qty": 10, "type": "market", "time_in_force": "day"},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error["details"]["fields"]) == {"duration_minutes", "interval_seconds"}
    # One readable sentence (it read "...required.; interval_seconds: ..."), details per field.
    assert error["message"] == (
        "duration_minutes: This field is required; interval_seconds: This field is required."
    )
    assert error["details"]["fields"]["interval_seconds"] == ["This field is required."]


def test_order_size_limits_judge_the_largest_slice_exposure_the_total(
    paper: Any, trader: Any
) -> None:
    RiskLimit.objects.filter(symbol="*").update(max_order_qty=30)
    RiskLimit.objects.update_or_create(symbol="AAPL", defaults={"max_position_qty": 150})
    assert place(trader, qty=100).status_code == 422  # as one order: too big
    assert twap(trader, qty=100).status_code == 201  # 10 slices of 10: fine
    # The plan's 100 pending shares are working exposure: 60 more would make 160 > 150.
    refused = twap(trader, qty=60, duration_minutes=3)
    assert refused.status_code == 422
    details = refused.json()["error"]["details"]
    assert (details["limit"], details["open_buy"]) == ("max_position_qty", 100)
    assert place(trader, qty=30).status_code == 201  # 130 <= 150
    # Two slices of 31 shares: each slice is an order, and 31 > 30.
    big = twap(trader, symbol="MSFT", qty=62, duration_minutes=2)
    assert big.status_code == 422
    assert big.json()["error"]["details"] == {"limit": "max_order_qty", "value": 30, "qty": 31}
    assert twap(trader, symbol="MSFT", qty=60, duration_minutes=2).status_code == 201


def test_slices_page_in_slice_order(paper: Any, trader: Any) -> None:
    plan = twap(trader).json()
    url, seen = f"/api/v1/plans/{plan['id']}/slices?limit=4", []
    while url:
        page = trader.get(url).json()
        seen += [s["slice_num"] for s in page["results"]]
        url = page["next"]
    assert seen == list(range(10))


def test_engaged_switch_refuses_a_plan(paper: Any, trader: Any) -> None:
    trading_switch_set(name="kill_switch", engaged=True, actor="test", reason="drill")
    response = twap(trader)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "kill_switch"
    assert not SlicingPlan.objects.exists()


def test_read_a_plan_and_its_slices(paper: Any, trader: Any) -> None:
    plan = twap(trader).json()
    got = trader.get(f"/api/v1/plans/{plan['id']}")
    assert got.status_code == 200
    assert "slices" not in got.json() and got.json()["filled_qty"] == 0
    slices = trader.get(f"/api/v1/plans/{plan['id']}/slices")
    assert slices.status_code == 200
    rows = slices.json()["results"]  # the list convention: {"next", "previous", "results"}
    assert [s["slice_num"] for s in rows] == list(range(10))
    assert slices.json()["next"] is None
    one = trader.get(f"/api/v1/orders/{rows[3]['client_order_id']}").json()
    assert (one["plan"], one["slice_num"]) == (plan["id"], 3)
    assert trader.get("/api/v1/plans/999999").status_code == 404


def test_another_strategys_plan_is_404(paper: Any, trader: Any, outsider: Any) -> None:
    plan = twap(trader).json()
    assert outsider.get(f"/api/v1/plans/{plan['id']}").status_code == 404
    assert outsider.get(f"/api/v1/plans/{plan['id']}/slices").status_code == 404
    assert outsider.delete(f"/api/v1/plans/{plan['id']}/slices").status_code == 404
    assert SlicingPlan.objects.get().status == "active"
    other = twap(trader, strategy="beta")
    assert other.status_code == 403


def test_delete_slices_cancels_what_has_not_gone_out(paper: Any, trader: Any) -> None:
    plan = twap(trader).json()
    first = Order.objects.get(plan_id=plan["id"], slice_num=0)
    # Slice 0 is already ended (say, blocked) and slice 1 is held by a dispatcher.
    order_end_locally(order=first, status="blocked_kill_switch", note="test")
    Order.objects.filter(plan_id=plan["id"], slice_num=1).update(send_claimed_at=first.created_at)
    trading_switch_set(name="kill_switch", engaged=True, actor="test", reason="halt drill")
    response = trader.delete(
        f"/api/v1/plans/{plan['id']}/slices", {"reason": "strategy stopped"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["canceled"], body["in_flight"]) == (8, 1)
    assert body["plan"]["status"] == "canceled"
    assert body["plan"]["slices_by_status"] == {
        "blocked_kill_switch": 1,
        "pending_new": 1,
        "canceled": 8,
    }
    event = AuditEvent.objects.get(action="plan.cancel")
    assert (event.reason, event.before) == (
        "strategy stopped",
        {"status": "active", "pending_slices": 9},
    )
    assert event.after == {"status": "canceled"}
    assert event.actor_label == "strategy:alpha"
    assert broker_posts(paper) == []
    again = trader.delete(f"/api/v1/plans/{plan['id']}/slices")
    assert again.status_code == 200 and again.json()["canceled"] == 0
    assert AuditEvent.objects.filter(action="plan.cancel").count() == 1


def test_ended_plan_cannot_be_canceled(paper: Any, trader: Any) -> None:
    plan = twap(trader, qty=2, duration_minutes=1, interval_seconds=30).json()
    for order in Order.objects.filter(plan_id=plan["id"]):
        order_end_locally(order=order, status="blocked_circuit_breaker", note="test")
    assert SlicingPlan.objects.get().status == "failed"  # no share filled
    response = trader.delete(f"/api/v1/plans/{plan['id']}/slices")
    assert response.status_code == 409


def test_openapi_documents_the_plan_endpoints(client: Any) -> None:
    import yaml

    paths = yaml.safe_load(client.get("/api/schema/").content)["paths"]
    assert "post" in paths["/api/v1/orders/slice"]
    assert "get" in paths["/api/v1/plans/{plan_id}"]
    assert {"get", "delete"} <= set(paths["/api/v1/plans/{plan_id}/slices"])

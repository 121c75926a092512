"""The admin's "Place order" page through Django's test client (issue 12 points 2, 3, 6 and its
bad input and faults): every tier, the server's fresh re-judgement, one order per form, the
audit in the order's transaction, and the refusals an operator can meet."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.models import Order, SlicingPlan
from orders.strategies import manual_strategy_ensure
from tests.helpers import metric, totp_now
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/admin/orders/order/place/"
NONCE = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def console(trading_ready: None, ops_admin: Any, fat_finger_configured: Any) -> Any:
    manual_strategy_ensure()
    return ops_admin


def terms(**overrides: Any) -> dict[str, Any]:
    """A market buy of AAPL (paper price 100) from the manual strategy; ~$2,000."""
    body = {
        "nonce": NONCE,
        "strategy": "manual",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "20",
        "type": "market",
        "limit_price": "",
        "stop_price": "",
        "time_in_force": "day",
        "duration_minutes": "",
        "interval_seconds": "",
    }
    body.update(overrides)
    return body


def review(client: Any, **overrides: Any) -> tuple[Any, str]:
    page = client.post(URL, {**terms(**overrides), "_review": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    token = re.search(r'name="review_token" value="([^"]*)"', html)
    return page, token.group(1) if token else ""


def submit(client: Any, token: str, **overrides: Any) -> Any:
    extra = {k: overrides.pop(k) for k in ("confirm", "otp_token") if k in overrides}
    return client.post(URL, {**terms(**overrides), "review_token": token, "_submit": "1", **extra})


def tier_of(page: Any) -> str:
    return re.search(r'data-tier="([a-z_]+)"', page.content.decode()).group(1)


def broker_orders(paper: Any) -> list[dict[str, Any]]:
    return paper.state()["orders"]


def placed_order(response: Any) -> Order:
    assert response.status_code == 302, response.content.decode()[:2000]
    pk = int(re.search(r"/place/result/order/(\d+)/", response["Location"]).group(1))
    return Order.objects.get(pk=pk)


# --- the page ---------------------------------------------------------------------------------
def test_the_form_is_linked_from_the_index_and_the_order_list_and_shows_the_market(
    console: Any,
) -> None:
    assert URL in console.get("/admin/").content.decode()
    assert URL in console.get("/admin/orders/order/").content.decode()
    page = console.get(URL + "?symbol=AAPL")
    html = page.content.decode()
    assert page.status_code == 200
    for name in ["strategy", "symbol", "side", "qty", "type", "limit_price", "stop_price"]:
        assert f'name="{name}"' in html
    assert 'name="time_in_force"' in html and 'name="duration_minutes"' in html
    assert 'name="interval_seconds"' in html and 'name="nonce"' in html
    assert '<option value="manual" selected>' in html
    assert re.search(r"bid 99\.\d+ / ask 100\.\d+, [\d.]+ s old, from broker", html)
    assert "max order qty" in html and "OTP above $10,000" in html and "Position" in html


def test_an_ok_order_is_placed_without_a_question_and_the_result_page_shows_it(
    console: Any, paper: Any
) -> None:
    before = metric("manual_orders_total", outcome="submitted")
    page, token = review(console)
    assert tier_of(page) == "ok" and b'name="confirm"' not in page.content
    assert re.search(rb"Estimated notional</th><td id=\"notional\">\$2,0\d\d\.\d\d", page.content)
    order = placed_order(submit(console, token))
    assert order.origin == "admin" and order.strategy_id == "manual"
    assert order.broker_order_id and order.status in ("accepted", "new", "filled")
    result = console.get(f"/admin/orders/order/place/result/order/{order.pk}/").content.decode()
    assert order.client_order_id in result and order.broker_order_id in result
    assert f"/admin/orders/order/{order.pk}/change/" in result
    assert [o["client_order_id"] for o in broker_orders(paper)] == [order.client_order_id]
    event = AuditEvent.objects.get(action="order.manual_place")
    assert event.actor == console.user and event.object_id == order.client_order_id
    assert event.after["verdict"]["tier"] == "ok" and event.after["step_up_verified"] is False
    assert metric("manual_orders_total", outcome="submitted") == before + 1


def test_a_warning_needs_the_box_ticked_and_is_audited_with_the_quote(
    console: Any, paper: Any
) -> None:
    page, token = review(console, qty="70")  # ~ $7,000
    html = page.content.decode()
    assert tier_of(page) == "warn"
    assert re.search(
        r"⚠️ This order \(\$7,0\d\d\.\d\d / 70 shares\) exceeds normal limits\. "
        r"Are you sure\?",
        html,
    ), html
    assert 'name="confirm"' in html and 'name="otp_token"' not in html
    again = submit(console, token, qty="70")
    assert again.status_code == 200 and b"Tick the box" in again.content
    assert not broker_orders(paper) and not Order.objects.exists()
    order = placed_order(submit(console, token, qty="70", confirm="on"))
    event = AuditEvent.objects.get(action="order.manual_place", object_id=order.client_order_id)
    assert event.after["verdict"]["tier"] == "warn" and event.after["verdict"]["reasons"]
    assert event.after["quote"]["source"] == "broker" and event.after["quote"]["ask"]
    assert event.after["order"]["qty"] == 70 and event.after["confirmed_tier"] == "warn"
    assert event.created_at >= order.created_at  # written with the insert, not after the send


def test_a_step_up_needs_a_fresh_code_and_a_wrong_one_reaches_nothing(
    console: Any, paper: Any
) -> None:
    device = TOTPDevice.objects.get(user=console.user)
    failed_before = metric("manual_orders_total", outcome="step_up_failed")
    page, token = review(console, qty="120")  # ~ $12,000
    assert tier_of(page) == "step_up"
    assert b"This order ($12,0" in page.content and b'name="otp_token"' in page.content
    no_code = submit(console, token, qty="120", confirm="on")
    assert no_code.status_code == 200 and b"needs a fresh OTP code" in no_code.content
    wrong = submit(console, token, qty="120", confirm="on", otp_token="000000x")
    assert wrong.status_code == 200 and b"Invalid or already used OTP code" in wrong.content
    assert not broker_orders(paper) and not Order.objects.exists()
    failure = AuditEvent.objects.get(action="step_up.failed")
    assert failure.actor == console.user and failure.object_id == "order.place_large"
    assert metric("manual_orders_total", outcome="step_up_failed") == failed_before + 1
    assert metric("step_up_failures_total", action="order.place_large") >= 1
    device.refresh_from_db()
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)  # not a test of it
    code = totp_now(device)
    order = placed_order(submit(console, token, qty="120", confirm="on", otp_token=code))
    assert [o["client_order_id"] for o in broker_orders(paper)] == [order.client_order_id]
    event = AuditEvent.objects.get(action="order.manual_place")
    assert event.after["step_up_verified"] is True and event.after["confirmed_tier"] == "step_up"
    assert event.after["step_up"]["action"] == "order.place_large"


def test_a_limit_far_through_the_ask_is_refused_without_a_button(console: Any, paper: Any) -> None:
    page, token = review(console, type="limit", limit_price="120.00")
    assert tier_of(page) == "refuse"
    assert b'id="submit-button"' not in page.content and b"collar" in page.content
    forced = submit(console, token, type="limit", limit_price="120.00", confirm="on")
    assert forced.status_code == 200 and b"Refused" in forced.content
    assert not Order.objects.exists() and not broker_orders(paper)


# --- nothing from the review page is trusted ---------------------------------------------------
def test_a_hidden_field_cannot_skip_a_tier(console: Any, paper: Any) -> None:
    _, ok_token = review(console)  # reviewed as ok at 20 shares
    changed = submit(console, ok_token, qty="70", confirm="on")  # terms changed after the review
    assert changed.status_code == 200 and b"Review the order before placing it" in changed.content
    forged = submit(console, "forged-token", qty="70", confirm="on")
    assert b"Review the order before placing it" in forged.content
    assert not Order.objects.exists() and not broker_orders(paper)


def test_a_price_that_moved_into_a_higher_tier_asks_again(console: Any, paper: Any) -> None:
    page, token = review(console, qty="70")
    assert tier_of(page) == "warn"
    paper.set_prices({"AAPL": "180.00"})  # 70 x 180 = $12,600: step-up now
    moved = submit(console, token, qty="70", confirm="on")
    assert moved.status_code == 200 and tier_of(moved) == "step_up"
    assert b"The market moved" in moved.content and b'name="otp_token"' in moved.content
    assert not Order.objects.exists() and not broker_orders(paper)


MOVES: list[Any] = []  # (paper control, prices) for move_price


def move_price(intent: Any, ctx: Any) -> None:
    """A PRETRADE_PREPARE hook: the market moves between the submit's review and the
    pipeline's own quote (the window the check under the lock exists for)."""
    while MOVES:
        paper, prices = MOVES.pop()
        paper.set_prices(prices)


def test_a_move_between_the_review_and_the_locked_check_is_refused_and_asked_again(
    console: Any, paper: Any, settings: Any
) -> None:
    settings.PRETRADE_PREPARE = [
        "tests.orders.test_admin_place.move_price",
        *settings.PRETRADE_PREPARE,
    ]
    _, token = review(console, qty="70")
    MOVES.append((paper, {"AAPL": "180.00"}))
    moved = submit(console, token, qty="70", confirm="on")
    assert moved.status_code == 200 and b"Not placed (fat_finger)" in moved.content
    assert tier_of(moved) == "step_up"  # the new review, at the new tier
    assert not Order.objects.exists() and not broker_orders(paper)
    assert not AuditEvent.objects.filter(action="order.manual_place").exists()


def test_a_double_post_of_one_form_places_one_order_and_a_new_form_another(
    console: Any, paper: Any
) -> None:
    _, token = review(console)
    first = placed_order(submit(console, token))
    second = submit(console, token)
    assert placed_order(second) == first and second["Location"].endswith("?replayed=1")
    assert b"submitted already" in console.get(second["Location"]).content
    _, other_token = review(console, nonce="f" * 32)  # a new form, same terms: a new order
    other = placed_order(submit(console, other_token, nonce="f" * 32))
    assert other != first and len(broker_orders(paper)) == 2


def test_change_the_order_goes_back_to_the_form_with_its_values(console: Any) -> None:
    page = console.post(URL, {**terms(qty="70"), "_edit": "1"})
    html = page.content.decode()
    assert page.status_code == 200 and 'id="place-form"' in html
    assert 'name="qty" value="70"' in html and f'name="nonce" value="{NONCE}"' in html
    assert not Order.objects.exists()


def test_a_twap_plan_from_the_form(console: Any, paper: Any) -> None:
    page, token = review(console, qty="40", duration_minutes="2", interval_seconds="60")
    assert tier_of(page) == "ok" and b"largest slice" in page.content
    response = submit(console, token, qty="40", duration_minutes="2", interval_seconds="60")
    assert response.status_code == 302 and "/place/result/plan/" in response["Location"]
    plan = SlicingPlan.objects.get()
    assert plan.origin == "admin" and plan.qty == 40 and plan.slices.count() >= 2
    event = AuditEvent.objects.get(action="order.manual_place")
    assert event.object_type == "plan" and event.object_id == str(plan.pk)


def test_the_audit_row_rolls_back_with_a_refused_order(console: Any, paper: Any) -> None:
    from orders.controls import trading_switch_set

    _, token = review(console, qty="70")
    trading_switch_set(name="kill_switch", engaged=True, actor="test", reason="drill")
    refused = submit(console, token, qty="70", confirm="on")
    assert refused.status_code == 200 and b"kill_switch" in refused.content
    assert not AuditEvent.objects.filter(action="order.manual_place").exists()
    assert not Order.objects.exists()


# --- bad input and faults ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"qty": "abc"}, "qty", "whole number"),
        ({"qty": "0"}, "qty", "between"),
        ({"symbol": "APPLE1"}, "symbol", "symbol"),
        ({"side": "hold"}, "side", "valid choice"),
        ({"type": "limit"}, "limit_price", "Required for limit"),
        ({"type": "limit", "limit_price": "-5"}, "limit_price", ""),
        ({"limit_price": "100.00"}, "limit_price", "Not allowed for market"),
        ({"strategy": "external"}, "strategy", "valid choice"),
        ({"duration_minutes": "x", "interval_seconds": "60"}, "duration_minutes", ""),
        ({"nonce": ""}, "nonce", ""),
    ],
)
def test_malformed_values_redisplay_the_form_with_field_errors(
    console: Any, overrides: dict[str, str], field: str, words: str
) -> None:
    for step in ("_review", "_submit"):
        page = console.post(URL, {**terms(**overrides), step: "1"})
        assert page.status_code == 200
        html = page.content.decode()
        assert 'id="place-form"' in html
        assert f"errors field-{field}" in html or (field == "nonce" and "errorlist" in html)
        assert words in html
    assert not Order.objects.exists()


def test_a_market_order_without_a_quote_is_refused_with_the_reason(
    console: Any, paper: Any
) -> None:
    paper.add_fault(method="GET", path="/v2/stocks/quotes/latest*", mode="error500", count=-1)
    page, _ = review(console)
    assert tier_of(page) == "refuse" and b"fresh quote" in page.content
    assert b'id="submit-button"' not in page.content
    assert not Order.objects.exists()


def test_the_broker_down_at_submit_leaves_the_order_unconfirmed_and_says_so(
    console: Any, paper: Any
) -> None:
    _, token = review(console)
    paper.add_fault(method="POST", path="/v2/orders", mode="error500", count=5)
    order = placed_order(submit(console, token))
    assert order.status == "submitted_unconfirmed"
    page = console.get(f"/admin/orders/order/place/result/order/{order.pk}/").content.decode()
    assert 'id="unconfirmed"' in page and "submitted_unconfirmed" in page


def test_an_operator_without_the_permission_gets_403(trading_ready: None, client: Any) -> None:
    user = get_user_model().objects.create_user("viewer", password="pw-view-123456", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    assert client.get(URL).status_code == 403
    assert client.post(URL, {**terms(), "_review": "1"}).status_code == 403
    assert client.get("/admin/orders/order/").status_code == 200
    assert URL not in client.get("/admin/orders/order/").content.decode()
    user.user_permissions.add(Permission.objects.get(codename="place_manual_order"))
    assert client.get(URL).status_code == 200


def test_a_session_without_otp_gets_the_otp_login_page(ops_user: Any, client: Any) -> None:
    client.force_login(ops_user)  # password only: no verified device in the session
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    login = client.get(response["Location"]).content.decode()
    assert 'name="otp_token"' in login

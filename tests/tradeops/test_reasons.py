"""One rule for operators' reasons (issue 10 point 9): the same in services, admin forms, API
serializers and commands; a strategy cancelling its own order may leave it blank."""

from __future__ import annotations

from typing import Any

import pytest

from tradeops.errors import ValidationFailed
from tradeops.reasons import REASON_MAX_LENGTH, reason_clean

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("reason", "cleaned"),
    [
        ("abcde", "abcde"),
        ("  abcde  ", "abcde"),
        ("x" * REASON_MAX_LENGTH, "x" * REASON_MAX_LENGTH),
        ("abcd", None),
        ("   abcd   ", None),
        ("", None),
        (None, None),
        ("x" * (REASON_MAX_LENGTH + 1), None),
        (12345, None),
    ],
)
def test_reason_rule(reason: Any, cleaned: str | None) -> None:
    if cleaned is None:
        with pytest.raises(ValidationFailed, match=r"5 to 1000 characters|must be text"):
            reason_clean(reason)
    else:
        assert reason_clean(reason) == cleaned


@pytest.mark.parametrize(("reason", "cleaned"), [("", ""), ("  ", ""), (None, ""), ("ok", None)])
def test_optional_reason_may_be_blank_but_not_short(reason: Any, cleaned: str | None) -> None:
    if cleaned is None:
        with pytest.raises(ValidationFailed):
            reason_clean(reason, optional=True)
    else:
        assert reason_clean(reason, optional=True) == cleaned


def test_a_strategy_cancels_without_a_reason_but_a_short_one_is_refused(trader: Any) -> None:
    first = trader.post(
        "/api/v1/orders",
        {
            "symbol": "AAPL",
            "side": "buy",
            "qty": 1,
            "type": "limit",
            "limit_price": "50.00",
            "time_in_force": "gtc",
        },
        format="json",
    ).json()
    url = f"/api/v1/orders/{first['client_order_id']}/cancel"
    short = trader.post(url, {"reason": "no"}, format="json")
    assert short.status_code == 400
    assert "5 to 1000 characters" in short.json()["error"]["message"]
    assert trader.post(url, {}, format="json").status_code == 200


def test_an_operator_cancelling_through_the_api_must_say_why(trader: Any, ops_admin: Any) -> None:
    first = trader.post(
        "/api/v1/orders",
        {
            "symbol": "AAPL",
            "side": "buy",
            "qty": 1,
            "type": "limit",
            "limit_price": "50.00",
            "time_in_force": "gtc",
        },
        format="json",
    ).json()
    url = f"/api/v1/orders/{first['client_order_id']}/cancel"
    blank = ops_admin.post(url, {}, content_type="application/json")
    assert blank.status_code == 400
    error = blank.json()["error"]
    assert error["code"] == "validation_error" and "5 to 1000 characters" in error["message"]
    done = ops_admin.post(url, {"reason": "desk cleanup"}, content_type="application/json")
    assert done.status_code == 200


def test_the_admin_change_form_applies_the_same_rule(ops_admin: Any) -> None:
    page = ops_admin.post(
        "/admin/orders/risklimit/add/",
        {"symbol": "AAPL", "max_order_qty": "10", "audit_reason": " abc "},
    )
    assert page.status_code == 200 and b"5 to 1000 characters" in page.content
    from orders.models import RiskLimit

    assert not RiskLimit.objects.filter(symbol="AAPL").exists()


def test_a_command_applies_the_same_rule(trading_switches: None) -> None:
    from django.core.management import CommandError, call_command

    from reconciliation.models import Quarantine

    q = Quarantine.objects.create(strategy_id="*", symbol="TSLA", reason="drift found")
    with pytest.raises(CommandError, match="5 to 1000 characters"):
        call_command("quarantines", "clear", str(q.pk), "--reason", "ok", "--user", "nobody")


def test_the_api_gives_the_rule_once(trader: Any, ops_admin: Any) -> None:
    response = ops_admin.post(
        "/api/v1/reconciliation/force-complete",
        {"reason": "ok", "otp_token": "123456"},
        content_type="application/json",
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.count("5 to 1000 characters") == 1 and "Ensure" not in message

"""Management commands through call_command."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from orders.models import MANUAL_STRATEGY_ID, Strategy
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_create_strategy_writes_a_working_token(
    tmp_path: Path, paper: Any, trading_ready: None
) -> None:
    out = tmp_path / "alpha.token"
    call_command("create_strategy", "alpha", "--token-out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {out.read_text().strip()}")
    assert client.get("/api/v1/orders").status_code == 200
    assert AuditEvent.objects.filter(action="strategy.create", object_id="alpha").exists()


@pytest.mark.parametrize("bad", ["external", "Has Spaces", "UPPER"])
def test_create_strategy_refuses_reserved_and_malformed_ids(bad: str) -> None:
    with pytest.raises(CommandError):
        call_command("create_strategy", bad)
    assert not Strategy.objects.exclude(pk=MANUAL_STRATEGY_ID).exists()  # only the migration's


def test_create_strategy_twice_is_a_clear_error_and_new_token_rotates(capsys: Any) -> None:
    call_command("create_strategy", "alpha")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_strategy", "alpha")
    call_command("create_strategy", "alpha", "--new-token")
    assert Strategy.objects.get(pk="alpha").tokens.count() == 2


def test_otp_enroll_prints_url_and_qr(capsys: Any) -> None:
    get_user_model().objects.create_user("ops", password="x-pass-123456", is_staff=True)
    call_command("otp_enroll", "ops")
    out = capsys.readouterr().out
    assert "otpauth://totp/TradeOps%3Aops?secret=" in out
    assert "█" in out or "▀" in out or "▄" in out  # a QR drawn in the terminal
    with pytest.raises(CommandError, match="already has"):
        call_command("otp_enroll", "ops")
    with pytest.raises(CommandError, match="No user"):
        call_command("otp_enroll", "nobody")

"""The admin login page, through the real form: password and OTP code in one submit, one answer
for every failure (it must not tell that the password alone was right), and wrong passwords
throttled per account like wrong codes."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
import time_machine
from django.test import Client

from tests.helpers import totp_now

pytestmark = pytest.mark.django_db

PASSWORD = "pw-ops-123456"  # the ops_user fixture's


def login(client: Client, *, username: str = "ops", password: str = PASSWORD, code: str) -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "otp_token": code},
    )


def error_note(response: Any) -> str:
    """The page's error text, whitespace-normalised."""
    notes = re.findall(r'<p class="errornote">(.*?)</p>', response.content.decode(), re.S)
    return " ".join(" ".join(notes).split())


def form_fields(response: Any) -> set[str]:
    fields = r'<(?:input|select|textarea)[^>]* name="([a-z_]+)"'
    return set(re.findall(fields, response.content.decode())) - {
        "csrfmiddlewaretoken",
        "next",
    }


def later(seconds: float) -> Any:
    return time_machine.travel(time.time() + seconds, tick=True)


def at(moment: float) -> Any:
    """The clock stopped at ``moment``: throttle windows are exact whatever the machine's load."""
    return time_machine.travel(moment, tick=False)


def test_password_and_code_log_in_on_the_first_submit(ops_user: Any) -> None:
    client = Client()
    response = login(client, code=totp_now(ops_user.totpdevice_set.get()))
    assert response.status_code == 302, error_note(response)  # was "Please select a device."
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_login_page_asks_for_the_code_from_the_start(db: Any) -> None:
    page = Client().get("/admin/login/")
    assert form_fields(page) == {"username", "password", "otp_token"}


def test_a_wrong_password_and_a_wrong_code_get_the_same_answer(ops_user: Any) -> None:
    device = ops_user.totpdevice_set.get()
    wrong_password = login(Client(), password="not-the-password", code=totp_now(device))
    with later(5):  # past the throttle that failure started
        wrong_code = login(Client(), code="123456")
    for response in (wrong_password, wrong_code):
        assert response.status_code == 200
        assert "_auth_user_id" not in response.wsgi_request.session
    assert error_note(wrong_password) == error_note(wrong_code)
    assert "correct username, password and OTP code" in error_note(wrong_code)
    # Nothing on the page changes once the password is right: no device list appears.
    assert (
        form_fields(wrong_password)
        == form_fields(wrong_code)
        == {
            "username",
            "password",
            "otp_token",
        }
    )


@pytest.mark.parametrize("who", ["inactive", "not_staff", "no_device", "unknown"])
def test_accounts_that_may_not_log_in_get_the_same_answer(ops_user: Any, who: str) -> None:
    from django.contrib.auth import get_user_model

    device = ops_user.totpdevice_set.get()
    user = get_user_model().objects.create_user(who, password=PASSWORD, is_staff=True)
    if who == "inactive":
        user.is_active = False
    if who == "not_staff":
        user.is_staff = False
    user.save()
    username = "nobody" if who == "unknown" else who
    response = login(Client(), username=username, code=totp_now(device))
    reference = login(Client(), password="wrong", code="123456")  # ops, wrong password
    assert response.status_code == 200
    assert error_note(response) == error_note(reference)


def test_wrong_passwords_are_throttled_per_account(ops_user: Any) -> None:
    device = ops_user.totpdevice_set.get()
    client, start = Client(), time.time()
    with at(start):
        assert login(client, password="guess-1", code="123456").status_code == 200
    with at(start + 0.5):  # even the right password and code are refused while throttled
        refused = login(client, code=totp_now(device))
    assert refused.status_code == 200
    assert "Too many failed attempts" in error_note(refused)
    assert client.get("/admin/").status_code == 302
    # 1 failure: 1 s; 2 failures: 2 s (OTP_TOTP_THROTTLE_FACTOR x 2^(n-1), as for codes).
    with at(start + 1.0):
        assert "correct username" in error_note(login(client, password="guess-2", code="1"))
    with at(start + 2.9):
        refused = login(client, code=totp_now(device))
    assert "Too many failed attempts" in error_note(refused)
    with at(start + 3.0):
        ok = login(client, code=totp_now(device))
    assert ok.status_code == 302, error_note(ok)
    assert client.get("/admin/").status_code == 200


def test_the_throttled_answer_is_the_same_for_a_right_and_a_wrong_password(
    ops_user: Any,
) -> None:
    device = ops_user.totpdevice_set.get()
    start = time.time()
    with at(start):  # frozen: the 1 s throttle cannot expire between the attempts
        assert login(Client(), password="guess", code="123456").status_code == 200
        right = login(Client(), code=totp_now(device))
        wrong = login(Client(), password="guess-again", code="123456")
    assert "Too many failed attempts" in error_note(right)
    assert error_note(right).split(":")[0] == error_note(wrong).split(":")[0]


def test_other_accounts_are_not_throttled_by_one_under_attack(ops_user: Any) -> None:
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    other = get_user_model().objects.create_superuser("ops2", "o2@example.com", PASSWORD)
    device = TOTPDevice.objects.create(user=other, name="phone", confirmed=True)
    for guess in ("a", "b"):
        login(Client(), password=guess, code="123456")
    assert login(Client(), username="ops2", code=totp_now(device)).status_code == 302


def test_a_code_cannot_be_used_twice(ops_user: Any) -> None:
    device = ops_user.totpdevice_set.get()
    code = totp_now(device)
    first = Client()
    assert login(first, code=code).status_code == 302
    again = login(Client(), code=code)
    assert again.status_code == 200
    assert "correct username, password and OTP code" in error_note(again)


def test_a_user_with_a_phone_and_backup_codes_logs_in_with_either(ops_user: Any) -> None:
    from django_otp.plugins.otp_static.models import StaticDevice

    backup = StaticDevice.objects.create(user=ops_user, name="backup", confirmed=True)
    backup.token_set.create(token="backup-code-1")
    phone = ops_user.totpdevice_set.get()
    client = Client()
    assert login(client, code=totp_now(phone)).status_code == 302
    assert client.session["otp_device_id"] == phone.persistent_id
    other = Client()
    assert login(other, code="backup-code-1").status_code == 302
    assert other.session["otp_device_id"] == backup.persistent_id
    assert not backup.token_set.exists()  # a backup code is used once
    phone.refresh_from_db()
    assert phone.throttling_failure_count == 0  # the phone was not charged a failure


def test_failed_logins_are_logged_with_the_client(
    ops_user: Any, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    # A 1 s throttle could expire between two logins on a loaded machine: make it an hour,
    # so the second attempt is throttled however slow the first one was.
    settings.OTP_TOTP_THROTTLE_FACTOR = 3600
    with caplog.at_level(logging.WARNING, logger="tradeops.login"):
        login(Client(REMOTE_ADDR="192.0.2.7"), password="guess", code="123456")
        login(Client(REMOTE_ADDR="192.0.2.7"), password="guess", code="123456")
    lines = [r.getMessage() for r in caplog.records if r.name == "tradeops.login"]
    assert any("'ops'" in line and "192.0.2.7" in line and "failed" in line for line in lines)
    assert any("throttled" in line for line in lines)


@pytest.mark.parametrize(
    ("failures", "elapsed", "wait"),
    [
        (0, 0.0, 0.0),
        (1, 0.0, 1.0),
        (1, 0.4, 0.6),
        (1, 1.0, 0.0),
        (2, 0.0, 2.0),
        (5, 10.0, 6.0),
        (30, 0.0, 900.0),  # capped: an attacker cannot lock an account out for days
        (30, 900.0, 0.0),
    ],
)
def test_login_wait_seconds(failures: int, elapsed: float, wait: float) -> None:
    from tradeops.login import login_wait_seconds

    assert login_wait_seconds(failures=failures, elapsed=elapsed, factor=1) == pytest.approx(wait)


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_are_serialised_by_the_throttle(ops_user: Any) -> None:
    """Five wrong passwords sent at the same instant: the account's row lock makes them one
    failure and four throttled answers, not five guesses checked in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from tradeops.models import LoginThrottle

    # The row exists (an old, forgiven failure count would too): no insert race to hide behind.
    LoginThrottle.objects.create(username="ops")

    def guess(n: int) -> str:
        try:
            return error_note(login(Client(), password=f"guess-{n}", code="123456"))
        finally:
            connections.close_all()

    with at(time.time()), ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(guess, range(5)))
    assert sum("correct username" in a for a in answers) == 1, answers
    assert sum("Too many failed attempts" in a for a in answers) == 4, answers

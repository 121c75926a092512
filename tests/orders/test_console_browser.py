"""The operators' console in a real browser (issue 12 point 7): Playwright for Python driving
Debian's chromium (never a downloaded browser build; ``.ci/run`` apt-installs it) against a live
Django server and the paper broker, on PostgreSQL.

One operator session, the way an operator works: log in with password + TOTP; place a $2,000
order (no question), a $7,000 one (warning, confirm), a $12,000 one (warning + OTP: a wrong code
reaches nothing, the right one exactly one order at the broker), a limit 20 % through the ask
(refused, no button); then adopt an orphan from the Orphan orders page. Screenshots of the form,
the warning, the step-up and the result go to a temporary directory, or to docs/img/ (shown in
docs/console.md) with ``TRADEOPS_SCREENSHOTS=docs/img``, so a test run leaves the tree clean.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.models import Order
from orders.strategies import manual_strategy_ensure
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "pw-ops-browser-123456"


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        yield context.new_page()
        context.close()
        browser.close()


@pytest.fixture
def operator(trading_ready: None, fat_finger_configured: Any) -> tuple[Any, TOTPDevice]:
    manual_strategy_ensure()
    user = get_user_model().objects.create_superuser("operator", "op@example.com", PASSWORD)
    # tolerance 3: the next step's code is accepted too, so each action uses a fresh code
    # (django-otp refuses a reused one) without waiting 30 s for the clock.
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True, tolerance=3)
    return user, device


def fresh_code(device: TOTPDevice) -> str:
    """The code of the earliest time step this device has not used yet (never the login's)."""
    device.refresh_from_db()
    now_t = int((time.time() - device.t0) // device.step)
    t = max(now_t, device.last_t + 1)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = device.t0 + t * device.step + 1
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    valid = {fresh_code(device)}
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    for back in range(40, 60):
        totp.time = time.time() - back * device.step
        code = f"{totp.token():0{device.digits}d}"
        if code not in valid:
            return code
    raise AssertionError("no wrong code found")


def login(page: Any, base: str, device: TOTPDevice) -> None:
    page.goto(f"{base}/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", fresh_code(device))
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "/admin/login/" not in page.url


def fill_order(page: Any, base: str, *, qty: int, **fields: str) -> None:
    page.goto(f"{base}/admin/orders/order/place/?symbol=AAPL")
    page.select_option("#id_strategy", "manual")
    page.fill("#id_symbol", "AAPL")
    page.select_option("#id_side", "buy")
    page.fill("#id_qty", str(qty))
    page.select_option("#id_type", fields.get("type", "market"))
    page.fill("#id_limit_price", fields.get("limit_price", ""))
    page.select_option("#id_time_in_force", "day")


def review(page: Any) -> str:
    page.click("#review-button")
    return page.get_attribute("#verdict", "data-tier")


def broker_coids(paper: Any) -> list[str]:
    return [o["client_order_id"] for o in paper.state()["orders"]]


def placed(page: Any) -> Order:
    page.wait_for_selector("#result")
    return Order.objects.get(client_order_id=page.inner_text("#client-order-id").strip())


def test_an_operator_places_every_tier_and_adopts_an_orphan(
    live_server: Any, page: Any, operator: tuple[Any, TOTPDevice], paper: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    base, (_, device) = live_server.url, operator
    shots = Path(os.environ.get("TRADEOPS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    login(page, base, device)
    assert page.is_visible("a[href='/admin/orders/order/place/']")  # linked from the index

    # $2,000: no question asked.
    fill_order(page, base, qty=20)
    assert "bid 99." in page.inner_text("#quote") and "from broker" in page.inner_text("#quote")
    page.screenshot(path=str(shots / "console-form.png"), full_page=True)
    assert review(page) == "ok" and not page.is_visible("#warning")
    page.click("#submit-button")
    small = placed(page)
    assert small.status in ("accepted", "new", "filled") and small.broker_order_id
    assert page.inner_text("#broker-order-id").strip() == small.broker_order_id

    # $7,000: the warning, then the confirm box.
    fill_order(page, base, qty=70)
    assert review(page) == "warn"
    assert "⚠️ This order ($7,0" in page.inner_text("#warning")
    assert "/ 70 shares) exceeds normal limits. Are you sure?" in page.inner_text("#warning")
    page.screenshot(path=str(shots / "console-warning.png"), full_page=True)
    page.click("#submit-button")  # not ticked: asked again, nothing sent
    assert "Tick the box" in page.inner_text("#review-errors")
    page.check("#id_confirm")
    page.click("#submit-button")
    medium = placed(page)
    assert medium.client_order_id in broker_coids(paper)

    # $12,000: warning + OTP. A wrong code reaches nothing; the right one exactly one order.
    fill_order(page, base, qty=120)
    assert review(page) == "step_up" and page.is_visible("#id_otp_token")
    page.screenshot(path=str(shots / "console-step-up.png"), full_page=True)
    at_broker = broker_coids(paper)
    page.check("#id_confirm")
    page.fill("#id_otp_token", wrong_code(device))
    page.click("#submit-button")
    assert "Invalid or already used OTP code" in page.inner_text("#review-errors")
    assert broker_coids(paper) == at_broker and Order.objects.count() == 2
    # django-otp throttles the device after a failure (1 s, then doubling): wait it out.
    wait_for(lambda: device.__class__.objects.get(pk=device.pk).verify_is_allowed()[0], timeout=10)
    page.check("#id_confirm")
    page.fill("#id_otp_token", fresh_code(device))
    page.click("#submit-button")
    large = placed(page)
    page.screenshot(path=str(shots / "console-result.png"), full_page=True)
    new_at_broker = [c for c in broker_coids(paper) if c not in at_broker]
    assert new_at_broker == [large.client_order_id] and large.qty == 120

    # A limit 20 % through the ask: refused, no button.
    fill_order(page, base, qty=10, type="limit", limit_price="120.00")
    assert review(page) == "refuse"
    assert page.locator("#submit-button").count() == 0
    assert "collar" in page.inner_text("#reasons")
    assert Order.objects.count() == 3

    # An orphan (placed straight at the broker, found by reconciliation), adopted.
    from reconciliation.engine import reconciliation_run
    from reconciliation.models import OrphanOrder

    paper.place_order(
        symbol="MSFT", qty=1, side="sell", type="limit", limit_price="999", time_in_force="gtc"
    )
    assert reconciliation_run(kind="manual").succeeded
    orphan = OrphanOrder.objects.get()
    page.goto(f"{base}/admin/reconciliation/orphanorder/")
    page.check(f"input[name=_selected_action][value='{orphan.pk}']")
    page.select_option("select[name=action]", "adopt")
    page.click("button[name=index]")
    page.select_option("#id_strategy", "manual")
    page.fill("#id_reason", "placed by hand at the broker during the drill")
    page.fill("#id_otp_token", fresh_code(device))  # adopting lifts a quarantine: step-up
    page.click("input[type=submit][value=Confirm]")
    page.wait_for_selector("ul.messagelist")
    orphan.refresh_from_db()
    assert orphan.status == "adopted" and orphan.adopted_order.origin == "adopted"
    print(f"\nbrowser test: {time.monotonic() - started:.1f} s in the test body")

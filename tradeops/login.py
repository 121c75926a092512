"""Admin login: password and OTP code checked together, one answer for every failure, and
failed attempts throttled per username.

django-otp's admin form asks for a device only after the password was accepted: the first
submit with a correct password and code answered "Please select a device.", and the page that
came back (a device list, the password kept) told an attacker the password was right. Only the
OTP device throttled failures, so passwords could be guessed at full speed. Here a login is one
decision: the account's throttle row is locked, then the password and the code are checked,
and any failure (unknown user, wrong password, not staff, inactive, no device, wrong or reused
code, a device throttled by earlier wrong codes) gets the same message and counts against the
username. Per username rather than per client address: behind a proxy every client shares an
address, and one attacker would lock every operator out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp import devices_for_user
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tradeops.models import LoginThrottle

logger = logging.getLogger(__name__)

LOGIN_FAILED = (
    "Please enter the correct username, password and OTP code of a staff account. "
    "All fields are case-sensitive, and a code can be used once."
)
LOGIN_THROTTLED = "Too many failed attempts for this account: try again in {wait} seconds."
# An attacker who only knows a username can keep it throttled; the cap bounds how long a
# legitimate operator then waits (and still leaves ~100 guesses a day). A throttle row whose
# last failure is older than FORGET is dropped, so guessed usernames do not pile up.
MAX_WAIT_SECONDS = 900
FORGET = timedelta(days=1)


@dataclass(frozen=True)
class LoginVerdict:
    user: Any  # with ``otp_device`` set (django-otp persists it on login), or None
    message: str = ""
    throttled: bool = False


def login_wait_seconds(*, failures: int, elapsed: float, factor: float) -> float:
    """Seconds still to wait after ``failures`` consecutive failures, the last ``elapsed``
    seconds ago: ``factor * 2**(failures - 1)`` like django-otp's device throttling, capped."""
    if failures <= 0:
        return 0.0
    delay = min(factor * 2 ** min(failures - 1, 32), MAX_WAIT_SECONDS)
    return max(0.0, delay - elapsed)


def admin_login_verify(*, request: Any, username: str, password: str, token: str) -> LoginVerdict:
    """Check a login attempt as one decision under the username's throttle lock."""
    client = request.META.get("REMOTE_ADDR", "?") if request is not None else "?"
    now = timezone.now()
    with transaction.atomic():
        throttle = _throttle_locked(username[:150], now=now)
        wait = login_wait_seconds(
            failures=throttle.failures,
            elapsed=(now - throttle.last_failure_at).total_seconds() if throttle.failures else 0,
            factor=getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1),
        )
        if wait > 0:
            logger.warning("admin login throttled for %r from %s", username, client)
            return LoginVerdict(None, LOGIN_THROTTLED.format(wait=int(wait) + 1), throttled=True)
        user = authenticate(request, username=username, password=password)
        device = _verified_device(user, token) if _may_log_in(user) else None
        if device is None:
            throttle.failures += 1
            throttle.last_failure_at = now
            throttle.save(update_fields=["failures", "last_failure_at"])
            logger.warning(
                "admin login failed for %r from %s (%d consecutive)",
                username,
                client,
                throttle.failures,
            )
            return LoginVerdict(None, LOGIN_FAILED)
        throttle.delete()
    user.otp_device = device
    return LoginVerdict(user)


def _throttle_locked(username: str, *, now: Any) -> LoginThrottle:
    LoginThrottle.objects.filter(last_failure_at__lt=now - FORGET).delete()
    throttle = LoginThrottle.objects.select_for_update().filter(username=username).first()
    if throttle is not None:
        return throttle
    try:
        with transaction.atomic():  # a savepoint: a concurrent first attempt may insert too
            LoginThrottle.objects.create(username=username)
    except IntegrityError:
        pass
    return LoginThrottle.objects.select_for_update().get(username=username)


def _may_log_in(user: Any) -> bool:
    return user is not None and user.is_active and user.is_staff


def _verified_device(user: Any, token: str) -> Any:
    """The user's device that accepts ``token`` (django-otp's verify_token: replay protection
    and the device's own throttle), or None. With several devices, the one the code belongs
    to is found first without side effects, so the others are not charged a failure."""
    devices = list(devices_for_user(user, confirmed=True, for_verify=True))
    candidates = devices if len(devices) == 1 else [d for d in devices if _fits(d, token)]
    for device in candidates:
        allowed, _ = device.verify_is_allowed()
        if allowed and device.verify_token(token):
            return device
    return None


def _fits(device: Any, token: str) -> bool:
    """Whether ``token`` is this device's current code (or one of its backup codes), checked
    without recording anything."""
    if isinstance(device, TOTPDevice):
        if not (token.isascii() and token.isdigit()):
            return False
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        return totp.verify(int(token), device.tolerance, device.last_t + 1)
    if isinstance(device, StaticDevice):
        return device.token_set.filter(token=token).exists()
    return False

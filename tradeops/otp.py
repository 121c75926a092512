"""OTP step-up: a fresh code for every operator action that relaxes a control.

Logging in proves who sits at the keyboard; a step-up proves it again at the moment money or
safety is put back at risk (a kill switch released, a quarantine lifted, a limit raised...).
``step_up_verify`` is the one check: the code is verified against the operator's OWN device
(the one this session logged in with), so django-otp refuses the code already used to log in
and throttles wrong codes (each failure doubles the wait); a wrong code is audited and counted
(``step_up_failures_total{action}``) even though the action itself is refused.

``STEP_UP_WINDOW_SECONDS`` (default 0: every action asks) lets a session reuse a step-up it
verified less than that many seconds ago. The proof is kept in the Django SESSION, not on a
model: it belongs to one login in one browser (another browser, a stolen API token or a
command has no such session and must type a code), and it dies with logout or session expiry.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import qrcode
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from tradeops import metrics
from tradeops.audit import audit_record
from tradeops.errors import PermissionDenied

STEP_UP_HINT = (
    "Enter a fresh code from your authenticator. A code can be used once: if you just logged "
    "in with it, wait for the next one."
)
SESSION_KEY = "tradeops_step_up"

# Every operator action that relaxes a control, by its step-up name (also its metric label).
# The README's "Step-up actions" list and docs/runbook.md name the same ones.
STEP_UP_ACTIONS: dict[str, str] = {
    "trading_switch.release": "release the kill switch or the circuit breaker "
    "(admin: Trading switches → Release)",
    "reconciliation.force_complete": "open the reconciliation gate without a reconciliation "
    "(admin gate page, API, force_complete_reconciliation)",
    "orphan.adopt": "adopt an orphan order into a strategy, lifting its quarantine "
    "(admin: Orphan orders, `orphans adopt`)",
    "quarantine.narrow": "narrow an orphan's quarantine from every strategy to 'external' "
    "(admin: Orphan orders, `orphans narrow`)",
    "quarantine.clear": "clear a quarantine by hand (admin: Quarantines, `quarantines clear`)",
    "risk_limit.raise": "raise any risk or fat-finger limit, or add a per-symbol row above the "
    "effective limit (admin: Risk limits)",
    "strategy.raise_limit": "raise a strategy's max_unconfirmed_notional, or reactivate a "
    "deactivated strategy (admin: Strategies)",
    "plan.resume": "resume a paused TWAP plan (admin: Slicing plans → Resume)",
    "order.place_large": "place an order above the fat-finger step-up threshold "
    "(admin: Orders → Place order; a strategy cannot, above its max_unconfirmed_notional)",
    "model.activate_unvalidated": "activate a model version without shadow validation "
    "(admin: Model versions → EMERGENCY)",
}
for _action in STEP_UP_ACTIONS:
    metrics.STEP_UP_FAILURES.labels(_action)


@dataclass(frozen=True)
class StepUp:
    """A verified step-up: who, for what, with which device, when; ``reused`` when it came
    from the session's window instead of a code typed now. Goes into the action's audit row."""

    user_id: int
    action: str
    device: str
    verified_at: datetime
    reused: bool = False

    def as_audit(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "device": self.device,
            "verified_at": self.verified_at.isoformat(),
            "reused": self.reused,
        }


def step_up_verify(
    *, user: Any, token: str | None, action: str, session: Any = None, now: datetime | None = None
) -> StepUp:
    """Verify a fresh OTP code of ``user`` for ``action``; the StepUp, or ``PermissionDenied``:
    ``otp_required`` (no code and no reusable step-up, or no device) or ``otp_invalid`` (a
    wrong, reused or throttled code: audited and counted). ``session``: the request's session,
    where a step-up is kept for ``STEP_UP_WINDOW_SECONDS`` when that is > 0.

    Call it BEFORE the action's own transaction: the failure's audit row and django-otp's
    throttle counter must commit although the action is refused."""
    now = now or timezone.now()
    token = (token or "").strip()
    if not token:
        reused = _window_step_up(user=user, action=action, session=session, now=now)
        if reused is not None:
            return reused
        raise PermissionDenied(
            f"This action ({action}) relaxes a control: it needs a fresh OTP code (otp_token). "
            + STEP_UP_HINT,
            code="otp_required",
            details={"action": action},
        )
    devices = _own_devices(user)
    if not devices:
        raise PermissionDenied(
            "No confirmed OTP device: enroll one (manage.py otp_enroll) first.",
            code="otp_required",
            details={"action": action},
        )
    device, throttled = _verify(user, devices, token)
    if device is None:
        _failure_record(user=user, action=action, throttled=throttled)
        why = (
            "Too many wrong OTP codes: wait a little (the wait doubles with each failure)."
            if throttled
            else "Invalid or already used OTP code."
        )
        raise PermissionDenied(why, code="otp_invalid", details={"action": action})
    step = StepUp(user_id=user.pk, action=action, device=device.persistent_id, verified_at=now)
    if session is not None and settings.STEP_UP_WINDOW_SECONDS > 0:
        session[SESSION_KEY] = {"user_id": user.pk, "device": step.device, "at": now.isoformat()}
    return step


def step_up_require(step_up: StepUp | None, *, actor: Any, action: str) -> StepUp:
    """What a service that relaxes a control asserts first: a step-up verified for this very
    actor and action (``otp_required`` otherwise), so no door (admin, API, command) can skip
    it. Interfaces verify the code with ``step_up_verify`` and pass the StepUp in; a bulk
    admin action verifies once and passes the same StepUp to each object."""
    if step_up is None:
        raise PermissionDenied(
            f"This action ({action}) relaxes a control: it needs a fresh OTP code (otp_token).",
            code="otp_required",
            details={"action": action},
        )
    if step_up.user_id != getattr(actor, "pk", None) or step_up.action != action:
        raise PermissionDenied(
            f"The step-up was verified for another user or action, not {action}.",
            code="otp_required",
            details={"action": action},
        )
    return step_up


def command_user(username: str) -> Any:
    """The active operator a command acts as (a step-up needs a user with a device)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise PermissionDenied(f"No active user '{username}'.", code="permission_denied")
    return user


def command_step_up(*, username: str, otp: str | None, action: str) -> tuple[Any, StepUp]:
    """A management command's step-up: the operator ``--user`` and a fresh code of theirs
    (``--otp``, else asked on the terminal). A command has no session: no window applies."""
    import getpass

    user = command_user(username)
    token = otp if otp is not None else getpass.getpass("OTP code: ")
    return user, step_up_verify(user=user, token=token, action=action)


def _own_devices(user: Any) -> list[Device]:
    """The device this session logged in with (django-otp advises verifying against a specific
    device); without a session (a command), the user's confirmed devices."""
    if getattr(user, "pk", None) is None:
        return []
    session_device = getattr(user, "otp_device", None)
    if session_device is not None:
        return [session_device]
    return list(devices_for_user(user, confirmed=True))


def _verify(user: Any, devices: list[Device], token: str) -> tuple[Device | None, bool]:
    """(the device that accepted ``token``, or None; whether a device refused it unread
    because of throttling). The device row is locked while verifying, so two requests cannot
    both spend one code."""
    throttled = False
    for listed in devices:
        with transaction.atomic():
            device = type(listed).objects.select_for_update().get(pk=listed.pk)
            if device.user_id != user.pk:
                continue
            allowed, _ = device.verify_is_allowed()
            if not allowed:
                throttled = True
                continue
            if device.verify_token(token):
                return device, False
    return None, throttled


def _failure_record(*, user: Any, action: str, throttled: bool) -> None:
    with transaction.atomic():
        audit_record(
            actor=user,
            action="step_up.failed",
            object_type="step_up",
            object_id=action,
            reason="throttled" if throttled else "wrong or reused code",
            after={"action": action, "throttled": throttled},
        )
    metrics.STEP_UP_FAILURES.labels(action).inc()


def _window_step_up(*, user: Any, action: str, session: Any, now: datetime) -> StepUp | None:
    """The session's recent step-up, if the window allows reusing it."""
    window = settings.STEP_UP_WINDOW_SECONDS
    if window <= 0 or session is None:
        return None
    kept = session.get(SESSION_KEY) or {}
    at = parse_datetime(kept.get("at") or "")
    if kept.get("user_id") != getattr(user, "pk", None) or at is None:
        return None
    if not (now - timedelta(seconds=window) < at <= now):
        return None
    return StepUp(
        user_id=user.pk, action=action, device=kept.get("device", ""), verified_at=at, reused=True
    )


def totp_device_create(*, user: Any, name: str, replace: bool, actor: str) -> TOTPDevice:
    """Enroll a confirmed TOTP device (``replace``: the user's old ones go), audited."""
    with transaction.atomic():
        if replace:
            TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        audit_record(
            actor=actor,
            action="otp.enroll",
            object_type="user",
            object_id=user.pk,
            after={"device": name, "replaced": replace},
        )
    return device


def qr_text(data: str) -> str:
    """A QR code as terminal text, for scanning the otpauth URL."""
    qr = qrcode.QRCode(border=1)
    qr.add_data(data)
    buf = io.StringIO()
    qr.print_ascii(out=buf, invert=True)
    return buf.getvalue()

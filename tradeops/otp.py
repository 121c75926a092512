"""OTP step-up: a fresh code for actions where money or safety is at stake."""

from __future__ import annotations

import io
from typing import Any

import qrcode
from django.db import transaction
from django_otp import devices_for_user, verify_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from tradeops.audit import audit_record

STEP_UP_HINT = (
    "Enter a fresh code from your authenticator. A code can be used once: if you just logged "
    "in with it, wait for the next one."
)


def otp_step_up(user: Any, token: str) -> bool:
    """Verify ``token`` against the device this session logged in with (django-otp advises
    verifying against a specific device), else against the user's confirmed devices."""
    token = (token or "").strip()
    if not token or getattr(user, "pk", None) is None:
        return False
    session_device = getattr(user, "otp_device", None)
    devices = (
        [session_device]
        if session_device is not None
        else list(devices_for_user(user, confirmed=True))
    )
    return any(verify_token(user, d.persistent_id, token) is not None for d in devices)


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

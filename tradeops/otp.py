"""OTP step-up: a fresh code for actions where money or safety is at stake."""

from __future__ import annotations

from typing import Any

from django_otp import devices_for_user, verify_token

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

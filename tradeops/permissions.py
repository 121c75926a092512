"""Who may call the API: strategy tokens (for their own strategy) and OTP-verified staff."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission


def is_verified_staff(user: Any) -> bool:
    """Staff with a verified OTP device in this session. Token users have no is_verified()."""
    if not getattr(user, "is_staff", False) or not getattr(user, "is_active", False):
        return False
    return bool(getattr(user, "is_verified", lambda: False)())


def strategy_scope(user: Any) -> str | None:
    """The strategy a token principal acts for; None for staff (all strategies)."""
    return getattr(user, "strategy_id", None)


class IsStrategyOrVerifiedStaff(BasePermission):
    message = "A strategy token or an OTP-verified staff session is required."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return strategy_scope(user) is not None or is_verified_staff(user)


class IsVerifiedStaff(BasePermission):
    message = "An OTP-verified staff session is required."

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_verified_staff(request.user)

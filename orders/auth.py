"""Strategy clients authenticate with ``Authorization: Token <key>``.

A token belongs to one strategy and acts only for it. The authenticated "user" is a
StrategyPrincipal, not a Django user: a machine client has no password, no admin access and no
OTP device, and it must never pass a check meant for an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from orders.strategies import strategy_token_lookup


@dataclass(frozen=True)
class StrategyPrincipal:
    strategy_id: str
    token_prefix: str
    is_authenticated: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None

    def __str__(self) -> str:
        return f"strategy:{self.strategy_id}"

    def get_username(self) -> str:
        return str(self)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False


class StrategyTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Any) -> tuple[StrategyPrincipal, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise AuthenticationFailed("Invalid token header.") from None
        token = strategy_token_lookup(key)
        if token is None or not token.strategy.is_active:
            raise AuthenticationFailed("Invalid or revoked token.")
        return StrategyPrincipal(token.strategy_id, token.prefix), token

    def authenticate_header(self, request: Any) -> str:
        return self.keyword

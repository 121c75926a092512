"""OpenAPI: how strategy clients authenticate (drf-spectacular registers this on import)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class StrategyTokenScheme(OpenApiAuthenticationExtension):
    target_class = "orders.auth.StrategyTokenAuthentication"
    name = "strategyToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` (python manage.py create_strategy <id> --token-out FILE)",
        }

"""Shared fixtures: a real PostgreSQL, a real Redis, and the paper broker on loopback."""

from __future__ import annotations

import os

import pytest
from django.conf import settings


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine and not os.environ.get("TRADEOPS_TESTS_ALLOW_SQLITE"):
        pytest.exit(
            "The suite runs against PostgreSQL: use `./dev test`, or set DATABASE_URL="
            "postgres://postgres@127.0.0.1:5432/test (TRADEOPS_TESTS_ALLOW_SQLITE=1 to override).",
            returncode=2,
        )

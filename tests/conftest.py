"""Shared fixtures: a real PostgreSQL (also the cache and django-q2's queue), the real Redis of
``REDIS_URL`` (the quote cache; every test starts without quotes in it) and the paper broker
on loopback reached through the real alpaca-py clients. Named actors: ``trader`` (strategy
alpha's token), ``outsider`` (strategy beta's token), ``ops_admin`` (OTP-verified superuser
session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from tests.helpers import token_client

# Hypothesis' 200 ms per-example deadline measures the machine's load, not the code: a 2-core
# CI box shared with PostgreSQL and the paper broker misses it on a pure function. Speed lives
# in bench/, so the suite's profile has no deadline (examples and shrinking are unchanged).
settings_profile = "tradeops"
hypothesis_settings.register_profile(settings_profile, deadline=None)
hypothesis_settings.load_profile(settings_profile)


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine and not os.environ.get("TRADEOPS_TESTS_ALLOW_SQLITE"):
        pytest.exit(
            "The suite runs against PostgreSQL: use `./dev test`, or set DATABASE_URL="
            "postgres://postgres@127.0.0.1:5432/test (TRADEOPS_TESTS_ALLOW_SQLITE=1 to override).",
            returncode=2,
        )


DEFAULT_PRICES = {"AAPL": "100.00", "MSFT": "300.00", "TSLA": "200.00", "THIN": "10.00"}


@pytest.fixture(scope="session")
def paper_server() -> Iterator[Any]:
    from paperbroker.testing import start_test_server

    server = start_test_server()
    yield server
    server.stop()


@pytest.fixture
def paper(paper_server: Any, settings: Any) -> Any:
    """A freshly reset paper broker wired into the settings; deterministic prices, immediate
    fills, open market, no random walk. alpaca-py's 3 s retry sleeps are turned off."""
    settings.ALPACA_BASE_URL = paper_server.url
    settings.ALPACA_DATA_URL = paper_server.url
    settings.ALPACA_STREAM_URL = paper_server.stream_url
    settings.ALPACA_DATA_STREAM_URL = paper_server.data_stream_url
    settings.ALPACA_API_KEY = settings.PAPERBROKER_API_KEY
    settings.ALPACA_SECRET_KEY = settings.PAPERBROKER_SECRET_KEY
    settings.ALPACA_RETRY_WAIT_SECONDS = 0
    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 1.0
    from paperbroker.control import PaperControl

    control = PaperControl(paper_server.url)
    control.reset(fill_model="immediate", random_walk=False)
    control.set_clock(is_open=True)
    control.set_prices(DEFAULT_PRICES)
    return control


@pytest.fixture(autouse=True)
def _fresh_health_cache() -> None:
    """The broker health result is cached for 10 s; each test starts without it."""
    from tradeops import health

    health._broker_cache.clear()


@pytest.fixture(autouse=True)
def _no_quotes_yet(settings: Any) -> None:
    """No quote in Redis and no ingestor's fallback endpoint unless a test starts one (the
    default 127.0.0.1:8766 may be someone else's demo): prices come from the paper broker."""
    settings.QUOTE_FALLBACK_URL = ""
    if settings.REDIS_URL:
        from marketdata.quotes import redis_client
        from marketdata.quoting import KEY_PREFIX

        client = redis_client(settings.REDIS_URL, timeout=2)
        keys = list(client.scan_iter(match=KEY_PREFIX + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


FAT_FINGER_SETTINGS = [
    "FAT_FINGER_WARN_NOTIONAL",
    "FAT_FINGER_WARN_QTY",
    "FAT_FINGER_STEP_UP_NOTIONAL",
    "FAT_FINGER_COLLAR_PCT",
    "FAT_FINGER_WARN_PCT_ADV",
    "FAT_FINGER_MAX_PCT_ADV",
]
# As configured (the defaults unless the environment sets them), before any test changes them.
FAT_FINGER_CONFIGURED = {name: getattr(settings, name) for name in FAT_FINGER_SETTINGS}


@pytest.fixture(autouse=True)
def _fat_finger_out_of_the_way(settings: Any) -> None:
    """Tests of other rules place orders of any size and price (a $30,000 order to hit a risk
    limit, a limit far from the market to rest unfilled): the fat-finger thresholds are set
    out of their way. The check still runs (quote, ADV, the verdict counted). Tests of the
    policy itself ask for ``fat_finger_configured``."""
    huge = Decimal("1e12")
    settings.FAT_FINGER_WARN_NOTIONAL = huge
    settings.FAT_FINGER_WARN_QTY = 10**12
    settings.FAT_FINGER_STEP_UP_NOTIONAL = huge
    settings.FAT_FINGER_COLLAR_PCT = huge
    settings.FAT_FINGER_WARN_PCT_ADV = huge
    settings.FAT_FINGER_MAX_PCT_ADV = huge


@pytest.fixture
def fat_finger_configured(settings: Any) -> dict[str, Any]:
    """The fat-finger thresholds as configured (5,000 / 1,000 / 10,000 / 10 % / 1 % / 5 %)."""
    for name, value in FAT_FINGER_CONFIGURED.items():
        setattr(settings, name, value)
    return dict(FAT_FINGER_CONFIGURED)


@pytest.fixture
def trading_switches(db: Any) -> None:
    """Switch rows exist: a transactional test's flush removes the migration's rows, and a
    missing switch counts as engaged."""
    from orders.controls import trading_switches_ensure

    trading_switches_ensure()


@pytest.fixture
def trading_ready(trading_switches: None, paper: Any) -> None:
    """A tradeable install: a real startup reconciliation against the paper broker has opened
    the gate."""
    from reconciliation.engine import reconciliation_run

    assert reconciliation_run(kind="startup").succeeded


@pytest.fixture
def q_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 runs enqueued tasks inline, as if a job cluster took them at once (its Conf
    is read at import, so override_settings cannot do this)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def start_not_gating() -> Iterator[None]:
    """For tests of a process's own logic (the dispatcher's checks): its start does not close
    the reconciliation gate. The interplay itself is tested in tests/reconciliation."""
    from orders import hooks
    from reconciliation import tasks

    uid = "reconciliation-process-start"
    hooks.order_process_started.disconnect(dispatch_uid=uid)
    yield
    hooks.order_process_started.connect(tasks.on_order_process_started, dispatch_uid=uid)


@pytest.fixture
def trader(trading_ready: None) -> APIClient:
    return token_client("alpha")


@pytest.fixture
def outsider(trading_ready: None) -> APIClient:
    return token_client("beta")


@pytest.fixture
def ops_user(db: Any) -> Any:
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-123456")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


@pytest.fixture
def ops_admin(client: Any, ops_user: Any) -> Any:
    """A Django test client logged in as an OTP-verified superuser."""
    client.force_login(ops_user)
    session = client.session
    session["otp_device_id"] = ops_user.totpdevice_set.get().persistent_id
    session.save()
    client.user = ops_user
    return client

"""Env readers and system checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradeops import checks
from tradeops.env import env_bool, env_decimal, env_int


@pytest.mark.parametrize(
    ("reader", "raw"),
    [(env_bool, "maybe"), (env_int, "5m"), (env_decimal, "one"), (env_decimal, "Infinity")],
)
def test_bad_values_stop_the_process_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch, reader: Any, raw: str
) -> None:
    monkeypatch.setenv("TRADEOPS_X", raw)
    with pytest.raises(ImproperlyConfigured, match="TRADEOPS_X"):
        reader(
            "TRADEOPS_X",
            *(("1",) if reader is env_decimal else (True,) if reader is env_bool else (1,)),
        )


def test_readers_parse_good_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOPS_B", "yes")
    monkeypatch.setenv("TRADEOPS_I", " 42 ")
    monkeypatch.setenv("TRADEOPS_D", "0.015")
    assert env_bool("TRADEOPS_B", False) is True
    assert env_int("TRADEOPS_I", 0) == 42
    assert env_decimal("TRADEOPS_D", "0") == Decimal("0.015")
    with pytest.raises(ImproperlyConfigured, match=">= 100"):
        env_int("TRADEOPS_I", 0, minimum=100)


def test_system_checks_refuse_live_keys_with_debug(settings: Any) -> None:
    assert checks.check_live_keys() == []
    settings.USING_PAPER_BROKER = False
    settings.ALPACA_PAPER = False
    settings.DEBUG = True
    ids = {m.id for m in checks.check_live_keys()}
    assert ids == {"tradeops.E002", "tradeops.E003"}


def test_system_check_requires_utc(settings: Any) -> None:
    assert checks.check_utc() == []
    settings.TIME_ZONE = "America/New_York"
    assert [m.id for m in checks.check_utc()] == ["tradeops.E001"]


def test_manage_check_warns_when_the_unconfirmed_grace_is_shorter_than_a_submit(
    settings: Any,
) -> None:
    from io import StringIO

    from django.core.management import call_command

    settings.ALPACA_CONNECT_TIMEOUT_SECONDS = 3.0
    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 10.0
    settings.ALPACA_RETRY_ATTEMPTS = 3
    settings.ALPACA_RETRY_WAIT_SECONDS = 3.0
    settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = 120
    assert checks.check_unconfirmed_grace() == []
    settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = 5  # the setting
    err = StringIO()
    call_command("check", stderr=err, stdout=StringIO())
    assert "tradeops.W001" in err.getvalue()
    assert "longest submit (61 s" in err.getvalue()


def _settings_in_a_process(**env: str) -> Any:
    import os
    import subprocess
    import sys

    code = "import tradeops.settings as s; print(s.DATABASES['default']['CONN_MAX_AGE'])"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DATABASE_URL": "postgres://u@127.0.0.1:5432/x", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kept_connections_come_from_the_environment() -> None:
    done = _settings_in_a_process(DB_CONN_MAX_AGE="60")
    assert done.stdout.strip() == "60", done.stderr


def test_the_pool_and_kept_connections_exclude_each_other() -> None:
    """Django refuses the pool with CONN_MAX_AGE only at the first query; the settings say it
    at start, naming both variables."""
    done = _settings_in_a_process(DB_POOL="1", DB_CONN_MAX_AGE="60")
    assert done.returncode != 0
    assert "DB_POOL and DB_CONN_MAX_AGE" in done.stderr

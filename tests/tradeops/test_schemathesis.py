"""schemathesis against a live server: every operation in /api/schema/ (found there, so an
endpoint added later is fuzzed too), as a strategy token and as an OTP-verified staff session,
with the paper broker and an open gate. No request may end in a 5xx, every response must match
the schema (status, content type, headers, body), and the server must refuse whatever the
schema forbids (negative_data_rejection). Signals are warm (a model active, the feature cache
hydrated), so 503 signals_not_ready is not what /api/v1/signals answers. Bounded:
--max-examples per operation. Every operation of the schema must have been reached past
authentication (the server's own request metrics say so), so an operation schemathesis could
not generate requests for fails here instead of passing unfuzzed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.signals.conftest import redis_db, signals_env, stored_bars  # noqa: F401 - fixtures
from tests.signals.support import activate_first, train
from tests.tradeops.api_coverage import responses, unreached

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
MAX_EXAMPLES = 30
# Operations a strategy token may not call (403): reached by the staff run.
STAFF_ONLY = {"POST /api/v1/reconciliation/run", "POST /api/v1/reconciliation/force-complete"}


@pytest.fixture
def warm_signals(stored_bars: Any, q_sync: None) -> Any:  # noqa: F811 - the imported fixture
    """A model active and the feature cache hydrated (promotion in sync mode hydrates)."""
    return activate_first(train("alpha"))


def fuzz(url: str, *headers: str, report: Path) -> subprocess.CompletedProcess:
    command = [
        SCHEMATHESIS,
        "run",
        f"{url}/api/schema/",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261128",  # reproducible in CI; change it locally to explore further
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        *[arg for header in headers for arg in ("--header", header)],
    ]
    done = subprocess.run(  # in the report's directory: schemathesis keeps a cache in its cwd
        command, capture_output=True, text=True, timeout=900, check=False, cwd=report.parent
    )
    print(done.stdout[-6000:])  # shown with -s or on failure: the phases, warnings, summary
    return done


def test_the_api_keeps_its_schema_for_a_strategy_token(
    live_server: Any,
    paper: Any,
    trading_ready: None,
    warm_signals: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    from orders.models import Strategy
    from orders.strategies import strategy_create, strategy_token_issue

    settings.TWAP_MAX_SLICES = 50  # plans stay small: this measures the API, not bulk inserts
    strategy = strategy_create(strategy_id="alpha", actor="test")
    key = strategy_token_issue(strategy=strategy, actor="test")
    assert Strategy.objects.filter(pk="alpha").exists()
    before = responses()
    done = fuzz(live_server.url, f"Authorization: Token {key}", report=tmp_path / "token.xml")
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]
    missing = unreached(before, past_auth=True)
    assert set(missing) <= STAFF_ONLY, missing


def test_the_api_keeps_its_schema_for_verified_staff(
    live_server: Any,
    paper: Any,
    trading_ready: None,
    warm_signals: Any,
    ops_user: Any,
    tmp_path: Path,
) -> None:
    """The operations a token may not call (reconciliation run, force-complete) and the
    staff paths of the others: a session cookie of an OTP-verified superuser, with a CSRF
    token as a browser would send it."""
    from django.test import Client

    client = Client()
    client.force_login(ops_user)
    session = client.session
    session["otp_device_id"] = ops_user.totpdevice_set.get().persistent_id
    session.save()
    csrf = "k" * 32  # a well-formed CSRF secret: cookie and header must agree
    before = responses()
    done = fuzz(
        live_server.url,
        f"Cookie: sessionid={session.session_key}; csrftoken={csrf}",
        f"X-CSRFToken: {csrf}",
        report=tmp_path / "staff.xml",
    )
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]
    assert unreached(before, past_auth=True) == {}

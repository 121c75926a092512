"""The reconciliation console in the admin: gate page, run now, force-complete, lists."""

from __future__ import annotations

import time
from typing import Any

import pytest
import time_machine

from reconciliation.gate import gate_verdict
from reconciliation.models import ReconciliationRun
from tests.helpers import totp_now
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db
URL = "/admin/reconciliation/reconciliationrun/status/"


def test_gate_page_run_now_and_force_complete(
    paper: Any, trading_switches: None, ops_admin: Any
) -> None:
    page = ops_admin.get(URL)
    assert page.status_code == 200
    assert b"Gate: CLOSED" in page.content
    assert b"no reconciliation has succeeded yet" in page.content
    assert ops_admin.post(URL, {"run": "1"}).status_code == 302
    assert ReconciliationRun.objects.get().kind == "manual"
    assert b"Gate: OPEN" in ops_admin.get(URL).content
    from reconciliation.gate import process_start_record

    process_start_record(kind="stream")
    device = ops_admin.user.totpdevice_set.get()
    wrong = ops_admin.post(URL, {"force": "1", "reason": "verified by hand", "otp_token": "1"})
    assert wrong.status_code == 200 and not gate_verdict().open
    with time_machine.travel(time.time() + 3, tick=True):
        done = ops_admin.post(
            URL, {"force": "1", "reason": "verified by hand", "otp_token": totp_now(device)}
        )
    assert done.status_code == 302
    assert gate_verdict().by_override
    assert AuditEvent.objects.filter(
        action="reconciliation.force_complete", actor=ops_admin.user
    ).exists()


def test_the_gate_page_needs_otp(paper: Any, ops_user: Any, client: Any) -> None:
    client.force_login(ops_user)
    assert client.get(URL).status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/admin/reconciliation/reconciliationrun/",
        "/admin/reconciliation/orphanorder/",
        "/admin/reconciliation/quarantine/",
        "/admin/reconciliation/positionmismatch/",
    ],
)
def test_reconciliation_lists_render(
    paper: Any, trading_ready: None, ops_admin: Any, path: str
) -> None:
    paper.place_order("MSFT", 1, "buy", type="limit", limit_price="1.00", time_in_force="gtc")
    ops_admin.post(URL, {"run": "1"})
    assert ops_admin.get(path).status_code == 200

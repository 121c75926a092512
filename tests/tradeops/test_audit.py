"""The audit guard: an audit row is written only inside the transaction of the change it
describes, so neither can commit without the other (DESIGN §1.6)."""

from __future__ import annotations

import pytest
from django.db import transaction

from tradeops.audit import AuditOutsideTransaction, audit_record
from tradeops.models import AuditEvent

# Autocommit, as in production: the default django_db marker wraps every test in a
# transaction, under which the guard could never trigger.
pytestmark = pytest.mark.django_db(transaction=True)


def test_an_audit_row_outside_a_transaction_is_refused_and_not_written() -> None:
    with pytest.raises(AuditOutsideTransaction, match=r"audit_record\(kill_switch.engage\)"):
        audit_record(actor="ops", action="kill_switch.engage", reason="drill")
    assert not AuditEvent.objects.exists()


def test_an_audit_row_commits_and_rolls_back_with_its_change() -> None:
    with pytest.raises(RuntimeError, match="the change failed"), transaction.atomic():
        audit_record(actor="ops", action="risk_limit.change", reason="drill", after={"qty": 5})
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists()
    with transaction.atomic():
        audit_record(actor="ops", action="risk_limit.change", reason="drill", after={"qty": 5})
    event = AuditEvent.objects.get()
    assert (event.actor_label, event.action, event.after) == (
        "ops",
        "risk_limit.change",
        {"qty": 5},
    )

"""Operators' orphan resolutions racing each other (and reconciliation) on PostgreSQL: the row
is locked, checked and written (only the changed fields) in one transaction, so an orphan is
resolved once, by one operator, with one audit row."""

from __future__ import annotations

import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from orders.models import Order
from reconciliation.models import OrphanOrder, Quarantine
from tests.helpers import next_code, reconcile
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def orphan_msft(paper: Any) -> OrphanOrder:
    paper.place_order("MSFT", 7, "buy", type="limit", limit_price="100.00", time_in_force="gtc")
    reconcile()
    return OrphanOrder.objects.get()


def run_together(*commands: tuple[str, ...]) -> list[str]:
    """Run ``orphans`` commands in threads started at the same moment; each one's outcome."""
    barrier = threading.Barrier(len(commands))
    results = [""] * len(commands)

    def act(index: int, args: tuple[str, ...]) -> None:
        barrier.wait()
        try:
            call_command("orphans", *args, stdout=StringIO())
            results[index] = "ok"
        except CommandError as exc:
            results[index] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(i, c)) for i, c in enumerate(commands)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def adopt_args(bid: str, ops_user: Any) -> tuple[str, ...]:
    code = next_code(ops_user.totpdevice_set.get())
    return (
        "adopt",
        bid,
        "--strategy",
        "alpha",
        "--reason",
        "ours after all",
        "--user",
        "ops",
        "--otp",
        code,
    )


def test_adopt_and_cancel_of_one_orphan_at_once_resolve_it_once(
    paper: Any, trader: Any, ops_user: Any
) -> None:
    orphan = orphan_msft(paper)
    # Both commands ask the broker about the order after their first check; it answers them
    # late, so both have passed that check before either writes.
    path = f"/v2/orders/{orphan.broker_order_id}"
    paper.add_fault(method="GET", path=path, mode="slow", delay=0.5, count=2)
    bid = orphan.broker_order_id
    adopt, cancel = run_together(
        adopt_args(bid, ops_user),
        ("cancel", bid, "--reason", "not ours, cancel"),
    )
    assert sorted([adopt == "ok", cancel == "ok"]) == [False, True], (adopt, cancel)
    orphan.refresh_from_db()
    audits = list(AuditEvent.objects.filter(action__startswith="orphan."))
    assert len(audits) == 1
    if adopt == "ok":
        assert "adopted" in cancel and "the cancel reached the broker" in cancel
        assert (orphan.status, audits[0].action) == ("adopted", "orphan.adopt")
        assert orphan.adopted_order == Order.objects.get()
    else:
        assert "already canceled" in adopt
        assert (orphan.status, audits[0].action) == ("canceled", "orphan.cancel")
        assert orphan.adopted_order is None and not Order.objects.exists()
    assert orphan.broker_status == "canceled"  # the broker's answer is recorded either way
    assert not Quarantine.objects.active().exists()


def test_two_operators_resolving_one_finished_orphan_write_one_resolution(
    paper: Any, trader: Any, ops_user: Any
) -> None:
    orphan = orphan_msft(paper)
    paper.cancel(orphan.broker_order_id, silent=True)
    reconcile()  # the orphan is finished at the broker now
    path = f"/v2/orders/{orphan.broker_order_id}"
    paper.add_fault(method="GET", path=path, mode="slow", delay=0.5, count=1)
    bid = orphan.broker_order_id
    # a (slow) adopt and a resolve: the resolve writes while the adopt waits for the broker
    adopt, resolve = run_together(
        adopt_args(bid, ops_user),
        ("resolve", bid, "--reason", "finished, nothing to do"),
    )
    assert resolve == "ok"
    assert "already resolved" in adopt
    orphan.refresh_from_db()
    assert orphan.status == "resolved" and orphan.adopted_order is None
    assert not Order.objects.exists()
    assert [a.action for a in AuditEvent.objects.filter(action__startswith="orphan.")] == [
        "orphan.resolve"
    ]

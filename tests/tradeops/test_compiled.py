"""tradeops.compiled: a statement compiled once still behaves as the ORM's own, every call."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import CharField
from django.db.transaction import TransactionManagementError

from orders.models import TradingSwitch
from tradeops.compiled import CompiledQuery

pytestmark = pytest.mark.django_db(transaction=True)

LOCK_SWITCH = CompiledQuery(
    lambda name: (
        TradingSwitch.objects.select_for_update().filter(name=name).values_list("engaged")[:1]
    ),
    name=CharField(),
)
SWITCH = CompiledQuery(
    lambda name: TradingSwitch.objects.filter(name=name).values_list("engaged")[:1],
    name=CharField(),
)


def test_a_row_lock_is_refused_outside_a_transaction_on_every_call_not_only_the_first() -> None:
    name = TradingSwitch.Name.KILL_SWITCH
    TradingSwitch.objects.get_or_create(name=name)
    with transaction.atomic():
        assert LOCK_SWITCH.first(name=name) is not None  # compiled here, inside a transaction
    with pytest.raises(TransactionManagementError):
        LOCK_SWITCH.first(name=name)  # already compiled: the check still holds


def test_parameters_are_bound_per_call() -> None:
    kill, breaker = TradingSwitch.Name.KILL_SWITCH, TradingSwitch.Name.CIRCUIT_BREAKER
    TradingSwitch.objects.update_or_create(name=kill, defaults={"engaged": True})
    TradingSwitch.objects.update_or_create(name=breaker, defaults={"engaged": False})
    assert SWITCH.first(name=kill) == (True,)
    assert SWITCH.first(name=breaker) == (False,)
    assert SWITCH.first(name="no-such-switch") is None

"""``AnyOf``: the same rows as ``__in``, sent as one array parameter on PostgreSQL."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F, Q
from django.test.utils import CaptureQueriesContext

from tradeops.lookups import AnyOf

pytestmark = pytest.mark.django_db


@pytest.fixture
def users() -> list[str]:
    names = [f"user-{i}" for i in range(50)]
    User.objects.bulk_create(User(username=n) for n in names)
    return names


def test_same_rows_as_in_with_one_parameter(users: list[str]) -> None:
    wanted = [*users[::3], "nobody"]
    with CaptureQueriesContext(connection) as queries:
        got = set(
            User.objects.filter(AnyOf(F("username"), wanted)).values_list("username", flat=True)
        )
    assert got == set(User.objects.filter(username__in=wanted).values_list("username", flat=True))
    assert got == set(users[::3])
    sql = queries.captured_queries[0]["sql"]
    assert "ANY(" in sql and "IN (" not in sql


def test_combines_with_q_and_matches_nothing_when_empty(users: list[str]) -> None:
    assert not User.objects.filter(AnyOf(F("username"), [])).exists()
    either = User.objects.filter(AnyOf(F("username"), users[:2]) | Q(username=users[-1]))
    assert set(either.values_list("username", flat=True)) == {users[0], users[1], users[-1]}

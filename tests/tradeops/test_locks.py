"""tradeops.locks: one holder at a time across sessions (PostgreSQL advisory locks), used by
reconciliation runs and feature hydration alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection

from reconciliation.engine import ADVISORY_LOCK_KEY as RECONCILIATION_KEY
from signals.hydration import ADVISORY_LOCK_KEY as HYDRATION_KEY
from tradeops import locks
from tradeops.locks import advisory_lock
from tradeops.processes import process_identity

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def held_elsewhere() -> Iterator[threading.Event]:
    """Another session holds the hydration lock until the returned event is set."""
    release, held = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with advisory_lock(HYDRATION_KEY, name="other node") as acquired:
                assert acquired
                held.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    yield release
    release.set()
    thread.join(10)


def test_a_held_lock_is_refused_to_another_session_and_other_keys_are_free(
    held_elsewhere: threading.Event,
) -> None:
    with advisory_lock(HYDRATION_KEY, name="test") as acquired:
        assert not acquired
    with advisory_lock(RECONCILIATION_KEY, name="test") as acquired:
        assert acquired  # each job has its own key: a hydration never blocks a reconciliation


def test_a_waiting_caller_gets_the_lock_once_the_holder_releases(
    held_elsewhere: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[bool] = []
    real_try, me = locks._lock_try, threading.get_ident()

    def try_and_release_after_a_refusal(key: int) -> bool:
        got = real_try(key)
        if threading.get_ident() == me:
            tries.append(got)
            if not got:
                held_elsewhere.set()  # the holder finishes only once this caller was refused
        return got

    monkeypatch.setattr(locks, "_lock_try", try_and_release_after_a_refusal)
    with advisory_lock(HYDRATION_KEY, name="test", wait_seconds=20) as acquired:
        assert acquired
    assert tries[0] is False and tries[-1] is True


def test_the_lock_is_released_on_exit_even_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError), advisory_lock(HYDRATION_KEY, name="test") as acquired:
        assert acquired
        raise RuntimeError("the job failed")
    got: list[bool] = []

    def other_session() -> None:
        try:
            with advisory_lock(HYDRATION_KEY, name="other") as acquired:
                got.append(acquired)
        finally:
            connection.close()

    thread = threading.Thread(target=other_session)
    thread.start()
    thread.join(10)
    assert got == [True]


def test_a_process_identity_tells_a_reused_pid_apart() -> None:
    import os
    import socket

    host, pid, start = process_identity(os.getpid()).split(":")
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert start.isdigit()  # the start time from /proc: a reused pid starts later
    assert process_identity(2**22 + 7).endswith(":?")  # no such process: no start time

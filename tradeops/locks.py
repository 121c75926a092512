"""One holder at a time across every process and node: PostgreSQL session advisory locks.

A session-level lock is held across a job's many short transactions (and its broker calls,
which must not sit inside a transaction), and PostgreSQL releases it if the session dies, so a
killed holder never leaves it taken. On SQLite (the demo runs one job cluster) there is no
other process to exclude: the lock is always granted. Each job names its own 64-bit key.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

LOCK_POLL_SECONDS = 0.2


def _lock_try(key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        return bool(cursor.fetchone()[0])


def _unlock(key: int, name: str) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    except DatabaseError:
        # The session is gone (the database restarted, the connection broke): PostgreSQL
        # released its session locks with it. Raising here would hide the job's own outcome.
        logger.warning("%s lock not released explicitly: the session ended", name)


@contextlib.contextmanager
def advisory_lock(key: int, *, name: str, wait_seconds: float = 0) -> Iterator[bool]:
    """Yields whether this session holds the lock ``key`` (``name`` is for the log); released
    on exit. With ``wait_seconds`` it is retried until then.

    Polled with ``pg_try_advisory_lock`` rather than ``pg_advisory_lock`` under a
    ``lock_timeout``: a lock timeout is an error, which would abort a caller's enclosing
    transaction, and it needs a session setting put back after."""
    if connection.vendor != "postgresql":
        yield True
        return
    deadline = time.monotonic() + wait_seconds
    acquired = _lock_try(key)
    while not acquired and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(LOCK_POLL_SECONDS, left))
        acquired = _lock_try(key)
    try:
        yield acquired
    finally:
        if acquired:
            _unlock(key, name)

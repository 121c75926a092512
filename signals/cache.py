"""The feature cache in Redis: one hash per feature-set version and feature date, one field
per symbol holding that symbol's feature row as little-endian float64 bytes (exact: a cached
row equals the computed one bit for bit; and ~4x cheaper to write and read than text).

Every Redis failure becomes ``FeatureCacheUnavailable``: callers answer 503 or record a failed
run, never a 500. Short socket timeouts: a hung Redis must not hang a request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings

from signals.features import FEATURE_NAMES

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import numpy as np
    import pandas as pd

KEY_PREFIX = "signals:features"
WRITE_BATCH_DATES = 32  # dates per pipeline round trip


class FeatureCacheUnavailable(Exception):
    """Redis is not configured or does not answer."""


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client() -> redis.Redis:
    url = settings.REDIS_URL
    if not url:
        raise FeatureCacheUnavailable("REDIS_URL is not set: the feature cache needs Redis")
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(
                url, socket_timeout=1.0, socket_connect_timeout=0.5, health_check_interval=30
            )
            _clients[url] = client
    return client


def cache_key(version: str, day: date) -> str:
    return f"{KEY_PREFIX}:{version}:{day.isoformat()}"


ROW_DTYPE = "<f8"  # little-endian float64, as a numpy dtype string
ROW_BYTES_PER_VALUE = 8
ROW_BYTES = ROW_BYTES_PER_VALUE * len(FEATURE_NAMES)


def encode_row(values: Iterable[float]) -> bytes:
    import numpy as np

    return np.asarray(list(values), dtype=ROW_DTYPE).tobytes()


def encode_rows(matrix: np.ndarray) -> list[bytes]:
    """Rows of a (n, features) matrix as bytes, in one conversion."""
    import numpy as np

    buffer = np.ascontiguousarray(matrix, dtype=ROW_DTYPE).tobytes()
    return [buffer[i : i + ROW_BYTES] for i in range(0, len(buffer), ROW_BYTES)]


def decode_rows(raw: Sequence[bytes]) -> np.ndarray:
    """The inverse of ``encode_rows``; a value of the wrong size is a corrupt entry."""
    import numpy as np

    if any(len(value) != ROW_BYTES for value in raw):
        raise FeatureCacheUnavailable("feature cache entry of the wrong size (another format?)")
    return np.frombuffer(b"".join(raw), dtype=ROW_DTYPE).reshape(len(raw), len(FEATURE_NAMES))


def _call(what: str, fn: Any) -> Any:
    try:
        return fn()
    except redis.RedisError as exc:
        raise FeatureCacheUnavailable(f"{what}: {exc.__class__.__name__}: {exc}") from exc


def cache_write(*, version: str, features: pd.DataFrame, ttl_seconds: int) -> int:
    """Write feature rows (``symbol, date, *FEATURE_NAMES``): per date one HSET of every
    symbol, pipelined. Returns the number of entries written."""
    client = redis_client()
    if features.empty:
        return 0
    rows = encode_rows(features[FEATURE_NAMES].to_numpy(dtype="float64"))
    symbols = features["symbol"].to_numpy()
    dates = features["date"].to_numpy()
    by_date: dict[date, dict[str, bytes]] = {}
    for symbol, day, row in zip(symbols, dates, rows, strict=True):
        by_date.setdefault(day, {})[str(symbol)] = row
    days = sorted(by_date)
    for start in range(0, len(days), WRITE_BATCH_DATES):
        pipe = client.pipeline(transaction=False)
        for day in days[start : start + WRITE_BATCH_DATES]:
            key = cache_key(version, day)
            pipe.hset(key, mapping=by_date[day])
            pipe.expire(key, ttl_seconds)
        _call("feature cache write", pipe.execute)
    return len(rows)


def cache_has(*, version: str, day: date) -> bool:
    client = redis_client()
    return bool(_call("feature cache check", lambda: client.exists(cache_key(version, day))))


def cache_read(*, version: str, days: Sequence[date]) -> pd.DataFrame:
    """Cached rows of ``days`` (``symbol, date, *FEATURE_NAMES``), sorted by date then
    symbol; a date not in the cache contributes nothing."""
    import pandas as pd

    client = redis_client()
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(cache_key(version, day))
    answers = _call("feature cache read", pipe.execute)
    symbols: list[str] = []
    row_dates: list[date] = []
    rows: list[bytes] = []
    for day, entries in zip(days, answers, strict=True):
        for symbol in sorted(entries):
            symbols.append(symbol.decode())
            row_dates.append(day)
            rows.append(entries[symbol])
    frame = pd.DataFrame(decode_rows(rows).copy(), columns=FEATURE_NAMES)
    frame.insert(0, "date", row_dates)
    frame.insert(0, "symbol", pd.Series(symbols, dtype=object))
    return frame


def cache_clear(*, version: str) -> int:
    """Delete every cached date of ``version`` (operator use and tests)."""
    client = redis_client()
    keys = _call("feature cache scan", lambda: list(client.scan_iter(f"{KEY_PREFIX}:{version}:*")))
    return int(_call("feature cache clear", lambda: client.delete(*keys))) if keys else 0

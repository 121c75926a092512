"""``QuoteClient``: the one place every price in TradeOps comes from (DESIGN §7, issue 11).

``latest(symbol)`` asks three hops in order, each bounded by its own short timeout so that no
hop can hang a request:

1. Redis (``REDIS_URL``): the key ``stream_quotes`` keeps current;
2. the ingestor's fallback endpoint (``QUOTE_FALLBACK_URL``): its in-memory buffer, which
   still has fresh quotes while Redis is down;
3. the broker's REST latest quote (through the broker seam, no 429 retries).

The first quote younger than ``QUOTE_MAX_AGE_SECONDS`` wins. A hop with only an older quote
does not: the next hop is asked (the ingestor may be dead while Redis still holds its last
quotes). Nothing fresh anywhere: ``QuoteStale`` when some hop had a quote (its age in the
details), ``QuoteUnavailable`` when none had any. Both are 503 with Retry-After: a market order
is never priced from a guess (DESIGN invariant 4, fail closed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
import requests
from django.conf import settings
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from marketdata import metrics
from marketdata.quoting import Quote, decode_quote, quote_key
from tradeops.errors import ServiceUnavailable, ValidationFailed
from tradeops.symbols import symbol_parse

logger = logging.getLogger(__name__)


class QuoteStale(ServiceUnavailable):
    """Every quote found is older than QUOTE_MAX_AGE_SECONDS."""

    code = "quote_stale"


class QuoteUnavailable(ServiceUnavailable):
    """No hop had a quote at all (Redis, the ingestor's buffer and the broker)."""

    code = "quote_unavailable"


class HopFailed(Exception):
    """A hop could not be asked (timeout, connection refused, unreadable answer)."""


def redis_client(url: str, *, timeout: float) -> redis.Redis:
    """A Redis client that fails within ``timeout``: redis-py 8 retries a failed command
    3 times with back-off by default, which would turn one dead Redis into seconds per read."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class QuoteClient:
    def __init__(
        self,
        *,
        redis_url: str,
        fallback_url: str,
        max_age_seconds: float,
        redis_timeout: float,
        fallback_timeout: float,
        broker_timeout: float,
        retry_after: int,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.max_age_seconds = max_age_seconds
        self.redis = redis_client(redis_url, timeout=redis_timeout) if redis_url else None
        self.fallback_url = fallback_url.rstrip("/")
        self.fallback_timeout = fallback_timeout
        self.broker_timeout = broker_timeout
        self.retry_after = retry_after
        self.clock = clock
        self._local = threading.local()

    # --- the hops ---------------------------------------------------------------------------
    def from_redis(self, symbol: str) -> Quote | None:
        if self.redis is None:
            return None
        try:
            raw = self.redis.get(quote_key(symbol))
        except (redis.RedisError, OSError) as exc:
            raise HopFailed(f"redis: {exc.__class__.__name__}: {exc}") from exc
        return self._decoded(raw, "redis") if raw else None

    def from_buffer(self, symbol: str) -> Quote | None:
        if not self.fallback_url:
            return None
        url = f"{self.fallback_url}/quotes/{symbol}/latest"
        try:
            response = self._session().get(url, timeout=self.fallback_timeout)
        except requests.RequestException as exc:
            raise HopFailed(f"buffer: {exc.__class__.__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HopFailed(f"buffer: HTTP {response.status_code}")
        return self._decoded(response.content, "buffer")

    def from_broker(self, symbol: str) -> Quote | None:
        from tradeops.broker import BrokerError, get_quote_broker

        try:
            report = get_quote_broker(self.broker_timeout).get_latest_quote(symbol)
        except BrokerError as exc:
            raise HopFailed(f"broker: {exc.message}") from exc
        if report is None:
            return None
        return Quote.from_report(report, symbol=symbol, received_at=self.clock())

    def _decoded(self, raw: bytes, hop: str) -> Quote:
        try:
            return decode_quote(raw)
        except ValueError as exc:
            raise HopFailed(f"{hop}: unreadable quote: {exc}") from exc

    def _session(self) -> requests.Session:
        # requests.Session is not meant to be shared between threads.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    # --- reading ----------------------------------------------------------------------------
    def latest(self, symbol: str) -> Quote:
        """The newest fresh quote of ``symbol``, with ``source`` and ``age_seconds``; raises
        QuoteStale / QuoteUnavailable (503) or ValidationFailed (400, malformed symbol)."""
        try:
            parsed = symbol_parse(symbol)
        except ValueError as exc:
            raise ValidationFailed(
                f"{exc}.", details={"fields": {"symbol": ["Malformed symbol."]}}
            ) from None
        hops = (
            ("redis", self.from_redis),
            ("buffer", self.from_buffer),
            ("broker", self.from_broker),
        )
        stale: list[Quote] = []
        outcomes: dict[str, str] = {}
        for source, hop in hops:
            try:
                quote = hop(parsed)
            except HopFailed as exc:
                metrics.QUOTE_HOP_ERRORS.labels(source).inc()
                outcomes[source] = str(exc)
                continue
            if quote is None or not quote.usable or quote.symbol != parsed:
                outcomes[source] = "no quote" if quote is None else "unusable quote"
                continue
            read = quote.read(source=source, now=self.clock())
            assert read.age_seconds is not None  # noqa: S101 - set by read()
            if read.age_seconds <= self.max_age_seconds:
                self._count(read)
                return read
            stale.append(read)
            outcomes[source] = f"stale: {read.age_seconds:.1f}s old"
        raise self._failure(parsed, stale, outcomes)

    def peek(self, symbols: list[str]) -> dict[str, Quote | None]:
        """What Redis, else the ingestor's buffer, holds for each symbol, fresh or not (with
        source and age), for operators' pages: one MGET and at most one call to the fallback
        endpoint, never the broker (a page view must not spend its request budget)."""
        now = self.clock()
        found: dict[str, Quote | None] = dict.fromkeys(symbols)
        if self.redis is not None and symbols:
            try:
                raws = self.redis.mget([quote_key(s) for s in symbols])
            except (redis.RedisError, OSError):
                raws = [None] * len(symbols)
            for symbol, raw in zip(symbols, raws, strict=True):
                quote = self._peeked(raw, "redis")
                if quote is not None and quote.symbol == symbol:
                    found[symbol] = quote.read(source="redis", now=now)
        if self.fallback_url and any(q is None or not self._fresh(q) for q in found.values()):
            for quote in self._buffered_all():
                current = found.get(quote.symbol, False)
                if current is None or (current and quote.timestamp > current.timestamp):
                    found[quote.symbol] = quote.read(source="buffer", now=now)
        return found

    def _fresh(self, quote: Quote) -> bool:
        return (quote.age_seconds or 0.0) <= self.max_age_seconds

    def _peeked(self, raw: Any, hop: str) -> Quote | None:
        if not raw:
            return None
        try:
            return self._decoded(raw, hop)
        except HopFailed:
            return None

    def _buffered_all(self) -> list[Quote]:
        try:
            response = self._session().get(
                f"{self.fallback_url}/quotes", timeout=self.fallback_timeout
            )
            documents = response.json()["quotes"] if response.status_code == 200 else []
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return []
        return [q for doc in documents if (q := self._peeked(doc, "buffer")) is not None]

    def _count(self, quote: Quote) -> None:
        metrics.QUOTE_READS.labels(quote.source).inc()
        metrics.QUOTE_AGE_AT_READ.labels(quote.source).observe(quote.age_seconds or 0.0)
        if quote.source != "redis":
            metrics.QUOTE_FALLBACK_READS.labels(quote.source).inc()

    def _failure(
        self, symbol: str, stale: list[Quote], outcomes: dict[str, str]
    ) -> ServiceUnavailable:
        details: dict[str, Any] = {
            "symbol": symbol,
            "max_age_seconds": self.max_age_seconds,
            "hops": outcomes,
        }
        if stale:
            freshest = min(stale, key=lambda q: q.age_seconds or 0.0)
            metrics.QUOTE_READS.labels("stale").inc()
            details |= {
                "age_seconds": round(freshest.age_seconds or 0.0, 3),
                "source": freshest.source,
                "timestamp": freshest.timestamp.isoformat(),
            }
            return QuoteStale(
                f"The newest quote of {symbol} is {freshest.age_seconds:.1f}s old "
                f"(max {self.max_age_seconds:g}s): no price to judge the order by.",
                details=details,
                retry_after=self.retry_after,
            )
        metrics.QUOTE_READS.labels("unavailable").inc()
        return QuoteUnavailable(
            f"No quote for {symbol} from Redis, the quote ingestor or the broker.",
            details=details,
            retry_after=self.retry_after,
        )


_cached: list[Any] = [None, None]  # (settings key, client)
_cached_lock = threading.Lock()


def quote_client() -> QuoteClient:
    """The process's QuoteClient for the current settings (rebuilt when they change: tests)."""
    key = (
        settings.REDIS_URL,
        settings.QUOTE_FALLBACK_URL,
        settings.QUOTE_MAX_AGE_SECONDS,
        settings.QUOTE_REDIS_TIMEOUT_SECONDS,
        settings.QUOTE_FALLBACK_TIMEOUT_SECONDS,
        settings.QUOTE_BROKER_TIMEOUT_SECONDS,
        settings.QUOTE_RETRY_AFTER_SECONDS,
    )
    with _cached_lock:
        if _cached[0] != key:
            _cached[:] = [
                key,
                QuoteClient(
                    redis_url=settings.REDIS_URL,
                    fallback_url=settings.QUOTE_FALLBACK_URL,
                    max_age_seconds=settings.QUOTE_MAX_AGE_SECONDS,
                    redis_timeout=settings.QUOTE_REDIS_TIMEOUT_SECONDS,
                    fallback_timeout=settings.QUOTE_FALLBACK_TIMEOUT_SECONDS,
                    broker_timeout=settings.QUOTE_BROKER_TIMEOUT_SECONDS,
                    retry_after=settings.QUOTE_RETRY_AFTER_SECONDS,
                ),
            ]
        return _cached[1]


def quote_latest(symbol: str) -> Quote:
    """``QuoteClient.latest`` with the settings' client: what risk checks and views call."""
    return quote_client().latest(symbol)

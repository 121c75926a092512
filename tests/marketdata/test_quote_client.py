"""QuoteClient's hops with the real services: Redis (the test db), the ingestor's fallback
endpoint (a real FallbackServer around a real QuoteIngestor), the paper broker through the
broker seam."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from marketdata.ingest import QuoteIngestor, RedisQuoteWriter
from marketdata.quotes import QuoteStale, QuoteUnavailable, quote_latest
from marketdata.quoting import Quote, quote_key
from tests.helpers import metric
from tests.marketdata.support import free_port
from tradeops.broker_types import QuoteReport
from tradeops.errors import ValidationFailed


def quote(symbol: str, *, age: float, bid: str = "50.00", ask: str = "50.02") -> Quote:
    made = datetime.now(UTC) - timedelta(seconds=age)
    return Quote(symbol, Decimal(bid), Decimal(ask), 1, 2, made, made)


def report(symbol: str, *, age: float, bid: str = "60.00", ask: str = "60.04") -> QuoteReport:
    made = datetime.now(UTC) - timedelta(seconds=age)
    return QuoteReport(symbol, Decimal(bid), Decimal(ask), 5, 6, made)


@pytest.fixture
def in_redis(settings: Any) -> Any:
    writer = RedisQuoteWriter(settings.REDIS_URL)
    return lambda *quotes: writer.write(list(quotes))


def test_a_fresh_quote_in_redis_is_answered_from_redis(paper: Any, in_redis: Any) -> None:
    in_redis(quote("AAPL", age=0.2))
    got = quote_latest("aapl")
    assert (got.symbol, got.source, got.bid, got.ask) == (
        "AAPL",
        "redis",
        Decimal("50.0000"),
        Decimal("50.0200"),
    )
    assert 0.2 <= got.age_seconds < 5
    assert got.mid == Decimal("50.0100")


def test_a_stale_redis_quote_falls_through_to_a_fresh_hop(
    paper: Any, in_redis: Any, settings: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 5
    in_redis(quote("AAPL", age=30))
    got = quote_latest("AAPL")
    assert got.source == "broker"  # the paper broker quotes AAPL around 100 every 0.1 s
    assert Decimal("99") < got.mid < Decimal("101")
    assert metric("quote_fallback_reads_total", source="broker") >= 1


def test_the_buffer_answers_when_redis_has_nothing(paper: Any, quote_buffer: QuoteIngestor) -> None:
    quote_buffer.offer(report("MSFT", age=0.1))
    got = quote_latest("MSFT")
    assert (got.source, got.bid) == ("buffer", Decimal("60.0000"))


def test_redis_down_is_a_failed_hop_not_an_error(
    paper: Any, quote_buffer: QuoteIngestor, settings: Any
) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    errors = metric("quote_hop_errors_total", hop="redis")
    quote_buffer.offer(report("MSFT", age=0.1))
    assert quote_latest("MSFT").source == "buffer"
    assert metric("quote_hop_errors_total", hop="redis") == errors + 1


def test_a_hanging_fallback_endpoint_is_cut_off_by_its_timeout(paper: Any, settings: Any) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.QUOTE_FALLBACK_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.QUOTE_FALLBACK_TIMEOUT_SECONDS = 0.2
        errors = metric("quote_hop_errors_total", hop="buffer")
        got = quote_latest("AAPL")
    assert got.source == "broker"
    assert metric("quote_hop_errors_total", hop="buffer") == errors + 1


def test_only_stale_quotes_raise_quote_stale_with_the_freshest_age(
    paper: Any, in_redis: Any, quote_buffer: QuoteIngestor, settings: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 5
    in_redis(quote("TSLA", age=40))
    quote_buffer.offer(report("TSLA", age=20))
    paper.add_fault(method="GET", path="/v2/stocks/quotes/latest", mode="error500", count=-1)
    with pytest.raises(QuoteStale) as raised:
        quote_latest("TSLA")
    details = raised.value.details
    assert raised.value.code == "quote_stale" and raised.value.retry_after == 5
    assert details["source"] == "buffer" and 20 <= details["age_seconds"] < 25
    assert details["hops"]["redis"].startswith("stale") and "broker" in details["hops"]


def test_no_quote_anywhere_raises_quote_unavailable(paper: Any) -> None:
    paper.add_fault(method="GET", path="/v2/stocks/quotes/latest", mode="error500", count=-1)
    with pytest.raises(QuoteUnavailable) as raised:
        quote_latest("AAPL")
    assert raised.value.details["hops"]["redis"] == "no quote"
    assert "500" in raised.value.details["hops"]["broker"]


def test_a_corrupt_redis_value_is_never_a_price(paper: Any, settings: Any) -> None:
    from marketdata.quotes import redis_client

    redis_client(settings.REDIS_URL, timeout=1).set(quote_key("AAPL"), b'{"bid": "1"}')
    errors = metric("quote_hop_errors_total", hop="redis")
    assert quote_latest("AAPL").source == "broker"
    assert metric("quote_hop_errors_total", hop="redis") == errors + 1


@pytest.mark.parametrize("raw", ["", "AAPL1", "\u0131bm", "BRK..B", "A" * 7])
def test_a_malformed_symbol_is_a_validation_error(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        quote_latest(raw)

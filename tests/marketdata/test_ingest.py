"""The ingestor's write path in this process against a private redis-server (killed and
restarted here, never the shared one), and the seam's reading of raw stream messages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest

from marketdata.ingest import QuoteIngestor, RedisQuoteWriter
from marketdata.quoting import decode_quote
from tests.helpers import metric, wait_for
from tests.marketdata.support import RedisServer, private_redis, redis_quote
from tradeops.broker_types import QuoteReport
from tradeops.data_stream import quote_report_from_stream

T0 = datetime.now(UTC).replace(microsecond=0)


def report(symbol: str, i: int) -> QuoteReport:
    price = Decimal(100 + i) / 10
    return QuoteReport(symbol, price, price + Decimal("0.01"), i, i, T0 + timedelta(seconds=i))


def sym(n: int) -> str:
    return f"S{chr(65 + n // 26)}{chr(65 + n % 26)}"


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path) as server:
        yield server


def test_a_batch_is_one_mset_of_each_symbols_newest_quote_and_a_publish_per_symbol(
    cache: RedisServer,
) -> None:
    client = cache.client()
    pubsub = client.pubsub()
    pubsub.subscribe("quote:AAPL", "quote:MSFT")
    ingestor = QuoteIngestor(
        writer=RedisQuoteWriter(cache.url), buffer_size=100, retry_max_seconds=0.1
    )
    ingestor.start()
    for i in range(3):
        ingestor.offer(report("AAPL", i))
    for i in range(2):
        ingestor.offer(report("MSFT", i))

    assert ingestor.flush()

    assert redis_quote(client, "AAPL").timestamp == T0 + timedelta(seconds=2)
    assert redis_quote(client, "MSFT").timestamp == T0 + timedelta(seconds=1)
    stats = client.info("commandstats")
    assert (stats["cmdstat_mset"]["calls"], stats["cmdstat_publish"]["calls"]) == (1, 2)
    published = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        if message["type"] == "message":
            published.append(decode_quote(message["data"]))
    assert sorted((q.symbol, q.bid) for q in published) == [
        ("AAPL", Decimal("10.2000")),
        ("MSFT", Decimal("10.1000")),
    ]
    status = ingestor.status()
    assert (status.quotes_received, status.quotes_written, status.buffer_depth) == (5, 2, 0)


def test_an_outage_buffers_and_recovery_restores_the_newest_quote_of_every_symbol(
    cache: RedisServer,
) -> None:
    changes: list[str] = []
    ingestor = QuoteIngestor(
        writer=RedisQuoteWriter(cache.url, timeout=0.5),
        buffer_size=100,
        retry_max_seconds=0.1,
    )
    ingestor.on_state_change = lambda: changes.append(ingestor.status().state)
    ingestor.set_symbols([sym(n) for n in range(50)])
    ingestor.set_connected(True)
    ingestor.start()
    stop = threading.Event()
    writer = threading.Thread(target=ingestor.run_writer, args=(stop,))
    writer.start()
    try:
        for n in range(50):
            ingestor.offer(report(sym(n), 0))
        wait_for(lambda: ingestor.status().quotes_written >= 50)
        cache.kill()
        for i in range(1, 151):  # the outage: 150 quotes per symbol
            for n in range(50):
                ingestor.offer(report(sym(n), i))
        wait_for(lambda: ingestor.status().state == "buffering")
        status = ingestor.status()
        assert status.buffer_depth == 50 * 100  # 100 per symbol are kept
        assert status.quotes_buffered > 0 and status.redis_errors >= 1
        assert len(ingestor.recent(sym(7))) == 100
        assert ingestor.latest(sym(7)).timestamp == T0 + timedelta(seconds=150)

        cache.start()  # empty: everything it had is gone
        wait_for(lambda: ingestor.status().state == "streaming", timeout=10)
        client = cache.client()
        lost = [n for n in range(50) if redis_quote(client, sym(n)) != ingestor.latest(sym(n))]
        assert lost == []
        assert ingestor.status().buffer_depth == 0
        assert changes[-3:] == ["streaming", "buffering", "streaming"]
    finally:
        stop.set()
        writer.join(5)


def test_without_redis_the_quotes_stay_in_memory() -> None:
    ingestor = QuoteIngestor(writer=None, buffer_size=2, retry_max_seconds=0.1)
    ingestor.set_symbols(["AAPL"])
    ingestor.set_connected(True)
    for i in range(5):
        assert ingestor.offer(report("AAPL", i))
    assert ingestor.flush()  # nothing to write to
    status = ingestor.status()
    assert (status.state, status.buffer_depth, status.quotes_buffered) == ("buffering", 2, 5)
    assert "REDIS_URL is not set" in status.detail
    assert [q.timestamp.second for q in ingestor.recent("AAPL")] == [
        (T0 + timedelta(seconds=s)).second for s in (4, 3)
    ]


def test_late_and_garbage_quotes_are_skipped_and_counted() -> None:
    ingestor = QuoteIngestor(writer=None, buffer_size=10, retry_max_seconds=0.1)
    late, bad = (metric("quotes_skipped_total", reason=r) for r in ("out_of_order", "bad_symbol"))
    assert ingestor.offer(report("AAPL", 5))
    assert not ingestor.offer(report("AAPL", 4))
    assert not ingestor.offer(report("ZZ1", 6))
    ingestor.flush()  # the writer publishes the counters per batch
    assert metric("quotes_skipped_total", reason="out_of_order") == late + 1
    assert metric("quotes_skipped_total", reason="bad_symbol") == bad + 1
    assert ingestor.latest("AAPL").timestamp == T0 + timedelta(seconds=5)


# --- the seam: raw stream messages -----------------------------------------------------------
STAMP = msgpack.Timestamp.from_unix_nano(1_772_463_600_123_456_000)
GOOD: dict[str, Any] = {"T": "q", "S": "AAPL", "bp": 189.5, "bs": 3, "ap": 189.52, "as": 2,
                        "t": STAMP}  # fmt: skip


def test_a_stream_quote_is_read_with_decimal_prices_and_an_aware_time() -> None:
    got = quote_report_from_stream(dict(GOOD))
    assert (got.symbol, got.bid_price, got.ask_price) == (
        "AAPL",
        Decimal("189.5000"),
        Decimal("189.5200"),
    )
    assert (got.bid_size, got.ask_size) == (3, 2)
    assert got.timestamp == datetime(2026, 3, 2, 15, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"bp": "189.5"},
        {"bp": None},
        {"bp": float("nan")},
        {"ap": -1.0},
        {"bp": True},
        {"bs": 1.5},
        {"as": -2},
        {"t": "2026-03-02T15:00:00Z"},
        {"t": None},
        {"S": 42},
    ],
)
def test_a_malformed_stream_quote_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        quote_report_from_stream(GOOD | change)


@pytest.mark.parametrize("missing", ["S", "bp", "ap", "bs", "as", "t"])
def test_a_stream_quote_missing_a_field_is_refused(missing: str) -> None:
    message = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ValueError):
        quote_report_from_stream(message)

"""The pure quote rules: age, freshness, the wire format, the ingestor's state and the
quote book (ring buffer + pending newest-per-symbol). Table-driven, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata.buffer import QuoteBook
from marketdata.quoting import (
    Quote,
    decode_quote,
    encode_quote,
    ingestor_state,
    quote_age_seconds,
    quote_document,
    quote_is_fresh,
)

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def q(symbol: str = "AAPL", *, at: float = 0.0, received: float | None = None, bid: str = "99.99",
      ask: str = "100.01") -> Quote:  # fmt: skip
    return Quote(
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=3,
        ask_size=4,
        timestamp=T0 + timedelta(seconds=at),
        received_at=T0 + timedelta(seconds=at if received is None else received),
    )


@pytest.mark.parametrize(
    ("made", "received", "now", "age"),
    [
        (0, 0, 0, 0.0),
        (0, 0.5, 10, 10.0),  # the broker's timestamp says how old the price is
        (5, 0, 10, 10.0),  # broker clock ahead: bounded by when we received it
        (0, 0, -3, 0.0),  # never negative
        (0, 0, 60, 60.0),
        (0, 0, 60.5, 60.5),
    ],
)
def test_age_comes_from_the_broker_timestamp_bounded_by_receipt(
    made: float, received: float, now: float, age: float
) -> None:
    quote = q(at=made, received=received)
    assert quote_age_seconds(quote, now=T0 + timedelta(seconds=now)) == age


@pytest.mark.parametrize(
    ("age", "bid", "ask", "fresh"),
    [
        (59.9, "99.99", "100.01", True),
        (60.0, "99.99", "100.01", True),
        (60.1, "99.99", "100.01", False),
        (1.0, "0", "0", False),  # no price at all is never fresh
        (1.0, "0", "100.01", True),  # one-sided: the side that exists
    ],
)
def test_freshness_is_age_within_the_max_and_a_usable_price(
    age: float, bid: str, ask: str, fresh: bool
) -> None:
    now = T0 + timedelta(seconds=age)
    assert quote_is_fresh(q(bid=bid, ask=ask), now=now, max_age_seconds=60) is fresh


@pytest.mark.parametrize(
    ("bid", "ask", "mid"),
    [("99.99", "100.01", "100.0000"), ("0.4999", "0.5001", "0.5000"), ("0", "5", "5"),
     ("7", "0", "7"), ("0", "0", "0")],
)  # fmt: skip
def test_mid(bid: str, ask: str, mid: str) -> None:
    assert q(bid=bid, ask=ask).mid == Decimal(mid)


@pytest.mark.parametrize(
    "quote",
    [
        q("BRK.B", at=1.25, received=1.5, bid="412.3300", ask="412.4100"),
        q("A", at=0, bid="0.0001", ask="0"),
        Quote("ZZ", Decimal("1E+2"), Decimal("1.5"), 0, 10**9, T0, T0 + timedelta(hours=5)),
    ],
)
def test_the_fast_encoder_writes_what_the_json_module_would(quote: Quote) -> None:
    expected = json.dumps(quote_document(quote), separators=(",", ":")).encode()
    assert encode_quote(quote) == expected
    assert decode_quote(encode_quote(quote)).bid == quote.bid


def test_the_wire_format_round_trips_with_decimals_and_utc_times() -> None:
    quote = q("BRK.B", at=1.25, received=1.5, bid="412.3300", ask="412.4100")
    raw = encode_quote(quote)
    assert b'"bid":"412.3300"' in raw and b'"timestamp":"2026-03-02T15:00:01.250000Z"' in raw
    assert decode_quote(raw) == quote


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"symbol": "AAPL"}',
        b'{"symbol": "\xc4\xb1bm", "bid": "1", "ask": "1", "bid_size": 1, "ask_size": 1, '
        b'"timestamp": "2026-03-02T15:00:00Z", "received_at": "2026-03-02T15:00:00Z"}',
        b'{"symbol": "AAPL", "bid": 1.5, "ask": "1", "bid_size": 1, "ask_size": 1, '
        b'"timestamp": "2026-03-02T15:00:00Z", "received_at": "2026-03-02T15:00:00Z"}',
        b'{"symbol": "AAPL", "bid": "NaN", "ask": "1", "bid_size": 1, "ask_size": 1, '
        b'"timestamp": "2026-03-02T15:00:00Z", "received_at": "2026-03-02T15:00:00Z"}',
        b'{"symbol": "AAPL", "bid": "-1", "ask": "1", "bid_size": 1, "ask_size": 1, '
        b'"timestamp": "2026-03-02T15:00:00Z", "received_at": "2026-03-02T15:00:00Z"}',
        b'{"symbol": "AAPL", "bid": "1", "ask": "1", "bid_size": true, "ask_size": 1, '
        b'"timestamp": "2026-03-02T15:00:00Z", "received_at": "2026-03-02T15:00:00Z"}',
        b'{"symbol": "AAPL", "bid": "1", "ask": "1", "bid_size": 1, "ask_size": 1, '
        b'"timestamp": "2026-03-02T15:00:00", "received_at": "2026-03-02T15:00:00Z"}',
        b'{"symbol": "AAPL", "bid": "1", "ask": "1", "bid_size": 1, "ask_size": 1, '
        b'"timestamp": "yesterday", "received_at": "2026-03-02T15:00:00Z"}',
    ],
)
def test_a_malformed_stored_quote_is_refused_never_a_price(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_quote(raw)


@pytest.mark.parametrize(
    ("has_symbols", "connected", "redis_ok", "state"),
    [
        (False, False, False, "idle"),
        (False, True, True, "idle"),
        (True, False, True, "disconnected"),
        (True, False, False, "disconnected"),
        (True, True, False, "buffering"),
        (True, True, True, "streaming"),
    ],
)
def test_ingestor_state(has_symbols: bool, connected: bool, redis_ok: bool, state: str) -> None:
    assert ingestor_state(has_symbols=has_symbols, connected=connected, redis_ok=redis_ok) == state


# --- the quote book ---------------------------------------------------------------------------
def test_a_batch_is_the_newest_quote_of_every_symbol() -> None:
    book = QuoteBook(100)
    for i in range(5):
        book.add(q("AAPL", at=i))
        book.add(q("MSFT", at=i + 0.5))
    batch, covered = book.take()
    assert {(x.symbol, x.timestamp) for x in batch} == {
        ("AAPL", T0 + timedelta(seconds=4)),
        ("MSFT", T0 + timedelta(seconds=4.5)),
    }
    assert covered == {"AAPL": 5, "MSFT": 5} and book.depth == 10
    book.written(covered)
    assert book.depth == 0 and book.take() == ([], {})


def test_a_late_older_quote_never_moves_a_symbol_back() -> None:
    book = QuoteBook(100)
    assert book.add(q(at=2))
    assert not book.add(q(at=1))
    assert book.add(q(at=2, bid="99.98"))  # same instant, later arrival: accepted
    assert book.latest["AAPL"].bid == Decimal("99.98")


def test_after_an_outage_the_newest_of_every_symbol_goes_first_and_nothing_older() -> None:
    book = QuoteBook(100)
    book.add(q("AAPL", at=0))
    batch, covered = book.take()
    book.failed(batch)  # Redis down
    for i in range(1, 150):  # the outage lasts; quotes keep coming
        book.add(q("AAPL", at=i))
        book.add(q("MSFT", at=i))
    assert book.depth == 200  # at most 100 per symbol are kept
    assert len(book.recent("AAPL")) == 100 and book.recent("AAPL")[0].timestamp == T0 + timedelta(
        seconds=149
    )
    batch, covered = book.take()
    assert sorted((x.symbol, x.timestamp) for x in batch) == [
        ("AAPL", T0 + timedelta(seconds=149)),
        ("MSFT", T0 + timedelta(seconds=149)),
    ]
    book.written(covered)
    assert book.depth == 0


def test_a_failed_batch_yields_to_a_newer_quote_that_arrived_meanwhile() -> None:
    book = QuoteBook(100)
    book.add(q("AAPL", at=1))
    book.add(q("MSFT", at=1))
    batch, _covered = book.take()
    book.add(q("AAPL", at=2))  # arrives while the batch is being written
    book.failed(batch)
    retry, _ = book.take()
    assert {(x.symbol, x.timestamp.second) for x in retry} == {("AAPL", 2), ("MSFT", 1)}


def test_a_written_batch_keeps_the_backlog_of_quotes_that_arrived_meanwhile() -> None:
    book = QuoteBook(100)
    book.add(q("AAPL", at=1))
    _batch, covered = book.take()
    book.add(q("AAPL", at=2))
    book.written(covered)
    assert book.depth == 1
    assert [x.timestamp.second for x in book.take()[0]] == [2]


def test_forgotten_symbols_leave_no_trace() -> None:
    book = QuoteBook(3)
    book.add(q("AAPL", at=1))
    book.add(q("MSFT", at=1))
    book.forget({"MSFT"})
    assert set(book.latest) == {"AAPL"} and book.recent("MSFT") == []
    assert [x.symbol for x in book.take()[0]] == ["AAPL"]


def test_the_buffer_holds_at_least_one_quote() -> None:
    with pytest.raises(ValueError):
        QuoteBook(0)

"""The broker seam (tradeops.broker) against the paper broker, through the real alpaca-py."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tradeops.broker import (
    BrokerListingIncomplete,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
    DuplicateClientOrderId,
    get_broker,
)

BASE = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def bulk_orders(paper: Any, n: int, *, group: Any, start: datetime = BASE) -> list[str]:
    """n broker-side orders; ``group(i)`` gives order i's offset in ms, so many share one."""
    orders = [
        {
            "symbol": "AAPL",
            "side": "buy",
            "qty": 1,
            "type": "limit",
            "limit_price": "1.00",
            "time_in_force": "gtc",
            "client_order_id": f"bulk-{i}",
            "submitted_at": (start + timedelta(milliseconds=group(i))).isoformat(),
        }
        for i in range(n)
    ]
    created = paper.place_orders(orders)
    return [o["id"] for o in created]


@pytest.mark.parametrize("page_size", [500, 37])
def test_1234_orders_sharing_timestamps_are_listed_completely_and_once(
    paper: Any, page_size: int
) -> None:
    ids = bulk_orders(paper, 1234, group=lambda i: i // 9)  # runs of 9 share a timestamp
    seen: list[str] = []
    for page in get_broker().iter_orders(
        status="all", after=BASE - timedelta(seconds=1), page_size=page_size
    ):
        seen.extend(o.broker_order_id for o in page)
    assert len(seen) == 1234
    assert set(seen) == set(ids)


def test_descending_listing_with_until_is_complete_too(paper: Any) -> None:
    ids = bulk_orders(paper, 300, group=lambda i: i // 25)
    seen = [
        o.broker_order_id
        for page in get_broker().iter_orders(
            status="all", direction="desc", until=BASE + timedelta(hours=1), page_size=40
        )
        for o in page
    ]
    assert sorted(seen) == sorted(ids)


def test_a_full_page_at_one_instant_fails_closed(paper: Any) -> None:
    bulk_orders(paper, 30, group=lambda i: 0)
    with pytest.raises(BrokerListingIncomplete):
        for _ in get_broker().iter_orders(
            status="all", after=BASE - timedelta(seconds=1), page_size=20
        ):
            pass


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sleeps alpaca-py's retry loop takes in this thread (it calls ``time.sleep``
    between attempts); the sleeps still happen."""
    sleeps: list[float] = []
    real_sleep, me = time.sleep, threading.get_ident()

    def recording_sleep(seconds: float) -> None:
        if threading.get_ident() == me:
            sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    return sleeps


def test_rate_limited_requests_are_retried_with_the_configured_wait(
    paper: Any, settings: Any, retry_sleeps: list[float]
) -> None:
    paper.add_fault(method="GET", path="/v2/account", mode="rate_limit", count=2)
    settings.ALPACA_RETRY_WAIT_SECONDS = 0.01  # alpaca-py's own default would be 3 s
    broker = get_broker()
    before = broker.requests_sent
    assert broker.get_account().status == "ACTIVE"
    assert broker.requests_sent - before == 3  # two 429s, then the answer
    assert retry_sleeps == [0.01, 0.01]
    assert [r["status"] for r in paper.requests(path="/v2/account")] == [429, 429, 200]


def test_persistent_429_gives_up_after_the_configured_retries(
    paper: Any, settings: Any, retry_sleeps: list[float]
) -> None:
    paper.add_fault(method="GET", path="/v2/account", mode="rate_limit", count=-1)
    settings.ALPACA_RETRY_ATTEMPTS = 2
    with pytest.raises(BrokerUnavailable, match="429"):
        get_broker().get_account()
    assert len(paper.requests(path="/v2/account")) == 3  # the first try and 2 retries
    assert len(retry_sleeps) == 2


def test_an_unanswered_request_ends_at_the_http_timeout_and_is_not_retried(
    paper: Any, settings: Any
) -> None:
    # The broker would hang up only after 3 s: the client's 1 s read timeout ends it first.
    paper.add_fault(method="GET", path="/v2/clock", mode="timeout", count=1, delay=3)
    broker = get_broker()
    before = broker.requests_sent
    with pytest.raises(BrokerUnavailable, match="ReadTimeout"):
        broker.get_clock()
    assert broker.requests_sent - before == 1
    assert settings.ALPACA_HTTP_TIMEOUT_SECONDS < 3


def test_error_mapping(paper: Any) -> None:
    broker = get_broker()
    with pytest.raises(BrokerNotFound):
        broker.get_order_by_client_id("never-sent")
    assert broker.get_position("AAPL") is None  # flat: 404 means no position
    with pytest.raises(BrokerRejected) as refused:
        broker.submit_order(
            client_order_id="too-big",
            symbol="MSFT",
            side="buy",
            qty=100000,
            order_type="market",
            time_in_force="day",
        )
    assert refused.value.status_code == 403
    broker.submit_order(
        client_order_id="dup-1",
        symbol="AAPL",
        side="buy",
        qty=1,
        order_type="market",
        time_in_force="day",
    )
    with pytest.raises(DuplicateClientOrderId):
        broker.submit_order(
            client_order_id="dup-1",
            symbol="AAPL",
            side="buy",
            qty=1,
            order_type="market",
            time_in_force="day",
        )
    paper.add_fault(method="GET", path="/v2/positions", mode="error500", count=1)
    with pytest.raises(BrokerUnavailable):
        broker.get_positions()


def test_reports_are_typed(paper: Any) -> None:
    broker = get_broker()
    report = broker.submit_order(
        client_order_id="typed-1",
        symbol="AAPL",
        side="buy",
        qty=7,
        order_type="market",
        time_in_force="day",
    )
    assert (report.status, report.filled_qty, report.qty) == ("filled", 7, 7)
    assert str(report.filled_avg_price) == "100.0000"
    assert report.updated_at.tzinfo is not None
    position = broker.get_position("AAPL")
    assert position is not None and position.qty == 7
    short = broker.submit_order(
        client_order_id="typed-2",
        symbol="TSLA",
        side="sell",
        qty=3,
        order_type="market",
        time_in_force="day",
    )
    assert short.status == "filled"
    assert {p.symbol: p.qty for p in broker.get_positions()} == {"AAPL": 7, "TSLA": -3}
    clock = broker.get_clock()
    assert clock.is_open and clock.next_close.tzinfo is not None
    bars = broker.get_daily_bars("AAPL", start=BASE - timedelta(days=40), end=BASE)
    assert len(bars) >= 20 and all(b.volume > 0 for b in bars)
    quote = broker.get_latest_quote("AAPL")
    assert quote is not None and quote.bid_price <= quote.ask_price

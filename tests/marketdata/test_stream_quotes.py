"""``manage.py stream_quotes`` end to end, as it runs in production: a subprocess with the real
alpaca-py StockDataStream against the paper broker's msgpack stream, writing to a real Redis
(the test db, or a private redis-server the test kills and restarts), its fallback endpoint
and heartbeat row read by the web (API, /health) in this process."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from marketdata.quotes import quote_latest, redis_client
from tests.helpers import place, wait_for
from tests.marketdata.support import IngestorProcess, private_redis, redis_quote

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ingestors(paper: Any, paper_server: Any, tmp_path: Path) -> Any:
    """Start ``stream_quotes`` subprocesses; each is SIGKILLed at the end if still alive."""
    started: list[IngestorProcess] = []

    def start(*args: str, **env: str) -> IngestorProcess:
        process = IngestorProcess(paper, paper_server, tmp_path, **env).start(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def quote_via_api(client: Any, symbol: str) -> dict:
    response = client.get(f"/api/v1/quotes/{symbol}/latest")
    assert response.status_code == 200, response.content
    return response.json()


def quotes_check(client: Any) -> dict:
    return client.get("/health").json()["checks"]["quotes"]


def test_quotes_flow_into_redis_and_the_universe_follows_a_new_open_order(
    paper: Any, trader: Any, client: Any, settings: Any, ingestors: Any
) -> None:
    redis = redis_client(settings.REDIS_URL, timeout=1)
    ingestor = ingestors("--symbols", "AAPL")
    wait_for(lambda: redis_quote(redis, "AAPL"), timeout=20, interval=0.05)
    body = quote_via_api(trader, "AAPL")
    assert body["source"] == "redis" and body["symbol"] == "AAPL"
    assert Decimal(body["bid"]) < Decimal(body["mid"]) < Decimal(body["ask"])
    assert 0 <= body["age_seconds"] <= settings.QUOTE_MAX_AGE_SECONDS
    wait_for(lambda: ingestor.state() == "streaming", timeout=5)
    assert quotes_check(client)["status"] == "ok"

    assert redis_quote(redis, "MSFT") is None  # nobody watches MSFT yet
    resting = place(trader, symbol="MSFT", type="limit", limit_price="250.00", qty=1)
    assert resting.status_code == 201 and resting.json()["status"] == "new"
    wait_for(lambda: "MSFT" in paper.streams()["quote_subscriptions"], timeout=10)
    wait_for(lambda: redis_quote(redis, "MSFT"), timeout=10, interval=0.05)
    assert quote_via_api(trader, "MSFT")["source"] == "redis"
    wait_for(lambda: ingestor.row().symbols == ["AAPL", "MSFT"], timeout=5)  # the heartbeat

    assert ingestor.terminate() == 0
    output = ingestor.output()
    assert "symbols: 2 watched, +MSFT" in output
    assert "stream_quotes stopped:" in output and "0 Redis errors" in output
    row = ingestor.row()
    assert row.stopped_at is not None and row.quotes_written > 0


def test_redis_outage_serves_the_buffer_and_recovery_restores_the_newest_quotes(
    paper: Any, trader: Any, client: Any, settings: Any, ingestors: Any, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as cache:
        settings.REDIS_URL = cache.url
        ingestor = ingestors("--symbols", "AAPL,MSFT", REDIS_URL=cache.url)
        settings.QUOTE_FALLBACK_URL = ingestor.url
        redis = cache.client()
        wait_for(lambda: redis_quote(redis, "AAPL") and redis_quote(redis, "MSFT"), timeout=20)
        assert quote_via_api(trader, "AAPL")["source"] == "redis"

        cache.kill()
        wait_for(lambda: ingestor.state() == "buffering", timeout=10)
        check = quotes_check(client)
        assert check["status"] == "degraded" and "buffering" in check["detail"]
        served = quote_via_api(trader, "AAPL")
        assert served["source"] == "buffer"
        assert served["age_seconds"] <= settings.QUOTE_MAX_AGE_SECONDS
        assert place(trader, qty=1).status_code == 201  # market orders still priced

        # The last quotes before Redis comes back: these must be what Redis holds after.
        paper.set_config(tick_seconds=0)
        paper.set_prices({"AAPL": "123.45", "MSFT": "321.00"})
        newest = wait_for(lambda: _buffered_mids(ingestor, {"AAPL": "123.45", "MSFT": "321.00"}))
        cache.start()
        redis = cache.client()
        wait_for(lambda: ingestor.state() == "streaming", timeout=10)
        for symbol in ("AAPL", "MSFT"):
            restored = redis_quote(redis, symbol)
            assert restored is not None and restored == newest[symbol], symbol
        assert quote_via_api(trader, "AAPL")["source"] == "redis"
        assert quotes_check(client)["status"] == "ok"
        status = requests.get(f"{ingestor.url}/status", timeout=2).json()
        assert status["redis_errors"] >= 1 and status["quotes_buffered"] >= 1
        assert status["buffer_depth"] == 0


def _buffered_mids(ingestor: IngestorProcess, mids: dict[str, str]) -> dict | None:
    """The ingestor's newest quotes once they show ``mids``; their decoded form."""
    from marketdata.quoting import decode_quote

    quotes = requests.get(f"{ingestor.url}/quotes", timeout=2).json()["quotes"]
    decoded = {q["symbol"]: decode_quote(q) for q in quotes}
    if all(s in decoded and decoded[s].mid == Decimal(m) for s, m in mids.items()):
        return decoded
    return None


def test_redis_down_at_start_the_ingestor_starts_buffering_then_streams(
    paper: Any, trader: Any, settings: Any, ingestors: Any, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as cache:
        cache.kill()  # its port stays known and unused
        settings.REDIS_URL = cache.url
        ingestor = ingestors("--symbols", "TSLA", REDIS_URL=cache.url)
        settings.QUOTE_FALLBACK_URL = ingestor.url
        wait_for(lambda: ingestor.state() == "buffering", timeout=20)
        wait_for(lambda: quote_latest("TSLA").source == "buffer", timeout=5)  # first quote
        assert quote_via_api(trader, "TSLA")["source"] == "buffer"
        cache.start()
        wait_for(lambda: ingestor.state() == "streaming", timeout=10)
        wait_for(lambda: redis_quote(cache.client(), "TSLA"), timeout=5)
        assert quote_via_api(trader, "TSLA")["source"] == "redis"


def test_a_killed_ingestor_leaves_the_broker_hop_and_a_degraded_health(
    paper: Any, trader: Any, client: Any, settings: Any, ingestors: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 1.0
    ingestor = ingestors("--symbols", "AAPL")
    settings.QUOTE_FALLBACK_URL = ingestor.url
    wait_for(lambda: quote_latest("AAPL").source == "redis", timeout=20, interval=0.05)
    ingestor.kill()  # SIGKILL: no stop recorded, Redis keeps its last quote
    wait_for(lambda: quote_latest("AAPL").source == "broker", timeout=10, interval=0.1)
    assert quote_via_api(trader, "AAPL")["source"] == "broker"
    check = wait_for(lambda: (c := quotes_check(client))["status"] == "degraded" and c)
    assert "silent" in check["detail"]
    assert place(trader, qty=1).status_code == 201


def test_a_dropped_data_stream_reconnects_resubscribes_and_skips_malformed_messages(
    paper: Any, settings: Any, ingestors: Any
) -> None:
    redis = redis_client(settings.REDIS_URL, timeout=1)
    ingestor = ingestors("--symbols", "AAPL")
    wait_for(lambda: ingestor.state() == "streaming", timeout=20)
    paper.disconnect_streams()
    wait_for(lambda: ingestor.state() == "disconnected", timeout=5, interval=0.02)
    wait_for(lambda: ingestor.state() == "streaming", timeout=15)
    wait_for(lambda: "AAPL" in paper.streams()["quote_subscriptions"], timeout=5)

    paper.set_config(tick_seconds=0)
    paper.inject_data(
        [
            {"T": "q", "S": "AAPL", "bp": "garbage", "bs": 1, "ap": 1, "as": 1,
             "t": "2099-01-01T00:00:00Z"},
            {"T": "q", "S": "AAPL", "bp": 555.5, "bs": 1, "ap": 555.6, "as": 1},
            {"T": "q", "S": "AAPL", "bp": 555.5, "bs": 1, "ap": 555.6, "as": 1,
             "t": "2099-01-01T00:00:00Z"},
        ]
    )  # fmt: skip
    wait_for(lambda: (q := redis_quote(redis, "AAPL")) and q.bid == Decimal("555.5"), timeout=5)
    metrics = requests.get(f"{ingestor.url}/metrics", timeout=2).text
    assert 'quotes_skipped_total{reason="malformed"} 2.0' in metrics
    assert ingestor.alive()

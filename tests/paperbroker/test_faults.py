"""Injected faults, the real rate limiter and authentication, seen by alpaca-py's clients."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus
from alpaca.trading.requests import MarketOrderRequest

from paperbroker.control import PaperControl, PaperControlError
from paperbroker.testing import start_test_server, wait_until

from .helpers import KEY, SECRET, fast


def order(coid):
    return MarketOrderRequest(
        symbol="AAPL", qty=1, side="buy", time_in_force="day", client_order_id=coid
    )


def test_error500_is_not_processed(trading, control):
    control.add_fault("POST", "/v2/orders", "error500")
    with pytest.raises(APIError) as excinfo:
        trading.submit_order(order("e500"))
    assert (excinfo.value.status_code, excinfo.value.code) == (500, 50010000)
    with pytest.raises(APIError):
        trading.get_order_by_client_id("e500")  # never created
    assert trading.submit_order(order("e500")).status == OrderStatus.FILLED  # count=1 used up
    assert [e["status"] for e in control.requests(client_order_id="e500")] == [500, 404, 200]
    assert control.requests(client_order_id="e500")[0]["fault"] == "error500"


def test_fault_matching_by_prefix_wildcard_method_and_count(trading, control):
    control.add_fault("*", "/v2/orders*", "error500", count=2)
    for _ in range(2):
        with pytest.raises(APIError):
            trading.get_orders()
    assert trading.get_orders() == []
    control.add_fault("GET", "/v2/account", "error500", count=-1)
    for _ in range(3):
        with pytest.raises(APIError):
            trading.get_account()
    trading.get_clock()  # other paths are unaffected
    assert control.faults()[0]["hits"] == 3
    control.clear_faults()
    assert trading.get_account().status == "ACTIVE"


def run_with_chance(trading, control, seed):
    control.reset(seed=seed)
    control.add_fault("GET", "/v2/account", "error500", count=-1, probability=0.25)
    outcomes = []
    for _ in range(200):
        try:
            trading.get_account()
            outcomes.append(True)
        except APIError:
            outcomes.append(False)
    return outcomes


def test_probabilistic_fault_takes_about_its_share_and_repeats_with_the_seed(trading, control):
    first = run_with_chance(trading, control, seed=7)
    assert 25 <= first.count(False) <= 75  # a quarter of 200, give or take
    assert control.faults()[0]["hits"] == first.count(False)
    assert run_with_chance(trading, control, seed=7) == first  # same seed, same failures
    trading.get_clock()  # other paths are unaffected
    with pytest.raises(PaperControlError) as excinfo:
        control.add_fault("GET", "/v2/account", "error500", probability=1.5)
    assert excinfo.value.status == 422


def test_invalid_fault_is_refused(control):
    with pytest.raises(PaperControlError) as excinfo:
        control.add_fault("GET", "/v2/account", "explode")
    assert excinfo.value.status == 422


def test_timeout_holds_the_request_and_never_processes_it(broker, trading, control):
    fast(trading, timeout=0.5)
    control.add_fault("POST", "/v2/orders", "timeout", delay=2)
    # A read timeout, not the hang-up that ends the hold after 2 s (a ConnectionError).
    with pytest.raises(requests.exceptions.ReadTimeout):
        trading.submit_order(order("held"))
    with pytest.raises(APIError) as excinfo:
        trading.get_order_by_client_id("held")
    assert excinfo.value.status_code == 404
    entry = control.requests(method="POST", client_order_id="held")[0]
    assert (entry["fault"], entry["status"]) == ("timeout", None)


def test_timeout_ends_with_a_closed_connection_and_no_response(trading, control):
    control.add_fault("GET", "/v2/account", "timeout", delay=0.3)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        trading.get_account()  # no client timeout: the broker gives up and hangs up
    assert time.monotonic() - started >= 0.3


def test_reset_releases_held_requests_at_once(trading, control):
    control.add_fault("GET", "/v2/clock", "timeout", delay=30)
    outcome = []

    def call():
        try:
            trading.get_clock()
        except requests.exceptions.ConnectionError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    wait_until(lambda: control.requests(path="/v2/clock"), timeout=2)
    control.reset()
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert len(outcome) == 1


def test_drop_response_after_commit_processes_but_loses_the_answer(trading, control):
    control.add_fault("POST", "/v2/orders", "drop_response_after_commit")
    with pytest.raises(requests.exceptions.ConnectionError):
        trading.submit_order(order("lost"))
    assert trading.get_order_by_client_id("lost").status == OrderStatus.FILLED
    assert trading.get_open_position("AAPL").qty == "1"
    assert control.submit_count("lost") == 1  # requests did not re-send the POST
    with pytest.raises(APIError) as excinfo:
        trading.submit_order(order("lost"))  # the recovery path TradeOps must take
    assert excinfo.value.message == "client_order_id must be unique"
    entry = control.requests(client_order_id="lost")[0]
    assert (entry["fault"], entry["status"]) == ("drop_response_after_commit", 200)


def test_slow_answers_normally_after_the_delay(trading, control):
    control.add_fault("POST", "/v2/orders", "slow", delay=0.4)
    started = time.monotonic()
    placed = trading.submit_order(order("slow-1"))
    assert time.monotonic() - started >= 0.4
    assert placed.status == OrderStatus.FILLED
    entry = control.requests(client_order_id="slow-1")[0]
    assert (entry["fault"], entry["status"]) == ("slow", 200)


def test_delay_after_commit_processes_at_once_and_answers_late(broker, trading, control):
    control.add_fault("POST", "/v2/orders", "delay_after_commit", delay=0.6)
    answers = []
    worker = threading.Thread(target=lambda: answers.append(trading.submit_order(order("late"))))
    started = time.monotonic()
    worker.start()
    # The broker holds the order (filled) while the client is still waiting for its answer.
    held = wait_until(
        lambda: [o for o in control.state()["orders"] if o["client_order_id"] == "late"]
    )
    assert held[0]["status"] == "filled"
    assert worker.is_alive() and not answers
    worker.join(timeout=5)
    assert time.monotonic() - started >= 0.6
    assert answers[0].status == OrderStatus.FILLED  # the normal answer, only late
    entry = control.requests(client_order_id="late")[0]
    assert (entry["fault"], entry["status"]) == ("delay_after_commit", 200)
    assert control.submit_count("late") == 1


def test_delay_after_commit_outlives_a_client_that_gives_up(broker, trading, control):
    fast(trading, timeout=0.3)
    control.add_fault("POST", "/v2/orders", "delay_after_commit", delay=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        trading.submit_order(order("gave-up"))
    assert trading.get_order_by_client_id("gave-up").status == OrderStatus.FILLED
    control.clear_faults()  # releases the held response into a closed connection
    assert trading.get_clock().is_open is True  # the broker is unharmed


def test_rate_limit_fault_is_retried_by_alpaca_py(trading, control):
    control.add_fault("POST", "/v2/orders", "rate_limit", count=2)
    placed = trading.submit_order(order("limited"))  # alpaca-py retries 429 by itself
    assert placed.status == OrderStatus.FILLED
    assert [e["status"] for e in control.requests(client_order_id="limited")] == [429, 429, 200]
    control.add_fault("GET", "/v2/account", "rate_limit", count=-1, delay=5)
    with pytest.raises(APIError) as excinfo:
        trading.get_account()
    error = excinfo.value
    assert (error.status_code, error.code, error.message) == (
        429,
        42910000,
        "rate limit exceeded",
    )
    headers = error.response.headers
    assert headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["X-RateLimit-Reset"]) >= int(time.time()) + 4
    assert len(control.requests(path="/v2/account")) == 4  # 1 + 3 retries


def test_real_rate_limiter_counts_a_sliding_window_per_api():
    server = start_test_server(rate_limit_per_minute=5)
    try:
        trading = fast(TradingClient(KEY, SECRET, url_override=server.url))
        seen: list[requests.Response] = []
        trading._session.hooks["response"].append(lambda response, **_: seen.append(response))
        for _ in range(5):
            trading.get_clock()
        assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["4", "3", "2", "1", "0"]
        assert {r.headers["X-RateLimit-Limit"] for r in seen} == {"5"}
        with pytest.raises(APIError) as excinfo:
            trading.get_account()
        assert (excinfo.value.status_code, excinfo.value.code) == (429, 42910000)
        reset = int(excinfo.value.response.headers["X-RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 61
        data = fast(StockHistoricalDataClient(KEY, SECRET, url_override=server.url))
        data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
        control = PaperControl(server.url)
        control.state(include_orders=False)  # the control API is never limited
        control.reset()  # ...and a reset clears the window
        assert trading.get_clock().is_open is True
    finally:
        server.stop()


def test_wrong_keys_are_401(broker, control):
    trading = fast(TradingClient("paper", "wrong", url_override=broker.url))
    with pytest.raises(APIError) as excinfo:
        trading.get_account()
    error = excinfo.value
    assert (error.status_code, error.code, error.message) == (
        401,
        40110000,
        "request is not authorized",
    )
    data = fast(StockHistoricalDataClient("nobody", "paper", url_override=broker.url))
    with pytest.raises(APIError) as excinfo:
        data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
    assert excinfo.value.status_code == 401

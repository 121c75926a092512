"""Historical bars and latest quotes through alpaca-py's StockHistoricalDataClient."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from statistics import mean

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame

from paperbroker.testing import wait_until
from paperbroker.timeutil import ET

FRIDAY_AFTER_CLOSE = "2024-03-15T20:30:00Z"  # New York is on EDT (UTC-4) by then


@pytest.fixture
def frozen(control):
    control.set_clock(now=FRIDAY_AFTER_CLOSE)
    return control


def daily(market_data, symbols, start, end=None, **extra):
    request = StockBarsRequest(
        symbol_or_symbols=symbols, timeframe=TimeFrame.Day, start=start, end=end, **extra
    )
    return market_data.get_stock_bars(request)


def test_daily_bars_shape_and_midnight_new_york_stamps(market_data, frozen):
    bars = daily(market_data, "AAPL", datetime(2024, 3, 1, tzinfo=UTC), feed=DataFeed.IEX)["AAPL"]
    assert [bar.timestamp.day for bar in bars] == [1, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15]
    assert bars[0].timestamp == datetime(2024, 3, 1, 5, 0, tzinfo=UTC)  # EST
    assert bars[-1].timestamp == datetime(2024, 3, 15, 4, 0, tzinfo=UTC)  # EDT
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low <= bar.vwap <= bar.high
        assert bar.volume > 0 and bar.trade_count > 0
        assert bar.high / bar.low < 1.1  # a realistic daily range


def test_daily_bars_are_deterministic_and_independent_of_the_seed(market_data, control):
    def fetch(seed):
        control.reset(seed=seed, random_walk=seed % 2 == 0)
        control.set_clock(now=FRIDAY_AFTER_CLOSE)
        bars = daily(market_data, ["AAPL", "MSFT"], datetime(2024, 1, 1, tzinfo=UTC))
        return [bar.model_dump() for symbol in ("AAPL", "MSFT") for bar in bars[symbol]]

    first = fetch(1)
    assert fetch(2) == first
    # weekdays 2024-01-01 .. 2024-03-15 less New Year's Day, MLK Day and Washington's Birthday
    assert len(first) == 2 * 52
    assert first[0]["close"] != first[52]["close"]  # two symbols, two different histories


def test_no_daily_bars_on_weekends_or_exchange_holidays(market_data, frozen):
    bars = daily(
        market_data,
        "AAPL",
        datetime(2023, 12, 20, tzinfo=UTC),
        datetime(2024, 1, 3, 12, tzinfo=UTC),
    )
    days = [bar.timestamp.astimezone(ET).date() for bar in bars["AAPL"]]
    # Christmas (Mon 25th) and New Year's Day (Mon 1st) are closed, so are the weekends.
    assert [d.isoformat() for d in days] == [
        "2023-12-20", "2023-12-21", "2023-12-22", "2023-12-26", "2023-12-27",
        "2023-12-28", "2023-12-29", "2024-01-02", "2024-01-03",
    ]  # fmt: skip


def test_unfinished_bars_are_not_served(market_data, control):
    control.set_clock(now="2024-03-15T17:00:00Z")  # Friday 13:00 New York, mid-session
    bars = daily(market_data, "AAPL", datetime(2024, 3, 11, tzinfo=UTC))["AAPL"]
    assert bars[-1].timestamp.date().day == 14
    minutes = market_data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAPL",
            timeframe=TimeFrame.Minute,
            start=datetime(2024, 3, 15, tzinfo=UTC),
        )
    )["AAPL"]
    assert len(minutes) == 210  # 09:30 .. 12:59
    assert minutes[-1].timestamp == datetime(2024, 3, 15, 16, 59, tzinfo=UTC)


def test_current_price_starts_at_the_last_daily_close(market_data, trading, frozen):
    bars = daily(market_data, "AAPL", datetime(2024, 3, 15, tzinfo=UTC))["AAPL"]
    quote = market_data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
    mid = (quote["AAPL"].bid_price + quote["AAPL"].ask_price) / 2
    assert mid == pytest.approx(bars[-1].close)


def test_client_pages_through_more_than_10000_bars_and_stops(market_data, control, frozen):
    request = StockBarsRequest(
        symbol_or_symbols=["MSFT", "AAPL"],
        timeframe=TimeFrame.Minute,
        start=datetime(2024, 2, 26, tzinfo=UTC),  # 15 sessions x 390 minutes x 2 symbols
    )
    bars = market_data.get_stock_bars(request)
    assert (len(bars["AAPL"]), len(bars["MSFT"])) == (5850, 5850)
    assert bars["AAPL"][0].timestamp == datetime(2024, 2, 26, 14, 30, tzinfo=UTC)
    calls = control.requests(path="/v2/stocks/bars")
    assert len(calls) == 2
    assert "page_token=" in calls[1]["query"]


def test_next_page_token_paging_is_complete_and_ends_with_null(market_data, frozen):
    params = {
        "symbols": "AAPL,MSFT",
        "timeframe": "1Day",
        "start": "2024-03-01T00:00:00Z",
        "limit": 4,
        "feed": "iex",
    }
    pages, token = [], None
    while True:
        page = market_data.get("/stocks/bars", params | ({"page_token": token} if token else {}))
        pages.append(page)
        token = page["next_page_token"]
        if token is None:
            break
        assert len(pages) < 20, "paging does not terminate"
    assert [sum(len(v) for v in p["bars"].values()) for p in pages] == [4, 4, 4, 4, 4, 2]
    joined = [(s, b["t"]) for p in pages for s, bars in p["bars"].items() for b in bars]
    whole = market_data.get("/stocks/bars", params | {"limit": 1000})
    assert joined == [(s, b["t"]) for s, bars in whole["bars"].items() for b in bars]
    assert whole["next_page_token"] is None


def hand_made_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_hand_made_page_tokens_are_read_as_utc_or_refused_with_400(market_data, frozen):
    params = {"symbols": "AAPL,MSFT", "timeframe": "1Day", "start": "2024-03-01", "limit": 3}

    def page(token, **extra):
        return market_data.get("/stocks/bars", params | extra | {"page_token": token})

    naive = page(hand_made_token("AAPL|2024-03-11T04:00:00"))
    assert naive == page(hand_made_token("AAPL|2024-03-11T04:00:00+00:00"))
    assert [bar["t"][:10] for bar in naive["bars"]["AAPL"]] == [  # the token's bar comes first
        "2024-03-11",
        "2024-03-12",
        "2024-03-13",
    ]
    far_future = page(hand_made_token("AAPL|9999-12-31T00:00:00"), sort="desc")
    assert [bar["t"][:10] for bar in far_future["bars"]["AAPL"]] == [
        "2024-03-15",
        "2024-03-14",
        "2024-03-13",
    ]
    for token in ("AAPL|yesterday", "AAPL|0001-01-01T00:00:00+01:00", "no-separator"):
        with pytest.raises(APIError) as excinfo:
            page(hand_made_token(token))
        assert excinfo.value.status_code == 400, token


def test_descending_sort_and_limit(market_data, frozen):
    bars = daily(market_data, "AAPL", datetime(2024, 3, 1, tzinfo=UTC), limit=3, sort="desc")
    assert [bar.timestamp.day for bar in bars["AAPL"]] == [15, 14, 13]


def test_adv_profile_drives_daily_volume(market_data, control, frozen):
    def adv20(symbol):
        bars = daily(market_data, symbol, datetime(2024, 2, 1, tzinfo=UTC))[symbol][-20:]
        return mean(bar.volume for bar in bars)

    control.set_symbol("THIN", adv=20_000)
    assert adv20("THIN") == pytest.approx(20_000, rel=0.25)
    control.set_symbol("THIN", adv=2_000_000)
    assert adv20("THIN") == pytest.approx(2_000_000, rel=0.25)
    assert control.state(include_orders=False)["symbols"]["THIN"]["adv"] == 2_000_000


def test_latest_quotes_follow_prices_with_a_small_spread(market_data, control):
    control.set_prices({"AAPL": "150", "PENNY": "0.5"})
    quotes = market_data.get_stock_latest_quote(
        StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "PENNY"], feed=DataFeed.IEX)
    )
    assert (quotes["AAPL"].bid_price, quotes["AAPL"].ask_price) == (149.97, 150.03)
    assert (quotes["PENNY"].bid_price, quotes["PENNY"].ask_price) == (0.4999, 0.5001)
    assert quotes["AAPL"].bid_size > 0 and quotes["AAPL"].ask_size > 0
    assert datetime.now(UTC) - quotes["AAPL"].timestamp < timedelta(seconds=30)


def test_quotes_stay_fresh_while_ticking_and_go_stale_without_ticks(market_data, control):
    def quoted_at():
        request = StockLatestQuoteRequest(symbol_or_symbols="AAPL")
        return market_data.get_stock_latest_quote(request)["AAPL"].timestamp

    control.set_price("AAPL", "100")
    first = quoted_at()
    wait_until(lambda: quoted_at() > first, timeout=2)  # ticks re-quote an unchanged price
    control.set_config(tick_seconds=0)  # drill: a silent market data feed
    frozen = quoted_at()
    time.sleep(0.3)  # three former tick intervals: proving that nothing happens takes time
    assert quoted_at() == frozen
    control.tick()
    assert quoted_at() > frozen
    assert control.prices()["AAPL"] == "100"


def test_bad_market_data_requests_are_400(market_data):
    with pytest.raises(APIError) as excinfo:
        market_data.get("/stocks/bars", {"symbols": "AAPL", "timeframe": "3Week"})
    assert excinfo.value.status_code == 400
    with pytest.raises(APIError) as excinfo:
        market_data.get("/stocks/quotes/latest", {"symbols": "AAPL", "feed": "nasdaq"})
    assert excinfo.value.status_code == 400
    with pytest.raises(APIError) as excinfo:
        market_data.get("/stocks/bars", {"symbols": "AAPL", "timeframe": "1Day", "page_token": "x"})
    assert excinfo.value.status_code == 400


def test_a_new_listing_has_no_bars_before_its_first_day(market_data, control, frozen):
    control.set_symbol("NEWCO", listed="2024-03-13")
    bars = daily(market_data, ["NEWCO", "AAPL"], datetime(2024, 3, 1, tzinfo=UTC))
    assert [b.timestamp.astimezone(ET).day for b in bars["NEWCO"]] == [13, 14, 15]
    assert len(bars["AAPL"]) == 11
    assert control.symbols()["NEWCO"]["listed"] == "2024-03-13"
    control.set_symbol("NEWCO", listed="2024-03-16")  # listed after the last close: nothing
    assert "NEWCO" not in daily(market_data, ["NEWCO"], datetime(2024, 3, 1, tzinfo=UTC)).data
    control.set_symbol("NEWCO", listed=None)
    assert len(daily(market_data, "NEWCO", datetime(2024, 3, 1, tzinfo=UTC))["NEWCO"]) == 11

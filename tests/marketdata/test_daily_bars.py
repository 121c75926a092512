"""The daily bars store: sync_bars through the broker seam against the paper broker (its calendar
knows weekends and NYSE holidays), idempotent upserts, only gaps fetched."""

from __future__ import annotations

from datetime import date
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from marketdata.bars import bars_frame, bars_sync
from marketdata.models import DailyBar

pytestmark = pytest.mark.django_db

# Thursday 2024-06-27 .. Tuesday 2024-07-09: two weekends and Independence Day in between.
JULY = [date(2024, 6, d) for d in (27, 28)] + [date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9)]


def bar_requests(paper: Any) -> list[dict]:
    return paper.requests(path="/v2/stocks/bars")


def test_sync_stores_trading_days_only_weekends_and_holidays_never_asked(paper: Any) -> None:
    paper.clear_requests()
    report = bars_sync(symbols=["MSFT", "AAPL"], days=8, end=date(2024, 7, 9))
    assert report.sessions == JULY
    assert (report.bars_written, report.requests, report.failed) == (16, 1, {})
    for symbol in ("AAPL", "MSFT"):
        stored = list(DailyBar.objects.filter(symbol=symbol).values_list("date", flat=True))
        assert stored == JULY
    bar = DailyBar.objects.get(symbol="AAPL", date=date(2024, 7, 5))
    assert bar.low <= min(bar.open, bar.close) <= bar.high and bar.volume > 0
    assert bar.vwap is not None and bar.trade_count > 0
    assert len(bar_requests(paper)) == 1


def test_sync_is_idempotent_and_fetches_only_the_gaps(paper: Any) -> None:
    bars_sync(symbols=["AAPL", "MSFT", "TSLA"], days=8, end=date(2024, 7, 9))
    before = {(b.symbol, b.date): (b.close, b.volume) for b in DailyBar.objects.all()}
    paper.clear_requests()
    again = bars_sync(symbols=["AAPL", "MSFT", "TSLA"], days=8, end=date(2024, 7, 9))
    assert (again.up_to_date, again.requests, again.bars_written) == (3, 0, 0)
    assert bar_requests(paper) == []
    DailyBar.objects.filter(symbol="MSFT", date__gte=date(2024, 7, 5)).delete()
    refill = bars_sync(symbols=["AAPL", "MSFT", "TSLA"], days=8, end=date(2024, 7, 9))
    assert (refill.up_to_date, refill.requests) == (2, 1)
    (call,) = bar_requests(paper)
    assert "symbols=MSFT&" in call["query"] + "&"
    assert "start=2024-07-05" in call["query"]  # from the first gap, not the whole window
    after = {(b.symbol, b.date): (b.close, b.volume) for b in DailyBar.objects.all()}
    assert after == before


def test_symbols_are_batched_and_one_failing_batch_is_not_fatal(paper: Any) -> None:
    paper.set_symbol("NEWCO", listed="2024-07-09")  # listed on the last day of the window
    paper.set_symbol("ZLATE", listed="2025-01-02")  # no bars at all in it
    paper.add_fault(method="GET", path="/v2/stocks/bars", mode="error500", count=1)
    report = bars_sync(
        symbols=["AAPL", "MSFT", "TSLA", "NEWCO", "ZLATE"],
        days=3,
        end=date(2024, 7, 9),
        batch_size=2,
    )
    assert report.requests == 3
    assert report.failed["AAPL"].startswith("broker:")  # the first batch: AAPL, MSFT
    assert report.failed["MSFT"] == report.failed["AAPL"]
    assert report.failed["ZLATE"] == "no bars"
    assert report.failed["NEWCO"] == "no bar for 2 of 3 trading days (first 2024-07-05)"
    assert set(DailyBar.objects.values_list("symbol", flat=True)) == {"TSLA", "NEWCO"}


def test_a_year_of_many_symbols_pages_through_next_page_token(paper: Any, settings: Any) -> None:
    """41 symbols x 250 days = 10,250 bars: more than one 10,000-bar page of alpaca-py."""
    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 30  # the paper broker builds 10,000 bars per page
    symbols = [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(41)]
    paper.clear_requests()
    report = bars_sync(symbols=symbols, days=250, end=date(2024, 12, 31))
    assert (report.bars_written, report.failed) == (41 * 250, {})
    calls = bar_requests(paper)
    assert len(calls) == 2 and "page_token=" in calls[1]["query"]
    assert DailyBar.objects.filter(date=date(2024, 12, 25)).count() == 0  # Christmas
    assert DailyBar.objects.filter(date=date(2024, 11, 29)).count() == 41


def test_bars_frame_reads_floats_in_symbol_date_order(paper: Any) -> None:
    bars_sync(symbols=["MSFT", "AAPL"], days=8, end=date(2024, 7, 9))
    frame = bars_frame(symbols=["AAPL", "MSFT"], since=date(2024, 7, 1), until=date(2024, 7, 9))
    assert list(frame["symbol"]) == ["AAPL"] * 6 + ["MSFT"] * 6
    assert list(frame["date"][:6]) == JULY[2:]
    close = DailyBar.objects.get(symbol="MSFT", date=date(2024, 7, 9)).close
    assert frame["close"].iloc[-1] == float(close)
    assert str(frame["close"].dtype) == "float64"


def test_sync_bars_command(paper: Any) -> None:
    out = StringIO()
    call_command("sync_bars", "--symbols", "aapl,MSFT", "--days", "5", stdout=out)
    text = out.getvalue()
    assert "sync_bars: 2 symbols, last 5 trading days..." in text
    assert "2 symbols over 5 trading days" in text and "10 bars written in 1 requests" in text
    assert DailyBar.objects.count() == 10
    with pytest.raises(CommandError, match="not a US equity symbol"):
        call_command("sync_bars", "--symbols", "AAPL,not a symbol", stdout=StringIO())
    # The one symbol rule: matched as typed, then upper-cased (a dotless i is no IBM).
    with pytest.raises(CommandError, match="not a US equity symbol"):
        call_command("sync_bars", "--symbols", "\u0131bm", stdout=StringIO())
    with pytest.raises(CommandError, match="--days"):
        call_command("sync_bars", "--symbols", "AAPL", "--days", "0", stdout=StringIO())


def test_calendar_through_the_seam_is_aware_utc_and_only_finished_sessions_count(
    paper: Any,
) -> None:
    from datetime import UTC, datetime

    from marketdata.calendar import latest_finished_session, sessions_finished
    from tradeops.broker import get_broker

    days = get_broker().get_calendar(start=date(2024, 7, 1), end=date(2024, 7, 8))
    assert [d.date.day for d in days] == [1, 2, 3, 5, 8]
    assert days[0].open == datetime(2024, 7, 1, 13, 30, tzinfo=UTC)  # 09:30 EDT
    assert days[0].close == datetime(2024, 7, 1, 20, 0, tzinfo=UTC)
    friday_afternoon = datetime(2024, 7, 5, 19, 0, tzinfo=UTC)  # before Friday's close
    finished = sessions_finished(days=3, now=friday_afternoon)
    assert [s.date.day for s in finished] == [1, 2, 3]
    assert latest_finished_session(now=datetime(2024, 7, 6, 12, 0, tzinfo=UTC)) == date(2024, 7, 5)

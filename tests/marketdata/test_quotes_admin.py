"""The admin's Quotes page (OTP-protected like every admin page), linked from the index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from marketdata.ingest import QuoteIngestor, RedisQuoteWriter
from marketdata.quoting import Quote
from tests.marketdata.support import ingestor_reporting
from tradeops.broker_types import QuoteReport

pytestmark = pytest.mark.django_db

PAGE = "/admin/marketdata/quoteingestor/quotes/"


def test_the_index_links_to_the_quotes_page(ops_admin: Any) -> None:
    index = ops_admin.get("/admin/").content.decode()
    assert f'<a href="{PAGE}">Quotes</a>' in index


def test_the_page_shows_each_symbol_its_quote_age_source_and_the_ingestor(
    ops_admin: Any, settings: Any, quote_buffer: QuoteIngestor
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 60
    settings.QUOTE_SYMBOLS = ["tsla"]
    ingestor_reporting(state="buffering", symbols=("AAPL", "MSFT", "NVDA"), detail="Redis: down")
    now = datetime.now(UTC)
    RedisQuoteWriter(settings.REDIS_URL).write(
        [
            Quote("AAPL", Decimal("99.98"), Decimal("100.02"), 1, 2, now, now),
            Quote("NVDA", Decimal("50"), Decimal("50.1"), 1, 2, now - timedelta(minutes=5), now),
        ]
    )
    quote_buffer.offer(QuoteReport("MSFT", Decimal("300.10"), Decimal("300.20"), 3, 4, now))

    page = ops_admin.get(PAGE)

    assert page.status_code == 200
    rows = {row["symbol"]: row for row in page.context["rows"]}
    assert list(rows) == ["AAPL", "MSFT", "NVDA", "TSLA"]
    assert (rows["AAPL"]["quote"].source, rows["AAPL"]["fresh"]) == ("redis", True)
    assert (rows["MSFT"]["quote"].source, rows["MSFT"]["quote"].bid) == ("buffer", Decimal("300.1"))
    assert rows["NVDA"]["fresh"] is False and rows["NVDA"]["quote"].age_seconds >= 300
    assert rows["TSLA"]["quote"] is None
    html = page.content.decode()
    assert "100.0000" in html and "STALE" in html and "no quote in Redis" in html
    assert '<td class="state">buffering</td>' in html and "Redis: down" in html


def test_without_a_running_ingestor_the_page_says_so(ops_admin: Any) -> None:
    html = ops_admin.get(PAGE).content.decode()
    assert "No quote ingestor is running" in html and "No symbol is watched" in html


def test_the_page_needs_a_verified_otp_session(ops_user: Any) -> None:
    password_only = Client()
    password_only.force_login(ops_user)  # logged in, no OTP device verified
    response = password_only.get(PAGE)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

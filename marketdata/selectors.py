"""Market-data reads: the quote ingestors as the database knows them, and the symbol universe
``stream_quotes`` watches."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from marketdata.models import QuoteIngestor
from marketdata.quotes import quote_client
from tradeops.symbols import symbol_or_none

logger = logging.getLogger(__name__)


def quote_ingestors_running(*, now: datetime) -> list[QuoteIngestor]:
    """Ingestors not stopped whose heartbeat is younger than QUOTE_MAX_AGE_SECONDS."""
    since = now - timedelta(seconds=settings.QUOTE_MAX_AGE_SECONDS)
    return list(QuoteIngestor.objects.filter(stopped_at__isnull=True, heartbeat_at__gte=since))


def quote_ingestor_last() -> QuoteIngestor | None:
    """The ingestor that reported last (running or not)."""
    return QuoteIngestor.objects.first()


def quote_universe(*, extra: Iterable[str] = ()) -> list[str]:
    """What ``stream_quotes`` subscribes to: ``extra`` (its --symbols), QUOTE_SYMBOLS, every
    QUOTE_UNIVERSE_SOURCES callable's symbols (open orders, positions, active plans...) and
    the signal universe. Malformed entries are logged and ignored."""
    candidates: list[str] = [*extra, *settings.QUOTE_SYMBOLS]
    candidates += getattr(settings, "SIGNAL_UNIVERSE", [])
    for path in settings.QUOTE_UNIVERSE_SOURCES:
        candidates += import_string(path)()
    symbols: set[str] = set()
    for raw in candidates:
        symbol = symbol_or_none(raw)
        if symbol is None:
            logger.warning("quote universe: malformed symbol %r ignored", raw)
        else:
            symbols.add(symbol)
    return sorted(symbols)


def quote_board(ingestors: list[QuoteIngestor]) -> list[dict[str, Any]]:
    """Each watched symbol (the ingestors' and QUOTE_SYMBOLS) with what Redis or the buffer
    holds for it and whether an order could use it (the admin's Quotes page)."""
    configured = {p for raw in settings.QUOTE_SYMBOLS if (p := symbol_or_none(raw))}
    symbols = {s for row in ingestors for s in row.symbols} | configured
    max_age = settings.QUOTE_MAX_AGE_SECONDS
    return [
        {
            "symbol": symbol,
            "quote": quote,
            "fresh": quote is not None and (quote.age_seconds or 0.0) <= max_age,
        }
        for symbol, quote in quote_client().peek(sorted(symbols)).items()
    ]

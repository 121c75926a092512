"""Fixtures of the quote tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from marketdata.fallback import FallbackServer
from marketdata.ingest import QuoteIngestor


@pytest.fixture
def quote_buffer(settings: Any) -> Iterator[QuoteIngestor]:
    """An ingestor without Redis and its fallback endpoint (a free port), wired into the
    settings: what QuoteClient's buffer hop reads while Redis is down."""
    ingestor = QuoteIngestor(writer=None, buffer_size=100, retry_max_seconds=0.1)
    server = FallbackServer(ingestor, "127.0.0.1", 0).start()
    settings.QUOTE_FALLBACK_URL = server.url
    yield ingestor
    server.stop()

"""``manage.py stream_quotes`` in this process: refusals at the command line, and a short
``--seconds`` run against the paper broker's real data stream."""

from __future__ import annotations

import socket
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marketdata.models import QuoteIngestor
from marketdata.quotes import redis_client
from tests.marketdata.support import redis_quote


def test_a_malformed_symbol_on_the_command_line_is_refused() -> None:
    with pytest.raises(CommandError, match="not US equity symbols: '\u0131bm'"):
        call_command("stream_quotes", "--symbols", "AAPL,\u0131bm")


def test_a_fallback_port_in_use_is_refused(paper: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on port {port}"):
            call_command("stream_quotes", "--symbols", "AAPL", "--port", str(port))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_timed_run_streams_records_and_stops(paper: Any, settings: Any) -> None:
    settings.QUOTE_HEARTBEAT_SECONDS = 0.2
    settings.SIGNAL_UNIVERSE = []
    out = StringIO()
    call_command("stream_quotes", "--symbols", "MSFT", "--port", "0", "--seconds", "2", stdout=out)
    output = out.getvalue()
    assert "Redis configured; fallback endpoint http://127.0.0.1:" in output
    assert "stream_quotes: symbols: 1 watched, +MSFT" in output
    assert "stream_quotes: state: streaming" in output
    assert "0 Redis errors" in output.splitlines()[-1]
    assert redis_quote(redis_client(settings.REDIS_URL, timeout=1), "MSFT") is not None
    row = QuoteIngestor.objects.get()
    assert row.stopped_at is not None and row.symbols == ["MSFT"] and row.quotes_written > 0

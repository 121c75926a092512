"""Quotes in /health and /metrics, read from the ingestors' heartbeat rows (the database), so
the web sees the ingestor's state even while Redis is down and notices a dead ingestor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from marketdata.models import QuoteIngestor
from marketdata.quoting import BUFFERING, DISCONNECTED, IDLE, STREAMING
from marketdata.selectors import quote_ingestor_last, quote_ingestors_running
from tradeops.health import DEGRADED, OK, CheckResult


def ingestor_problem(row: QuoteIngestor, *, now: datetime, max_age: float) -> str:
    """Why this running ingestor degrades quotes, or "" when it does not."""
    if row.state == BUFFERING:
        return f"buffering since {row.state_since:%H:%M:%S} ({row.detail or 'Redis failing'})"
    if row.state == DISCONNECTED:
        return f"data stream disconnected since {row.state_since:%H:%M:%S}"
    if row.state == STREAMING:
        if row.last_quote_at is None:
            silent = (now - row.state_since).total_seconds()
            return f"no quote received yet ({silent:.0f}s)" if silent > max_age else ""
        silent = (now - row.last_quote_at).total_seconds()
        return f"no quote received for {silent:.0f}s" if silent > max_age else ""
    return ""


def check_quotes() -> CheckResult:
    """Degraded (never unready: cancels need no quote) while an ingestor is buffering,
    disconnected, receives nothing, or none has reported within QUOTE_MAX_AGE_SECONDS."""
    now, max_age = timezone.now(), settings.QUOTE_MAX_AGE_SECONDS
    running = quote_ingestors_running(now=now)
    if not running:
        last = quote_ingestor_last()
        if last is None:
            detail = "no quote ingestor has reported: is stream_quotes running?"
        elif last.stopped_at is not None:
            detail = f"stream_quotes stopped at {last.stopped_at:%Y-%m-%d %H:%M:%S}"
        else:
            silent = (now - last.heartbeat_at).total_seconds()
            detail = f"stream_quotes silent for {silent:.0f}s (pid {last.pid} on {last.hostname})"
        return CheckResult("quotes", DEGRADED, True, f"{detail}; prices come from the broker")
    problems = [p for row in running if (p := ingestor_problem(row, now=now, max_age=max_age))]
    if problems:
        return CheckResult("quotes", DEGRADED, True, "; ".join(problems))
    states = Counter(row.state for row in running)
    if states[IDLE] == len(running):
        return CheckResult("quotes", OK, True, "idle: no symbol to watch")
    symbols = len({s for row in running for s in row.symbols})
    return CheckResult("quotes", OK, True, f"streaming {symbols} symbols")


def ingestor_gauges() -> Iterator[GaugeMetricFamily]:
    now = timezone.now()
    running = quote_ingestors_running(now=now)
    states = GaugeMetricFamily(
        "quote_ingestors", "Running quote ingestors by state (heartbeat rows)", labels=["state"]
    )
    counts = Counter(row.state for row in running)
    for state in QuoteIngestor.State.values:
        states.add_metric([state], float(counts[state]))
    yield states
    age = GaugeMetricFamily(
        "quote_ingestor_heartbeat_age_seconds", "Seconds since a quote ingestor last reported"
    )
    last = quote_ingestor_last()
    if last is not None:
        age.add_metric([], max((now - last.heartbeat_at).total_seconds(), 0.0))
    yield age

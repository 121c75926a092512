"""The ``quotes`` check of /health (degraded, never unready) and the ingestor gauges of /metrics,
from the heartbeat rows ``stream_quotes`` writes (built here through the same services)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from marketdata.services import quote_ingestor_stop
from tests.marketdata.support import ingestor_reporting

pytestmark = pytest.mark.django_db


def quotes_check(client: Any) -> dict:
    response = client.get("/health")
    assert response.status_code == 200
    return response.json()["checks"]["quotes"]


def test_no_ingestor_ever_is_degraded_not_unready(client: Any) -> None:
    check = quotes_check(client)
    assert check["status"] == "degraded" and check["ready"] is True
    assert "no quote ingestor has reported" in check["detail"]


def test_a_streaming_ingestor_is_healthy(client: Any) -> None:
    ingestor_reporting(state="streaming", symbols=("AAPL", "MSFT"))
    assert quotes_check(client) == {
        "name": "quotes",
        "status": "ok",
        "ready": True,
        "detail": "streaming 2 symbols",
    }


def test_an_idle_ingestor_is_healthy(client: Any) -> None:
    ingestor_reporting(state="idle", symbols=())
    assert quotes_check(client)["status"] == "ok"


@pytest.mark.parametrize(
    ("state", "detail", "expected"),
    [
        ("buffering", "Redis: ConnectionError: refused", "Redis: ConnectionError: refused"),
        ("disconnected", "", "data stream disconnected since"),
    ],
)
def test_buffering_or_disconnected_degrades_with_the_reason(
    client: Any, state: str, detail: str, expected: str
) -> None:
    ingestor_reporting(state=state, detail=detail)
    check = quotes_check(client)
    assert check["status"] == "degraded" and expected in check["detail"]


def test_streaming_without_quotes_for_longer_than_the_max_age_degrades(
    client: Any, settings: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 30
    ingestor_reporting(state="streaming", last_quote_at=timezone.now() - timedelta(seconds=45))
    check = quotes_check(client)
    assert check["status"] == "degraded" and "no quote received for 45s" in check["detail"]


def test_a_silent_ingestor_degrades(client: Any, settings: Any) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 30
    ingestor_reporting(state="streaming", now=timezone.now() - timedelta(seconds=31))
    check = quotes_check(client)
    assert check["status"] == "degraded" and "silent for 31s" in check["detail"]


def test_a_stopped_ingestor_degrades(client: Any) -> None:
    row = ingestor_reporting(state="streaming")
    quote_ingestor_stop(ingestor_id=row.pk, now=timezone.now())
    assert "stream_quotes stopped at" in quotes_check(client)["detail"]


def test_ingestor_gauges_are_exported(client: Any) -> None:
    ingestor_reporting(state="buffering")
    text = client.get("/metrics").content.decode()
    assert 'quote_ingestors{state="buffering"} 1.0' in text
    assert 'quote_ingestors{state="streaming"} 0.0' in text
    assert "quote_ingestor_heartbeat_age_seconds " in text

"""GET /api/v1/signals and /api/v1/models: answers, weights, strict inputs (4xx, never 500),
authentication, the OpenAPI schema; the serving process's hot reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from signals.models import ModelVersion
from tests.helpers import metric, token_client
from tests.signals.support import activate_first, train

pytestmark = pytest.mark.django_db


@pytest.fixture
def warm(stored_bars: Any, q_sync: None) -> ModelVersion:
    return activate_first(train("alpha"))


def get(path: str, **query: Any) -> Any:
    return token_client("alpha").get(path, query)


def test_signals_answer_ranks_and_weights(warm: ModelVersion) -> None:
    served = metric("signals_served_total", outcome="ok")
    hits = metric("signals_feature_cache_reads_total", result="hit")
    body = get("/api/v1/signals", top_n=1, bottom_n=2).json()
    assert body["model"] == {"name": "alpha", "version": 1}
    assert body["stale"] is False and body["latest_trading_day"] == body["as_of"]
    rows = body["signals"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert [r["target_weight"] for r in rows] == [1.0, 0, 0, 0, -0.5, -0.5]
    default = get("/api/v1/signals").json()["signals"]  # SIGNAL_TOP_N / SIGNAL_BOTTOM_N = 2
    assert [r["target_weight"] for r in default] == [0.5, 0.5, 0, 0, -0.5, -0.5]
    assert metric("signals_served_total", outcome="ok") == served + 2
    assert metric("signals_feature_cache_reads_total", result="hit") == hits + 2


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"top_n": "two"}, "top_n"),
        ({"top_n": "2.0"}, "top_n"),
        ({"bottom_n": "-1"}, "bottom_n"),
        ({"top_n": "100000"}, "top_n"),
        ({"date": "2024-13-01"}, "date"),
        ({"date": "yesterday"}, "date"),
        ({"topn": "2"}, "topn"),
        ({"top_n": "4", "bottom_n": "3"}, "top_n"),  # 7 > the 6 names
    ],
)
def test_bad_signal_queries_are_400(warm: ModelVersion, query: dict, field: str) -> None:
    answer = get("/api/v1/signals", **query)
    assert answer.status_code == 400, answer.json()
    error = answer.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]["fields"]


def test_a_date_outside_the_cache_is_404_and_an_old_date_is_flagged_stale(
    warm: ModelVersion,
) -> None:
    from signals.models import HydrationRun

    answer = get("/api/v1/signals", date="2001-01-02")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    first = HydrationRun.objects.get(status="succeeded").dates[0]
    old = get("/api/v1/signals", date=first).json()
    assert old["as_of"] == first and old["stale"] is True


def test_signals_need_a_token_or_a_verified_staff_session(
    warm: ModelVersion, ops_admin: Any
) -> None:
    assert APIClient().get("/api/v1/signals").status_code == 401
    assert ops_admin.get("/api/v1/signals").status_code == 200
    assert APIClient().get("/api/v1/models").status_code == 401


def test_models_list_carries_status_and_the_latest_validation(warm: ModelVersion) -> None:
    bad = train("alpha", transform=lambda y: -y)
    from signals.promotion import model_promote

    model_promote(model=bad, actor="test", reason="drill")
    rows = get("/api/v1/models").json()["results"]
    assert [(r["version"], r["status"]) for r in rows] == [(2, "rejected"), (1, "active")]
    latest = rows[0]["latest_validation"]
    assert latest["outcome"] == "rejected" and latest["baseline"] == "alpha v1"
    assert latest["spearman_mean"] < 0 and latest["reasons"]
    assert [r["version"] for r in get("/api/v1/models", status="active").json()["results"]] == [1]
    assert get("/api/v1/models", status="bogus").status_code == 400
    assert get("/api/v1/models", name="Not A Name").status_code == 400
    # Cursor-paginated like every list: its limit and its next link are taken.
    first = get("/api/v1/models", limit=1)
    assert first.status_code == 200, first.json()
    assert [r["version"] for r in first.json()["results"]] == [2]
    second = token_client("alpha").get(first.json()["next"])
    assert [r["version"] for r in second.json()["results"]] == [1]


def test_endpoints_are_in_the_openapi_schema(client: Any) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)
    signals = schema["paths"]["/api/v1/signals"]["get"]
    assert {p["name"] for p in signals["parameters"]} == {"date", "top_n", "bottom_n"}
    assert {"200", "400", "401", "404", "503"} <= set(signals["responses"])
    assert "/api/v1/models" in schema["paths"]


def test_a_newly_active_version_is_served_without_restart_and_a_bad_load_keeps_the_old(
    warm: ModelVersion, settings: Any, client: Any
) -> None:
    from signals.promotion import _activate_unvalidated

    assert get("/api/v1/signals").json()["model"]["version"] == 1
    v2 = train("alpha", seed=99)
    _activate_unvalidated(v2, actor="test", reason="reload drill")
    assert get("/api/v1/signals").json()["model"]["version"] == 2  # MODEL_RELOAD_SECONDS=0
    v3 = train("alpha", seed=5)
    _activate_unvalidated(v3, actor="test", reason="tamper drill")
    path = Path(settings.MODEL_DIR) / v3.artifact_path
    path.chmod(0o644)
    path.write_text(path.read_text() + "\n")  # corrupted after registration
    failed = metric("signals_model_loads_total", outcome="failed")
    answer = get("/api/v1/signals")
    assert answer.status_code == 200 and answer.json()["model"]["version"] == 2
    assert metric("signals_model_loads_total", outcome="failed") == failed + 1
    detail = client.get("/health").json()["checks"]["signals"]
    assert detail["status"] == "degraded" and "tampered or corrupt" in detail["detail"]


def test_the_reload_interval_is_honoured(warm: ModelVersion, settings: Any) -> None:
    from signals.promotion import _activate_unvalidated

    settings.MODEL_RELOAD_SECONDS = 3600
    assert get("/api/v1/signals").json()["model"]["version"] == 1
    _activate_unvalidated(train("alpha", seed=99), actor="test", reason="reload drill")
    assert get("/api/v1/signals").json()["model"]["version"] == 1  # not looked at yet
    from signals import serving

    serving._serving.checked_at = float("-inf")  # the interval has passed
    assert get("/api/v1/signals").json()["model"]["version"] == 2


def test_metrics_expose_the_active_model_and_the_last_validation(
    warm: ModelVersion, client: Any
) -> None:
    from signals.promotion import model_promote

    model_promote(model=train("alpha", seed=99), actor="test", reason="test promotion")
    text = client.get("/metrics").content.decode()
    assert 'signals_active_model_info{feature_set="daily-v1",name="alpha",version="2"} 1.0' in text
    assert "signals_last_validation_spearman " in text
    assert "signals_ready 1.0" in text
    assert 'signals_shadow_validations_total{outcome="passed"}' in text

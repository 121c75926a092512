"""Signals' alert gauges on GET /metrics, read from the runs' rows: the latest hydration failed
(SignalsHydrationFailed), the last shadow validation rejected its candidate and when it
finished (ShadowValidationRejected ages out instead of firing until the next promotion)."""

from __future__ import annotations

from typing import Any

import pytest

from signals.hydration import hydration_run
from signals.models import ModelVersion
from signals.promotion import model_promote
from tests.helpers import scraped
from tests.signals.support import activate_first, train

pytestmark = pytest.mark.django_db


@pytest.fixture
def serving(stored_bars: Any, q_sync: None) -> ModelVersion:
    """alpha v1 active and hydrated."""
    return activate_first(train("alpha"))


def test_a_failed_hydration_shows_until_one_succeeds(
    serving: ModelVersion, settings: Any, client: Any
) -> None:
    assert scraped(client, "signals_last_hydration_failed") == 0.0
    settings.FEATURE_HYDRATION_TIMEOUT_SECONDS = 0
    assert hydration_run(trigger="manual").status == "failed"
    assert scraped(client, "signals_last_hydration_failed") == 1.0
    settings.FEATURE_HYDRATION_TIMEOUT_SECONDS = 300
    assert hydration_run(trigger="manual").status == "succeeded"
    assert scraped(client, "signals_last_hydration_failed") == 0.0


def test_a_rejected_candidate_shows_with_its_time_until_a_later_one_passes(
    serving: ModelVersion, client: Any
) -> None:
    # The first model's sanity check is not a shadow validation: nothing to report yet.
    assert scraped(client, "signals_last_validation_rejected") is None
    bad = model_promote(
        model=train("alpha", transform=lambda y: -y), actor="test", reason="drill x"
    )
    bad.refresh_from_db()
    assert bad.outcome == "rejected"
    assert scraped(client, "signals_last_validation_rejected") == 1.0
    finished = scraped(client, "signals_last_validation_timestamp_seconds")
    assert finished == pytest.approx(bad.finished_at.timestamp())
    good = model_promote(model=train("alpha", seed=99), actor="test", reason="drill x")
    good.refresh_from_db()
    assert good.outcome == "passed"
    assert scraped(client, "signals_last_validation_rejected") == 0.0
    assert scraped(client, "signals_last_validation_timestamp_seconds") == pytest.approx(
        good.finished_at.timestamp()
    )

"""The asset list: the broker seam's typed reports (real alpaca-py against the paper broker),
the cache load as a django-q2 job and its daily schedule, duplicates in the broker's list."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django_q.models import Schedule
from django_q.tasks import async_task

from marketdata.assets import best_per_symbol
from marketdata.models import Asset, AssetListState
from marketdata.tasks import SCHEDULE_NAME, schedules_ensure
from tradeops.broker import AssetReport, BrokerNotFound, get_broker
from tradeops.env import env_cron

pytestmark = pytest.mark.django_db


def report(symbol: str, *, status: str = "active", tradable: bool = True) -> AssetReport:
    return AssetReport(
        symbol=symbol,
        asset_id=f"id-{symbol}-{status}-{tradable}",
        asset_class="us_equity",
        exchange="NASDAQ",
        name=symbol,
        status=status,
        tradable=tradable,
        marginable=True,
        shortable=True,
        easy_to_borrow=True,
        fractionable=False,
    )


def test_the_broker_seam_reports_assets(paper: Any) -> None:
    paper.set_asset("OLDCO", status="inactive", tradable=False, shortable=False)
    assets = {a.symbol: a for a in get_broker().list_assets()}
    assert assets["AAPL"].is_tradable and assets["AAPL"].can_open_short
    old = assets["OLDCO"]
    assert (old.status, old.is_tradable, old.can_open_short) == ("inactive", False, False)
    assert get_broker().get_asset("AAPL").asset_id == assets["AAPL"].asset_id
    with pytest.raises(BrokerNotFound):
        get_broker().get_asset("ZZZZ")


def test_a_symbol_listed_twice_keeps_its_tradable_entry() -> None:
    best = best_per_symbol(
        [
            report("VXX", tradable=False),
            report("VXX"),
            report("VXX", status="inactive"),
            report("X" * 17),  # longer than any order's symbol: left out
        ]
    )
    assert list(best) == ["VXX"]
    assert best["VXX"].is_tradable


def test_the_daily_job_loads_the_list_and_its_schedule_is_upserted(
    paper: Any, q_sync: None, settings: Any
) -> None:
    async_task("marketdata.tasks.assets_refresh_task")
    state = AssetListState.objects.get()
    assert state.refreshed_at is not None
    assert state.asset_count == Asset.objects.count() == len(paper.assets())
    paper.set_asset("AAPL", status="inactive")
    async_task("marketdata.tasks.assets_refresh_task")
    assert Asset.objects.get(symbol="AAPL").status == "inactive"
    settings.ASSETS_REFRESH_CRON = "30 10 * * 1-5"
    schedules_ensure()
    schedules_ensure()
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert (schedule.schedule_type, schedule.cron, schedule.func) == (
        Schedule.CRON,
        "30 10 * * 1-5",
        "marketdata.tasks.assets_refresh_task",
    )


def test_a_bad_refresh_cron_stops_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETS_REFRESH_CRON", "every morning")
    with pytest.raises(ImproperlyConfigured, match="ASSETS_REFRESH_CRON"):
        env_cron("ASSETS_REFRESH_CRON", "0 11 * * *")
    monkeypatch.setenv("ASSETS_REFRESH_CRON", "0 7 * * 1-5")
    assert env_cron("ASSETS_REFRESH_CRON", "0 11 * * *") == "0 7 * * 1-5"

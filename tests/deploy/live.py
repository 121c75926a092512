"""A TradeOps instance exercised so that every series the dashboard and the alert rules read
exists: orders placed, refused and replayed, drift and an orphan reconciled, a TWAP slice
dispatched, quotes read and ingested by a real ``stream_quotes``, signals hydrated, validated
and served, the dispatcher and the trade stream registered. Shared by the metric-name check and
the real Prometheus test."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.promql import SYNTHETIC, Selector
from tests.helpers import place, step_up_of, token_client, wait_for

# Which sample names a family of each type exposes (prometheus_client's text format). No
# ``_created``: prometheus_client does not export it in multiprocess mode, which production runs.
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "info": ("_info",),
    "summary": ("", "_count", "_sum"),
    "unknown": ("",),
}


@dataclass
class Exposition:
    """What one /metrics page exposes: families by name with their type, and every sample."""

    families: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def parse(cls, text: str) -> Exposition:
        page = cls()
        for family in text_string_to_metric_families(text):
            page.families[family.name] = family.type
            for sample in family.samples:
                page.samples[sample.name].append(sample.labels)
        return page

    def problem(self, selector: Selector) -> str | None:
        """Why ``selector`` selects nothing on this page, or None when it selects a series."""
        name = selector.metric
        if name in SYNTHETIC:
            return None
        family = next(
            (
                (base, kind)
                for base, kind in self.families.items()
                if name in {base + suffix for suffix in SUFFIXES.get(kind, ("",))}
            ),
            None,
        )
        if family is None:
            return f"{name}: no such metric (families: a counter is queried as NAME_total, "
            "a histogram as NAME_bucket/_count/_sum)"
        matching = [labels for labels in self.samples[name] if _matches(selector, labels)]
        if not matching:
            return f"{name}{selector.matchers}: the metric exists but no series matches"
        return None


def _matches(selector: Selector, labels: dict[str, str]) -> bool:
    for label, (op, value) in selector.matchers.items():
        if label == "job":  # added by Prometheus at scrape time
            continue
        actual = labels.get(label, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def exercise(*, paper: Any, trader: Any, ops_admin: Any) -> None:
    """Drive every path that counts something (in this process: the web's registry)."""
    from orders.dispatch import SliceDispatcher, dispatcher_register
    from orders.stream import trade_stream_register
    from reconciliation.engine import reconciliation_run
    from signals.promotion import model_promote
    from tests.orders.twap_support import make_plan
    from tests.signals.support import activate_first, train

    # Orders: one sent, one replayed, one refused by the kill switch, one left resting.
    assert place(trader).status_code == 201
    assert place(trader).status_code == 200
    switch = {"action": "engage", "_selected_action": ["kill_switch"], "confirmed": "yes"}
    ops_admin.post("/admin/orders/tradingswitch/", {**switch, "reason": "metrics drill"})
    assert place(trader, qty=2).status_code == 503
    from orders.controls import trading_switch_set

    trading_switch_set(
        name="kill_switch",
        engaged=False,
        actor=ops_admin.user,
        reason="drill over",
        step_up=step_up_of(ops_admin.user, "trading_switch.release"),
    )
    # Fat-finger: a collar set on TSLA in the admin (audited) refuses a limit 50 % over the ask.
    from orders.models import RiskLimit

    row, _ = RiskLimit.objects.get_or_create(symbol="TSLA")
    collar = {"fat_finger_collar_pct": "0.10", "audit_reason": "metrics drill"}
    assert ops_admin.post(f"/admin/orders/risklimit/{row.pk}/change/", collar).status_code == 302
    refused = place(trader, symbol="TSLA", qty=1, type="limit", limit_price="300.00")
    assert refused.json()["error"]["code"] == "fat_finger", refused.json()
    resting = place(trader, type="limit", limit_price="50.00", time_in_force="gtc", qty=3)
    assert resting.status_code == 201, resting.json()
    # Drift: a fill nobody streamed, and an order nobody here placed (an orphan).
    paper.fill(resting.json()["broker_order_id"], qty=3, price="50.00", silent=True)
    paper.place_order(
        symbol="MSFT", side="sell", qty=1, type="limit", limit_price="999", time_in_force="gtc"
    )
    assert reconciliation_run(kind="manual").succeeded
    # A late stream event about the order reconciliation found filled: the CAS refuses it.
    from orders.updates import apply_order_update

    late = apply_order_update(
        resting.json()["client_order_id"],
        "new",
        0,
        None,
        timezone.now() - timedelta(days=1),
        "stream",
    )
    assert not late.applied
    # TWAP: a plan whose first slice is due, dispatched by a registered dispatcher.
    plan = make_plan(start=timezone.now() - timedelta(seconds=1), qty=2, interval_seconds=30)
    dispatcher = SliceDispatcher(batch=5, workers=1, poll_seconds=0.1, run=dispatcher_register())
    assert dispatcher.tick() >= 1, plan
    dispatcher.close()
    trade_stream_register()
    # The admin's Place order page: one order reviewed and placed by an operator.
    _place_manual_order(ops_admin)
    # Quotes: a read through QuoteClient's hops.
    assert trader.get("/api/v1/quotes/AAPL/latest").status_code == 200
    # Signals: a model live (sanity check), hydrated, a shadow validation, a signal served.
    activate_first(train("alpha"))
    model_promote(model=train("alpha", seed=99), actor="test", reason="metrics drill")
    assert token_client("alpha").get("/api/v1/signals").status_code == 200


def _place_manual_order(ops_admin: Any) -> None:
    import re

    from orders.strategies import manual_strategy_ensure

    manual_strategy_ensure()
    form = {
        "nonce": "live-metrics-drill-0001",
        "strategy": "manual",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "1",
        "type": "market",
        "time_in_force": "day",
    }
    review = ops_admin.post("/admin/orders/order/place/", {**form, "_review": "1"})
    token = re.search(r'name="review_token" value="([^"]*)"', review.content.decode()).group(1)
    placed = ops_admin.post(
        "/admin/orders/order/place/", {**form, "review_token": token, "_submit": "1"}
    )
    assert placed.status_code == 302, placed.content[:500]


def scrape(url: str) -> Exposition:
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return Exposition.parse(response.text)


def ingestor_scraped(url: str) -> Exposition:
    """The ingestor's own /metrics once it has written quotes to Redis."""

    def written() -> Exposition | None:
        try:
            text = requests.get(f"{url}/metrics", timeout=2).text
        except requests.RequestException:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "quotes_written_total" and sample.value > 0:
                    return Exposition.parse(text)
        return None

    return wait_for(written, timeout=30, interval=0.2)

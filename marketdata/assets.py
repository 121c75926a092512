"""The broker's asset list, cached in the database (``Asset``, ``AssetListState``).

- ``assets_refresh``: load the whole list through the broker seam (outside any transaction),
  then replace the cache in one transaction. Daily (a django-q2 schedule,
  ``ASSETS_REFRESH_CRON``), on demand (``manage.py sync_assets``), and on the first order when
  the cache was never loaded.
- ``asset_for_order``: what a pre-trade check asks (network only when needed).
- ``asset_cached``: what a TWAP slice is checked against right before it is sent (no network).

Fail closed: with no list ever loaded and the broker unreachable, nothing is judged
tradable (``AssetListUnavailable``). Once loaded, the list is used even while the broker is
down: assets rarely change, and the daily load and the broker's own refusal cover the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import CharField
from django.utils import timezone

from marketdata.models import Asset, AssetListState
from tradeops import metrics
from tradeops.broker import AssetReport, BrokerError, BrokerNotFound, get_broker
from tradeops.compiled import CompiledQuery

logger = logging.getLogger(__name__)

SYMBOL_MAX = Asset._meta.get_field("symbol").max_length  # an order's symbol is no longer
FIELDS = [
    "asset_id",
    "asset_class",
    "exchange",
    "name",
    "status",
    "tradable",
    "marginable",
    "shortable",
    "easy_to_borrow",
    "fractionable",
    "refreshed_at",
]


class AssetListUnavailable(Exception):
    """The asset list was never loaded and the broker cannot be asked for it now."""


@dataclass(frozen=True)
class AssetRefresh:
    loaded: int
    removed: int
    tradable: int


def _rank(report: AssetReport) -> tuple[bool, bool]:
    return (report.is_tradable, report.status == "active")


def best_per_symbol(reports: Iterable[AssetReport]) -> dict[str, AssetReport]:
    """One report per symbol. Alpaca can list a symbol twice (a tradable and a non-tradable
    entry); the tradable, active one is the one orders trade. Symbols longer than an order's
    symbol can be are left out: nothing could ever order them."""
    best: dict[str, AssetReport] = {}
    for report in reports:
        if len(report.symbol) > SYMBOL_MAX:
            continue
        kept = best.get(report.symbol)
        if kept is None or _rank(report) > _rank(kept):
            best[report.symbol] = report
    return best


def _row(report: AssetReport, now: datetime) -> Asset:
    return Asset(
        symbol=report.symbol,
        asset_id=report.asset_id,
        asset_class=report.asset_class[:16],
        exchange=report.exchange[:16],
        name=report.name[:200],
        status=report.status[:16],
        tradable=report.tradable,
        marginable=report.marginable,
        shortable=report.shortable,
        easy_to_borrow=report.easy_to_borrow,
        fractionable=report.fractionable,
        refreshed_at=now,
    )


def _state_locked() -> AssetListState:
    return AssetListState.objects.select_for_update().get_or_create(pk=1)[0]


def assets_refresh(*, now: datetime | None = None) -> AssetRefresh:
    """Load the broker's whole list and make the cache exactly that (assets it no longer
    lists are removed). Raises ``AssetListUnavailable`` (recorded on the state row) when the
    broker cannot be asked; the cache is then left as it was."""
    now = now or timezone.now()
    try:
        reports = get_broker().list_assets()  # never inside a transaction
    except BrokerError as exc:
        with transaction.atomic():
            state = _state_locked()
            state.last_attempt_at, state.last_error = now, exc.message[:2000]
            state.save(update_fields=["last_attempt_at", "last_error"])
        metrics.ASSET_REFRESHES.labels("failed").inc()
        logger.error("asset list not refreshed: %s", exc.message)
        raise AssetListUnavailable(exc.message) from exc
    best = best_per_symbol(reports)
    with transaction.atomic():
        Asset.objects.bulk_create(
            [_row(r, now) for r in best.values()],
            update_conflicts=True,
            unique_fields=["symbol"],
            update_fields=FIELDS,
            batch_size=1000,
        )
        # Rows this load did not write; a symbol looked up since ``now`` is newer: kept.
        removed, _ = Asset.objects.filter(refreshed_at__lt=now).delete()
        state = _state_locked()
        state.refreshed_at = state.last_attempt_at = now
        state.asset_count, state.last_error = len(best), ""
        state.save()
    metrics.ASSET_REFRESHES.labels("succeeded").inc()
    tradable = sum(r.is_tradable for r in best.values())
    logger.info("asset list: %d assets (%d tradable), %d removed", len(best), tradable, removed)
    return AssetRefresh(loaded=len(best), removed=removed, tradable=tradable)


@dataclass(frozen=True)
class AssetPreview:
    loaded: int
    lines: list[str]


def _tradability(tradable: bool, short: bool) -> str:
    return ("tradable" if tradable else "NOT tradable") + (", shortable" if short else "")


def assets_preview() -> AssetPreview:
    """What ``assets_refresh`` would change (``sync_assets --dry-run``); writes nothing."""
    try:
        best = best_per_symbol(get_broker().list_assets())
    except BrokerError as exc:
        raise AssetListUnavailable(exc.message) from exc
    cached = {a.symbol: a for a in Asset.objects.all()}
    lines = [f"remove {s} (no longer listed)" for s in sorted(set(cached) - set(best))]
    for symbol, report in sorted(best.items()):
        row = cached.get(symbol)
        new = _tradability(report.is_tradable, report.can_open_short)
        if row is None:
            lines.append(f"add    {symbol} ({new})")
        elif (old := _tradability(row.is_tradable, row.can_open_short)) != new:
            lines.append(f"change {symbol}: {old} -> {new}")
    return AssetPreview(loaded=len(best), lines=lines)


def _list_loaded() -> bool:
    return AssetListState.objects.filter(pk=1, refreshed_at__isnull=False).exists()


def asset_cached(*, symbol: str) -> Asset | None:
    """The cached asset, None if the loaded list does not have it. No network; raises
    ``AssetListUnavailable`` if no list was ever loaded."""
    cached = Asset.objects.filter(symbol=symbol).first()  # one query per slice, usually
    if cached is None and not _list_loaded():
        raise AssetListUnavailable("the asset list has never been loaded")
    return cached


# Read for every order (compiled once: tradeops.compiled).
_ASSET = CompiledQuery(
    lambda symbol: Asset.objects.filter(symbol=symbol)[:1], model=True, symbol=CharField()
)


def asset_for_order(*, symbol: str) -> Asset | None:
    """The asset an order for ``symbol`` would trade, None if the broker does not list it.

    Asks the broker only when the cache cannot answer: the whole list when it was never
    loaded (``AssetListUnavailable`` if that fails), one lookup for a symbol the list lacks
    (a listing newer than the last load; if the broker cannot be asked, the list's answer
    stands: not listed)."""
    # The symbol's row first: a row exists only once a list was loaded, so the common case
    # costs one query; the "never loaded" check runs only when the row is missing.
    cached = _ASSET.first(symbol=symbol)
    if cached is not None:
        return cached
    if not _list_loaded():
        assets_refresh()
        cached = Asset.objects.filter(symbol=symbol).first()
        if cached is not None:
            return cached
    try:
        report = get_broker().get_asset(symbol)
    except BrokerNotFound:
        return None
    except BrokerError as exc:
        logger.warning("asset %s not in the list and not looked up: %s", symbol, exc.message)
        return None
    if report.symbol != symbol:
        return None
    row, _ = Asset.objects.update_or_create(
        symbol=symbol,
        defaults={f: getattr(_row(report, timezone.now()), f) for f in FIELDS},
    )
    logger.info("asset %s added to the list (%s)", symbol, row)
    return row

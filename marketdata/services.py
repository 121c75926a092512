"""Market-data writes: the ADV behind the TWAP liquidity cap (plan §5), and the quote
ingestor's heartbeat row. Network calls happen here, outside any transaction; the slicer
itself stays pure."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, CharField, DateTimeField, F, IntegerField, Value, When

from marketdata.models import AverageDailyVolume, QuoteIngestor
from marketdata.quoting import IngestorStatus
from tradeops.broker import BrokerError, get_broker
from tradeops.compiled import CompiledQuery

logger = logging.getLogger(__name__)


class AdvUnavailable(Exception):
    """No ADV could be computed (broker down, no bars)."""


@dataclass(frozen=True)
class LiquidityConstraint:
    """What a plan records about liquidity. ``max_slice_qty`` None means no cap."""

    max_slice_qty: int | None
    adv: int | None = None
    pct: Decimal | None = None
    source: str = ""  # bars | cache | disabled | unavailable
    computed_at: datetime | None = None
    note: str = ""


def max_slice_qty_for(*, adv: int, pct: Decimal) -> int:
    """``max(1, int(ADV * pct))``: a slice of at least one share whatever the liquidity."""
    return max(1, int(Decimal(adv) * pct))


def adv_compute(*, symbol: str, now: datetime) -> AverageDailyVolume:
    """Fetch daily bars through the broker seam and store their mean volume (the cache row)."""
    lookback = settings.ADV_LOOKBACK_DAYS
    # Calendar days enough to hold `lookback` trading days, weekends and holidays included.
    start = now - timedelta(days=lookback * 2 + 10)
    try:
        bars = get_broker().get_daily_bars(symbol, start=start, end=now)
    except BrokerError as exc:
        raise AdvUnavailable(f"daily bars for {symbol} unavailable: {exc.message}") from exc
    bars = [b for b in bars if b.volume > 0][-lookback:]
    if not bars:
        raise AdvUnavailable(f"no daily bars with volume for {symbol}")
    row, _ = AverageDailyVolume.objects.update_or_create(
        symbol=symbol,
        defaults={
            "adv": sum(b.volume for b in bars) // len(bars),
            "lookback_days": lookback,
            "bars_used": len(bars),
            "last_bar_at": bars[-1].timestamp,
            "source": f"daily bars ({settings.ALPACA_DATA_FEED})",
            "computed_at": now,
        },
    )
    return row


# Read for every order by the fat-finger check (compiled once: tradeops.compiled).
_ADV_CACHED = CompiledQuery(
    lambda symbol, lookback_days, fresh_after: AverageDailyVolume.objects.filter(
        symbol=symbol, lookback_days=lookback_days, computed_at__gt=fresh_after
    ).order_by("pk")[:1],
    model=True,
    symbol=CharField(),
    lookback_days=IntegerField(),
    fresh_after=DateTimeField(),
)


def adv_get(*, symbol: str, now: datetime) -> tuple[AverageDailyVolume, bool]:
    """The symbol's ADV and whether it came from the cache (younger than ADV_CACHE_SECONDS,
    same lookback); otherwise computed afresh. Raises AdvUnavailable."""
    fresh_after = now - timedelta(seconds=settings.ADV_CACHE_SECONDS)
    cached = _ADV_CACHED.first(
        symbol=symbol, lookback_days=settings.ADV_LOOKBACK_DAYS, fresh_after=fresh_after
    )
    if cached is not None:
        return cached, True
    return adv_compute(symbol=symbol, now=now), False


def liquidity_constraint(*, symbol: str, now: datetime) -> LiquidityConstraint:
    """The slice-size cap for a new TWAP plan on ``symbol``.

    Failure to get an ADV never blocks the plan (fix plan §5): it is sliced without a cap, a
    warning is logged, and the reason is recorded on the plan for the operator.
    """
    if not settings.LIQUIDITY_CHECK_ENABLED:
        return LiquidityConstraint(None, source="disabled", note="LIQUIDITY_CHECK_ENABLED is off")
    pct = settings.MAX_SLICE_PCT_OF_ADV
    try:
        row, cached = adv_get(symbol=symbol, now=now)
    except AdvUnavailable as exc:
        logger.warning("no liquidity cap for %s: %s", symbol, exc)
        return LiquidityConstraint(None, pct=pct, source="unavailable", note=f"no cap: {exc}")
    return LiquidityConstraint(
        max_slice_qty=max_slice_qty_for(adv=row.adv, pct=pct),
        adv=row.adv,
        pct=pct,
        source="cache" if cached else "bars",
        computed_at=row.computed_at,
        note=f"ADV{row.lookback_days} from {row.bars_used} {row.source}",
    )


# --- the quote ingestor's heartbeat ----------------------------------------------------------
def quote_ingestor_register(*, fallback_url: str, now: datetime) -> QuoteIngestor:
    """Record a start of ``stream_quotes`` (one row per process start)."""
    return QuoteIngestor.objects.create(
        hostname=socket.gethostname()[:255],
        pid=os.getpid(),
        started_at=now,
        heartbeat_at=now,
        state_since=now,
        fallback_url=fallback_url[:200],
    )


def quote_ingestor_heartbeat(*, ingestor_id: int, status: IngestorStatus, now: datetime) -> None:
    """Publish the ingestor's state and counters; ``state_since`` moves only when the state
    changes (one conditional UPDATE, no read)."""
    QuoteIngestor.objects.filter(pk=ingestor_id).update(
        heartbeat_at=now,
        state_since=Case(When(state=status.state, then=F("state_since")), default=Value(now)),
        state=status.state,
        detail=status.detail[:300],
        symbols=status.symbols,
        quotes_received=status.quotes_received,
        quotes_written=status.quotes_written,
        quotes_buffered=status.quotes_buffered,
        redis_errors=status.redis_errors,
        buffer_depth=status.buffer_depth,
        last_quote_at=status.last_quote_at,
    )


def quote_ingestor_stop(*, ingestor_id: int, now: datetime) -> None:
    QuoteIngestor.objects.filter(pk=ingestor_id).update(stopped_at=now, heartbeat_at=now)

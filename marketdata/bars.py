"""The daily bars store: fetch what is missing from the broker's market data, upsert it, and
read it back as plain floats for computations (features, ADV).

Network calls happen here, outside any transaction: one bars request per batch of symbols
(alpaca-py follows ``next_page_token`` itself), then one short upsert per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from marketdata.calendar import sessions_finished
from marketdata.models import DailyBar
from tradeops.broker import BarReport, BrokerError, SessionReport, get_broker

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import pandas as pd

logger = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
BAR_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]
UPDATE_FIELDS = ["open", "high", "low", "close", "volume", "vwap", "trade_count", "fetched_at"]

Progress = Callable[[int, int, str], None]  # (symbols done, symbols total, note)


@dataclass
class SyncReport:
    """What one ``bars_sync`` did. ``failed`` maps a symbol to why some of its sessions have
    no bar (it is never fatal: the other symbols are stored)."""

    sessions: list[date]
    symbols: int = 0
    up_to_date: int = 0
    bars_written: int = 0
    requests: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        span = f"{self.sessions[0]}..{self.sessions[-1]}" if self.sessions else "no sessions"
        text = (
            f"{self.symbols} symbols over {len(self.sessions)} trading days ({span}): "
            f"{self.up_to_date} already complete, {self.bars_written} bars written in "
            f"{self.requests} requests, {len(self.failed)} incomplete"
        )
        if self.failed:
            text += " (" + "; ".join(f"{s}: {r}" for s, r in sorted(self.failed.items())) + ")"
        return text


def _missing(symbols: Sequence[str], sessions: Sequence[date]) -> dict[str, list[date]]:
    """Per symbol, the sessions without a stored bar. One counting query finds the complete
    symbols (the usual case); only the others' dates are read."""
    window = DailyBar.objects.filter(
        symbol__in=symbols, date__gte=sessions[0], date__lte=sessions[-1]
    )
    counts = dict(window.values_list("symbol").annotate(n=Count("id")).order_by())
    incomplete = [s for s in symbols if counts.get(s, 0) < len(sessions)]
    have = set(window.filter(symbol__in=incomplete).values_list("symbol", "date"))
    out = {}
    for symbol in incomplete:
        gaps = [d for d in sessions if (symbol, d) not in have]
        if gaps:
            out[symbol] = gaps
    return out


def _batches(missing: dict[str, list[date]], size: int) -> list[list[str]]:
    """Symbols grouped so that those missing the same span share a request."""
    ordered = sorted(missing, key=lambda s: (missing[s][0], s))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _bar_row(symbol: str, bar: BarReport, now: datetime) -> DailyBar:
    return DailyBar(
        symbol=symbol,
        date=bar.timestamp.astimezone(NEW_YORK).date(),
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        vwap=bar.vwap,
        trade_count=bar.trade_count,
        fetched_at=now,
    )


def bars_upsert(rows: Iterable[DailyBar]) -> int:
    """Insert or replace bars by (symbol, date): running it twice changes nothing."""
    rows = list(rows)
    with transaction.atomic():
        DailyBar.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["symbol", "date"],
            update_fields=UPDATE_FIELDS,
            batch_size=2000,
        )
    return len(rows)


def bars_sync(
    *,
    symbols: Sequence[str],
    days: int,
    now: datetime | None = None,
    end: date | None = None,
    sessions: Sequence[SessionReport] | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
) -> SyncReport:
    """Make sure the last ``days`` finished trading days (by the broker's calendar) of every
    symbol are stored, fetching only symbols with gaps, from their first gap on.

    Raises BrokerError only when the calendar itself cannot be read; a failed bars request
    marks that batch's symbols as failed and the sync goes on."""
    now = now or timezone.now()
    symbols = sorted({s.strip().upper() for s in symbols if s.strip()})
    if sessions is None:
        sessions = sessions_finished(days=days, now=now, end=end)
    by_date = {s.date: s for s in sessions}
    report = SyncReport(sessions=sorted(by_date), symbols=len(symbols))
    if not symbols or not sessions:
        return report
    missing = _missing(symbols, report.sessions)
    report.up_to_date = len(symbols) - len(missing)
    done = report.up_to_date
    if progress:
        progress(done, len(symbols), f"{len(missing)} symbols have gaps")
    for batch in _batches(missing, batch_size or settings.BARS_SYNC_BATCH_SYMBOLS):
        first = min(missing[s][0] for s in batch)
        last = max(missing[s][-1] for s in batch)
        start = datetime.combine(first, time(0), tzinfo=NEW_YORK).astimezone(UTC)
        try:
            report.requests += 1
            fetched = get_broker().get_daily_bars_many(batch, start=start, end=by_date[last].close)
        except BrokerError as exc:
            logger.warning("daily bars for %s unavailable: %s", ",".join(batch), exc.message)
            report.failed.update({s: f"broker: {exc.message}" for s in batch})
        else:
            rows = [
                _bar_row(symbol, bar, now)
                for symbol in batch
                for bar in fetched.get(symbol, [])
                if bar.timestamp.astimezone(NEW_YORK).date() in by_date
            ]
            report.bars_written += bars_upsert(rows)
            got = {(r.symbol, r.date) for r in rows}
            for symbol in batch:
                still = [d for d in missing[symbol] if (symbol, d) not in got]
                if still:
                    report.failed[symbol] = (
                        "no bars"
                        if len(still) == len(report.sessions)
                        else f"no bar for {len(still)} of {len(report.sessions)} trading days "
                        f"(first {still[0]})"
                    )
        done += len(batch)
        if progress:
            progress(done, len(symbols), f"{report.bars_written} bars written")
    return report


def bars_frame(*, symbols: Sequence[str], since: date, until: date) -> pd.DataFrame:
    """Stored bars of ``symbols`` with since <= date <= until as a frame of floats (columns
    BAR_COLUMNS), sorted by symbol then date. Prices are cast to double in SQL (computations
    on them are statistics, not money) and read with a plain cursor: hydration reads a
    hundred thousand rows, and model instances would cost seconds."""
    import pandas as pd

    symbols = list(symbols)
    if not symbols:
        return pd.DataFrame({name: [] for name in BAR_COLUMNS})
    table = connection.ops.quote_name(DailyBar._meta.db_table)
    marks = ", ".join(["%s"] * len(symbols))
    prices = ", ".join(
        f"CAST({name} AS DOUBLE PRECISION)" for name in ("open", "high", "low", "close")
    )
    sql = (
        f"SELECT symbol, date, {prices}, volume FROM {table} "  # noqa: S608 - names are ours
        f"WHERE symbol IN ({marks}) AND date >= %s AND date <= %s ORDER BY symbol, date"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*symbols, since, until])
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=BAR_COLUMNS)
    if len(frame) and isinstance(frame["date"].iloc[0], str):  # SQLite hands back text
        frame["date"] = [date.fromisoformat(d) for d in frame["date"]]
    frame["symbol"] = frame["symbol"].astype(object)
    for name in ("open", "high", "low", "close", "volume"):
        frame[name] = frame[name].astype("float64")
    return frame

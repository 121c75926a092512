"""Hydration: fill the Redis feature cache with the last FEATURE_HYDRATION_DAYS trading days
of features for SIGNAL_UNIVERSE, from the stored daily bars (missing bars are synced first).

It runs as a django-q2 job (cluster start, the daily schedule, a refill when the cache is found
empty, a first activation) or by ``manage.py hydrate_features``; never inside a web request or
a process start. One run at a time across all nodes (PostgreSQL advisory lock). The
``HydrationRun`` row is what every process reads: its progress, per-symbol failures (never
fatal to the others), and the dates it cached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.utils import timezone

from marketdata.bars import bars_frame, bars_sync
from marketdata.calendar import sessions_finished
from marketdata.models import DailyBar
from signals import metrics
from signals.cache import FeatureCacheUnavailable, cache_write, redis_client
from signals.features import FEATURE_SET_VERSION, HISTORY_BARS, features_compute
from signals.models import HydrationRun, ModelVersion
from tradeops.broker import BrokerError
from tradeops.locks import advisory_lock

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import pandas as pd

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x7369_676E_6879_6472  # "signhydr"
CHUNK_SYMBOLS = 50  # symbols computed and written per step (progress and deadline checks)


class HydrationTimeout(Exception):
    pass


def skip_reason() -> str:
    """Why hydration would be pointless now ("" when it should run)."""
    if not settings.FEATURE_HYDRATION_ENABLED:
        return "FEATURE_HYDRATION_ENABLED is off"
    if not settings.REDIS_URL:
        return "Redis is not configured (REDIS_URL is empty)"
    if not ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
        return "no model is active"
    if not settings.SIGNAL_UNIVERSE:
        return "SIGNAL_UNIVERSE is empty"
    return ""


def _finish(run: HydrationRun, status: str, **fields: object) -> HydrationRun:
    for name, value in {"status": status, "finished_at": timezone.now(), **fields}.items():
        setattr(run, name, value)
    run.save()
    metrics.HYDRATION_RUNS.labels(run.trigger, status).inc()
    if run.duration_seconds is not None and status != HydrationRun.Status.SKIPPED:
        metrics.HYDRATION_SECONDS.observe(run.duration_seconds)
    return run


def hydration_run(
    *,
    trigger: str,
    days: int | None = None,
    symbols: Sequence[str] | None = None,
    now: datetime | None = None,
) -> HydrationRun | None:
    """One hydration. Returns its run (``skipped`` with the reason when it should not run),
    or None when another node's run holds the lock (that run fills the same cache)."""
    days = days or settings.FEATURE_HYDRATION_DAYS
    symbols = sorted(set(symbols or settings.SIGNAL_UNIVERSE))
    reason = skip_reason()
    if reason:
        logger.info("feature hydration (%s) skipped: %s", trigger, reason)
        run = HydrationRun.objects.create(
            trigger=trigger, feature_set_version=FEATURE_SET_VERSION, days=days
        )
        return _finish(run, HydrationRun.Status.SKIPPED, reason=reason)
    with advisory_lock(ADVISORY_LOCK_KEY, name="feature hydration") as acquired:
        if not acquired:
            logger.info("feature hydration (%s) not started: another run holds the lock", trigger)
            return None
        # The lock was free, so any run still marked running lost its process.
        HydrationRun.objects.filter(status=HydrationRun.Status.RUNNING).update(
            status=HydrationRun.Status.FAILED,
            finished_at=timezone.now(),
            reason="abandoned: its process stopped before finishing",
        )
        run = HydrationRun.objects.create(
            trigger=trigger,
            feature_set_version=FEATURE_SET_VERSION,
            days=days,
            symbols_total=len(symbols),
        )
        logger.info(
            "Hydrating feature cache with %d days of history for %d symbols...",
            days,
            len(symbols),
        )
        try:
            return _hydrate(run, symbols=symbols, days=days, now=now or timezone.now())
        except FeatureCacheUnavailable as exc:
            logger.error("feature hydration %s failed: %s", run.pk, exc)
            return _finish(run, HydrationRun.Status.FAILED, reason=str(exc))
        except HydrationTimeout as exc:
            logger.error("feature hydration %s timed out: %s", run.pk, exc)
            return _finish(run, HydrationRun.Status.FAILED, reason=str(exc))
        except Exception as exc:  # catch, record, release: never leave a run "running"
            logger.exception("feature hydration %s crashed", run.pk)
            return _finish(
                run, HydrationRun.Status.FAILED, reason=f"{exc.__class__.__name__}: {exc}"
            )


def _trading_days(symbols: Sequence[str], count: int, now: datetime) -> tuple[list, str]:
    """The last ``count`` finished sessions (the broker's calendar), and a note. With the
    calendar unavailable, the dates of the stored bars stand in (they are trading days)."""
    try:
        sessions = sessions_finished(days=count, now=now)
    except BrokerError as exc:
        stored = (
            DailyBar.objects.filter(symbol__in=symbols)
            .order_by("-date")
            .values_list("date", flat=True)
            .distinct()[:count]
        )
        note = f"broker calendar unavailable ({exc.message}): used the stored bars' dates"
        logger.warning("feature hydration: %s", note)
        return sorted(stored), note
    return sessions, ""


def _hydrate(
    run: HydrationRun, *, symbols: Sequence[str], days: int, now: datetime
) -> HydrationRun:
    import pandas as pd

    deadline = time.monotonic() + settings.FEATURE_HYDRATION_TIMEOUT_SECONDS
    _ping()
    started = time.monotonic()
    sessions, note = _trading_days(symbols, days + HISTORY_BARS - 1, now)
    sync_failures: dict[str, str] = {}
    if sessions and not note:
        report = bars_sync(symbols=symbols, days=len(sessions), sessions=sessions, now=now)
        sync_failures = report.failed
        sessions = [s.date for s in sessions]
    if not sessions:
        return _finish(run, HydrationRun.Status.FAILED, reason=note or "no trading days")
    feature_dates = set(sessions[-days:])
    as_of = sessions[-1]
    bars = bars_frame(symbols=symbols, since=sessions[0], until=as_of)
    run.bars_seconds = time.monotonic() - started
    compute_seconds = 0.0
    ok: set[str] = set()
    parts = []
    for start in range(0, len(symbols), CHUNK_SYMBOLS):
        if time.monotonic() > deadline:
            raise HydrationTimeout(
                f"timed out after {settings.FEATURE_HYDRATION_TIMEOUT_SECONDS}s at "
                f"{start}/{len(symbols)} symbols"
            )
        chunk = symbols[start : start + CHUNK_SYMBOLS]
        t0 = time.monotonic()
        features = features_compute(bars[bars["symbol"].isin(chunk)])
        parts.append(features[features["date"].isin(feature_dates)])
        compute_seconds += time.monotonic() - t0
        ok.update(parts[-1].loc[parts[-1]["date"] == as_of, "symbol"].tolist())
        HydrationRun.objects.filter(pk=run.pk).update(symbols_done=start + len(chunk))
    # One write of every symbol per date (pipelined), after the computation: a few hundred
    # commands instead of one per date and chunk.
    t1 = time.monotonic()
    if parts:
        cache_write(
            version=FEATURE_SET_VERSION,
            features=pd.concat(parts, ignore_index=True),
            ttl_seconds=settings.FEATURE_CACHE_TTL_SECONDS,
        )
    write_seconds = time.monotonic() - t1
    failures = _failures(symbols, ok, bars, as_of, sync_failures)
    metrics.HYDRATION_SYMBOLS.labels("ok").inc(len(ok))
    metrics.HYDRATION_SYMBOLS.labels("failed").inc(len(failures))
    for symbol, why in sorted(failures.items()):
        logger.warning("feature hydration: %s skipped: %s", symbol, why)
    fields = {
        "symbols_done": len(symbols),
        "symbols_ok": len(ok),
        "symbols_failed": len(failures),
        "failures": failures,
        "compute_seconds": compute_seconds,
        "write_seconds": write_seconds,
        "reason": note,
    }
    if not ok:
        fields["reason"] = "; ".join(filter(None, [note, f"no symbol has features for {as_of}"]))
        return _finish(run, HydrationRun.Status.FAILED, **fields)
    ordered = sorted(feature_dates)
    logger.info(
        "feature cache hydrated: %d/%d symbols, %d days up to %s (%d failed)",
        len(ok),
        len(symbols),
        len(ordered),
        as_of,
        len(failures),
    )
    return _finish(
        run,
        HydrationRun.Status.SUCCEEDED,
        as_of=as_of,
        first_date=ordered[0],
        dates=[d.isoformat() for d in ordered],
        **fields,
    )


def _ping() -> None:
    client = redis_client()
    try:
        client.ping()
    except redis.RedisError as exc:
        raise FeatureCacheUnavailable(f"feature cache unavailable: {exc}") from exc


def _failures(
    symbols: Sequence[str], ok: set[str], bars: pd.DataFrame, as_of: date, sync: dict[str, str]
) -> dict[str, str]:
    """Why each symbol without features for ``as_of`` has none."""
    counts = bars["symbol"].value_counts().to_dict()
    last = bars.groupby("symbol")["date"].max().to_dict()
    out = {}
    for symbol in symbols:
        if symbol in ok:
            continue
        have = counts.get(symbol, 0)
        if have == 0:
            why = "no daily bars"
        elif last[symbol] < as_of:
            why = f"no bar for {as_of} (last bar {last[symbol]})"
        else:
            why = f"only {have} bars: features need {HISTORY_BARS}"
        out[symbol] = f"{why}; sync: {sync[symbol]}" if symbol in sync else why
    return out


def hydration_latest_good() -> HydrationRun | None:
    """The run whose dates the API serves: the latest succeeded one of this feature set."""
    return (
        HydrationRun.objects.filter(
            status=HydrationRun.Status.SUCCEEDED, feature_set_version=FEATURE_SET_VERSION
        )
        .order_by("-started_at", "-id")
        .first()
    )

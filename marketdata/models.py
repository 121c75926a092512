"""Market data kept in the database."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AverageDailyVolume(models.Model):
    """A symbol's average daily volume over the last ``lookback_days`` finished daily bars, as
    last fetched from the broker's market data. A cache (``ADV_CACHE_SECONDS``): TWAP plans
    copy the figure they used, so refreshing it never changes an existing plan."""

    symbol = models.CharField(max_length=16, unique=True)
    adv = models.PositiveBigIntegerField(help_text="Mean daily volume, shares")
    lookback_days = models.PositiveSmallIntegerField()
    bars_used = models.PositiveSmallIntegerField()
    last_bar_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=32, help_text="Where the bars came from (feed)")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["symbol"]
        verbose_name = "average daily volume"
        verbose_name_plural = "average daily volumes"

    def __str__(self) -> str:
        return f"ADV{self.lookback_days} {self.symbol} = {self.adv}"


class DailyBar(models.Model):
    """One finished daily bar of a symbol as the broker's market data served it. Prices are
    Decimal (4 dp, like every price here); ``date`` is the New York trading day. Rows are
    upserted by ``sync_bars`` (a corrected bar replaces the old one) and only read otherwise."""

    symbol = models.CharField(max_length=16)
    date = models.DateField(help_text="Trading day (New York)")
    open = models.DecimalField(max_digits=14, decimal_places=4)
    high = models.DecimalField(max_digits=14, decimal_places=4)
    low = models.DecimalField(max_digits=14, decimal_places=4)
    close = models.DecimalField(max_digits=14, decimal_places=4)
    volume = models.PositiveBigIntegerField()
    vwap = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    trade_count = models.PositiveBigIntegerField(null=True, blank=True)
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["symbol", "date"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "date"], name="daily_bar_one_per_day"),
            models.CheckConstraint(
                condition=models.Q(low__lte=models.F("high")), name="daily_bar_low_le_high"
            ),
        ]
        indexes = [models.Index(fields=["date", "symbol"], name="daily_bar_date_symbol")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.date} close {self.close}"


class QuoteIngestor(models.Model):
    """One start of ``stream_quotes`` and its heartbeat: state, counters, symbols.

    Written by the ingestor every QUOTE_HEARTBEAT_SECONDS and at once on a state change, so
    the web (health, admin) sees the ingestor even while Redis is down, and notices a dead one
    (heartbeat older than QUOTE_MAX_AGE_SECONDS) without reaching its fallback endpoint."""

    class State(models.TextChoices):
        STREAMING = "streaming"
        BUFFERING = "buffering"
        DISCONNECTED = "disconnected"
        IDLE = "idle"

    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DISCONNECTED)
    state_since = models.DateTimeField(default=timezone.now)
    detail = models.CharField(max_length=300, blank=True, help_text="Why (e.g. the Redis error)")
    fallback_url = models.CharField(max_length=200, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    quotes_received = models.PositiveBigIntegerField(default=0)
    quotes_written = models.PositiveBigIntegerField(default=0)
    quotes_buffered = models.PositiveBigIntegerField(default=0)
    redis_errors = models.PositiveBigIntegerField(default=0)
    buffer_depth = models.PositiveIntegerField(default=0)
    last_quote_at = models.DateTimeField(
        null=True, blank=True, help_text="When the newest quote was received"
    )

    class Meta:
        ordering = ["-heartbeat_at"]
        indexes = [models.Index(fields=["-heartbeat_at"], name="quoteingestor_recent")]

    def __str__(self) -> str:
        return f"stream_quotes {self.hostname}:{self.pid} ({self.state})"


class Asset(models.Model):
    """One asset of the broker's list as last loaded (``marketdata.assets``): what the
    pre-trade checks read to refuse unknown, inactive or halted symbols (``unknown_symbol``)
    and short sales of hard-to-borrow ones (``not_shortable``), and what TWAP slices are
    checked against right before they are sent. Loaded in full daily and on demand; a symbol
    missing from it is looked up once (a listing newer than the last load) and added."""

    symbol = models.CharField(max_length=16, unique=True)
    asset_id = models.CharField(max_length=64, help_text="The broker's asset id")
    asset_class = models.CharField(max_length=16)
    exchange = models.CharField(max_length=16, blank=True)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, help_text="active or inactive")
    tradable = models.BooleanField()
    marginable = models.BooleanField(default=False)
    shortable = models.BooleanField()
    easy_to_borrow = models.BooleanField()
    fractionable = models.BooleanField(default=False)
    refreshed_at = models.DateTimeField(help_text="When the broker last said so")

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return f"{self.symbol} ({self.status}{'' if self.tradable else ', not tradable'})"

    @property
    def is_tradable(self) -> bool:
        return self.status == "active" and self.tradable

    @property
    def can_open_short(self) -> bool:
        # Alpaca opens short positions only in shortable, easy-to-borrow securities.
        return self.shortable and self.easy_to_borrow

    @property
    def untradable_reason(self) -> str:
        return "inactive" if self.status != "active" else "not tradable"


class AssetListState(models.Model):
    """One row (pk=1): when the whole asset list was last loaded. Until a load has succeeded
    nothing is known about any symbol, so orders are refused (503) while the broker cannot be
    asked; once loaded, the list is used even while the broker is down."""

    refreshed_at = models.DateTimeField(null=True, blank=True, help_text="Last full load")
    asset_count = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "asset list state"

    def __str__(self) -> str:
        return f"asset list ({self.asset_count} assets, loaded {self.refreshed_at or 'never'})"

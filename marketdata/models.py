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

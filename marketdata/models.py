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

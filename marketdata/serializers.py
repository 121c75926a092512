"""Quote API output."""

from __future__ import annotations

from rest_framework import serializers

from marketdata.quoting import SOURCES


class QuoteSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    bid = serializers.DecimalField(max_digits=16, decimal_places=4)
    ask = serializers.DecimalField(max_digits=16, decimal_places=4)
    bid_size = serializers.IntegerField()
    ask_size = serializers.IntegerField()
    mid = serializers.DecimalField(max_digits=16, decimal_places=4)
    timestamp = serializers.DateTimeField(help_text="The broker's quote time (UTC)")
    age_seconds = serializers.FloatField(help_text="Age when read (never above the max age)")
    source = serializers.ChoiceField(
        choices=SOURCES, help_text="redis, buffer (the ingestor's fallback endpoint) or broker"
    )

"""Signal and model API input/output. Query parameters follow the one rule of every API
query (``tradeops.api_fields.QueryFilterSerializer``): an unknown or blank parameter, a
non-integer count or a malformed date is a 400, never ignored."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from signals.models import ModelVersion, ShadowValidation
from tradeops.api_fields import QueryFilterSerializer

MAX_N = 10_000


@extend_schema_field(OpenApiTypes.INT)
class CountField(serializers.Field):
    """A whole number 0..10000 written as digits: ``2.0``, ``-1`` or ``two`` are refused."""

    default_error_messages = {"invalid": "Must be a whole number between 0 and {high}."}

    def to_internal_value(self, data: Any) -> int:
        # ASCII digits only: "\d" also matches other scripts' digits (Arabic-Indic ones...).
        text = data if isinstance(data, str) else ""
        if not re.fullmatch(r"[0-9]{1,5}", text) or int(text) > MAX_N:
            self.fail("invalid", high=MAX_N)
        return int(text)

    def to_representation(self, value: int) -> int:
        return value


class SignalQuerySerializer(QueryFilterSerializer):
    date = serializers.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        help_text="Feature date (a cached trading day, YYYY-MM-DD); default the latest.",
    )
    top_n = CountField(required=False, help_text="Names with weight +1/top_n (SIGNAL_TOP_N)")
    bottom_n = CountField(
        required=False, help_text="Names with weight -1/bottom_n (SIGNAL_BOTTOM_N)"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("top_n", settings.SIGNAL_TOP_N)
        attrs.setdefault("bottom_n", settings.SIGNAL_BOTTOM_N)
        return attrs


class ModelRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


class SignalSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    score = serializers.FloatField(help_text="The model's output (scale is the model's own)")
    rank = serializers.IntegerField(help_text="1 = highest score")
    target_weight = serializers.FloatField(help_text="+1/top_n, -1/bottom_n or 0")


class MissingSymbolSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    reason = serializers.CharField()


class SignalsResponseSerializer(serializers.Serializer):
    model = ModelRefSerializer()
    as_of = serializers.DateField(help_text="Date of the features scored")
    generated_at = serializers.DateTimeField()
    latest_trading_day = serializers.DateField(
        allow_null=True, help_text="Latest finished session (broker calendar); null if unknown"
    )
    stale = serializers.BooleanField(
        allow_null=True, help_text="True when as_of is older than latest_trading_day"
    )
    signals = SignalSerializer(many=True)
    missing = MissingSymbolSerializer(
        many=True, help_text="Universe symbols without features for as_of, and why"
    )


class ValidationSummarySerializer(serializers.ModelSerializer):
    baseline = serializers.SerializerMethodField()

    class Meta:
        model = ShadowValidation
        fields = [
            "id",
            "kind",
            "status",
            "outcome",
            "baseline",
            "requested_by",
            "requested_at",
            "finished_at",
            "min_correlation",
            "max_divergence",
            "sample_source",
            "n_samples",
            "n_dates",
            "spearman_mean",
            "spearman_min",
            "divergence",
            "pearson",
            "sign_change_rate",
            "old_min",
            "old_max",
            "new_min",
            "new_max",
            "finite",
            "non_constant",
            "reasons",
            "error_text",
        ]
        read_only_fields = fields

    def get_baseline(self, obj: ShadowValidation) -> str | None:
        return obj.baseline.label if obj.baseline_id else None


class ModelVersionSerializer(serializers.ModelSerializer):
    latest_validation = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "version",
            "status",
            "artifact_sha256",
            "feature_set_version",
            "training_start",
            "training_end",
            "training_rows",
            "created_by",
            "created_at",
            "status_changed_by",
            "status_changed_at",
            "status_reason",
            "activated_at",
            "latest_validation",
        ]
        read_only_fields = fields

    @extend_schema_field(ValidationSummarySerializer(allow_null=True))
    def get_latest_validation(self, obj: ModelVersion) -> dict[str, Any] | None:
        latest = obj.latest_validations[0] if obj.latest_validations else None
        return ValidationSummarySerializer(latest).data if latest else None


class ModelFilterSerializer(QueryFilterSerializer):
    name = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]{0,63}$", required=False)
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices, required=False)

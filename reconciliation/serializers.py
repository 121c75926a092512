from __future__ import annotations

from rest_framework import serializers

from reconciliation.models import OrphanOrder, Quarantine, ReconciliationRun
from tradeops.api_fields import (
    QueryBooleanField,
    QueryFilterSerializer,
    ReasonField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    SymbolField,
)


class RunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ReconciliationRun
        fields = [
            "id",
            "kind",
            "status",
            "dry_run",
            "started_at",
            "finished_at",
            "duration_seconds",
            "orders_checked",
            "orders_updated",
            "fills_corrected",
            "unconfirmed_resolved",
            "marked_failed",
            "orphans_found",
            "conflicts_skipped",
            "position_mismatches",
            "broker_calls",
            "errors",
            "error_text",
            "high_water_mark_before",
            "high_water_mark_after",
        ]
        read_only_fields = fields


class GateSerializer(serializers.Serializer):
    open = serializers.BooleanField()
    reason = serializers.CharField()
    by_override = serializers.BooleanField()


class StatusSerializer(serializers.Serializer):
    gate = GateSerializer()
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_process_start_at = serializers.DateTimeField(allow_null=True)
    last_process_start_kind = serializers.CharField()
    high_water_mark = serializers.DateTimeField(allow_null=True)
    override_active = serializers.BooleanField()
    override_reason = serializers.CharField()
    override_by = serializers.CharField()
    override_at = serializers.DateTimeField(allow_null=True)
    last_run = RunSerializer(allow_null=True)
    max_age_seconds = serializers.IntegerField()
    interval_seconds = serializers.IntegerField()


class RunRequestSerializer(StrictSerializer):
    """``dry_run``: report what the run would change without changing it."""

    dry_run = StrictBooleanField(required=False, default=False)


class ForceCompleteSerializer(StrictSerializer):
    """Why the gate is opened without a reconciliation, and a fresh OTP code (it may be left
    out only within STEP_UP_WINDOW_SECONDS of this session's last step-up)."""

    reason = ReasonField()
    otp_token = StrictCharField(max_length=16, required=False, allow_blank=True, default="")


class OrphanSerializer(serializers.ModelSerializer):
    remaining_qty = serializers.IntegerField(read_only=True)
    adopted_order = serializers.SlugRelatedField(
        slug_field="client_order_id", read_only=True, allow_null=True
    )

    class Meta:
        model = OrphanOrder
        fields = [
            "id",
            "broker_order_id",
            "client_order_id",
            "symbol",
            "strategy_id",
            "side",
            "qty",
            "filled_qty",
            "remaining_qty",
            "order_type",
            "limit_price",
            "estimated_notional",
            "broker_status",
            "status",
            "detected_at",
            "last_seen_at",
            "resolved_at",
            "resolved_by",
            "resolution_note",
            "adopted_order",
        ]
        read_only_fields = fields


class QuarantineSerializer(serializers.ModelSerializer):
    key = serializers.CharField(read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)
    orphan = serializers.SlugRelatedField(
        slug_field="broker_order_id", read_only=True, allow_null=True
    )

    class Meta:
        model = Quarantine
        fields = [
            "id",
            "key",
            "strategy_id",
            "symbol",
            "reason",
            "orphan",
            "active",
            "created_at",
            "created_by",
            "cleared_at",
            "cleared_by",
            "clear_reason",
        ]
        read_only_fields = fields


class OrphanFilterSerializer(QueryFilterSerializer):
    status = serializers.ChoiceField(choices=OrphanOrder.Status.choices, required=False)
    symbol = SymbolField(required=False)


class QuarantineFilterSerializer(QueryFilterSerializer):
    active = QueryBooleanField(help_text="true: only active quarantines; false: only cleared")
    symbol = SymbolField(required=False)

"""Order API input/output. Input validation is strict: anything a broker would refuse, or that
looks like a typo, is a 400 with a field-level reason before any row is written."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders.models import (
    RESERVED_STRATEGY_ID,
    STRATEGY_ID_RE,
    Order,
    OrderType,
    Side,
    SlicingPlan,
    TimeInForce,
)
from orders.slicing import PRICES_BY_TYPE
from tradeops.api_fields import (
    BoundedIntegerField,
    DecimalStringField,
    PatternField,
    ReasonField,
    StrictSerializer,
    SymbolField,
)


class WholeSharesField(BoundedIntegerField):
    """A positive whole number of shares, at most ``ORDER_MAX_QTY``."""

    default_error_messages = {
        "invalid": "Must be a whole number of shares (an integer), got {value}.",
        "range": "Must be between {low} and {high} shares.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(low=1, high_setting="ORDER_MAX_QTY", **kwargs)


# Below $1 up to 4 decimals, from $1 up at most 2 (SEC Rule 612, sub-penny), no leading zeros:
# one spelling per price, and the whole grammar in one pattern the OpenAPI schema can state.
PRICE_PATTERN = r"^(0\.[0-9]{1,4}|[1-9][0-9]{0,11}(\.[0-9]{1,2})?)$"


class PriceField(DecimalStringField):
    """A price as a decimal string: above 0, at most ``ORDER_MAX_PRICE``, at most 4 decimals
    below $1 and at most 2 from $1 up (sub-penny rule)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            pattern=PRICE_PATTERN,
            rule="ASCII digits without leading zeros and an optional '.', at most 2 decimals "
            "from $1 up (sub-penny rule) and 4 below; no sign, exponent, '_' or spaces",
            min_value=Decimal("0.0001"),
            max_value=settings.ORDER_MAX_PRICE,
            required=False,
            allow_null=True,
            **kwargs,
        )


def _price_use(name: str) -> str:
    types = [kind for kind, prices in PRICES_BY_TYPE.items() if name in prices]
    return f"Required for {' and '.join(types)} orders, refused for the others."


class OrderRequestSerializer(StrictSerializer):
    """An order to place. Unknown fields are refused; prices are decimal strings."""

    strategy = PatternField(
        STRATEGY_ID_RE,
        hint="Not a strategy id: 1-64 lowercase ASCII letters, digits, '-' or '_'",
        max_length=64,
        required=False,
    )
    symbol = SymbolField()
    side = serializers.ChoiceField(choices=Side.choices)
    qty = WholeSharesField()
    type = serializers.ChoiceField(choices=OrderType.choices)
    limit_price = PriceField(help_text=_price_use("limit_price"))
    stop_price = PriceField(help_text=_price_use("stop_price"))
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices)

    def validate_strategy(self, value: str) -> str:
        if value == RESERVED_STRATEGY_ID:
            raise serializers.ValidationError(
                f"'{RESERVED_STRATEGY_ID}' is reserved for orders TradeOps did not place."
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs["type"]
        needs = PRICES_BY_TYPE[kind]
        errors: dict[str, str] = {}
        for name in ("limit_price", "stop_price"):
            present = attrs.get(name) is not None
            if name in needs and not present:
                errors[name] = f"Required for {kind} orders."
            elif name not in needs and present:
                errors[name] = f"Not allowed for {kind} orders."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class SliceRequestSerializer(OrderRequestSerializer):
    """A TWAP plan: the fields of a single order plus its schedule."""

    duration_minutes = BoundedIntegerField(low=1, high_setting="TWAP_MAX_DURATION_MINUTES")
    interval_seconds = BoundedIntegerField(low=1, high_setting="TWAP_MAX_INTERVAL_SECONDS")


# The order terms (``orders.models.OrderTerms``) as the API writes them, for an order and a
# TWAP plan alike: the wire calls the order type ``type`` and the strategy by its id
# (``OrderIntent.from_request`` reads them back the same way). A comment, not a docstring:
# drf-spectacular would print an inherited docstring into every subclass's schema.
class OrderTermsSerializer(serializers.ModelSerializer):
    WIRE_FIELDS = [
        "strategy",
        "symbol",
        "side",
        "qty",
        "type",
        "limit_price",
        "stop_price",
        "time_in_force",
    ]

    strategy = serializers.CharField(source="strategy_id")
    type = serializers.CharField(source="order_type")

    def get_fields(self) -> dict[str, serializers.Field]:
        """ModelSerializer builds its fields from the model on every instance (~1.5 ms of
        CPU per order answered); they depend only on the class, so build them once per class
        and hand each instance fresh copies, as DRF does with declared fields."""
        cls = type(self)
        built = cls.__dict__.get("_built_fields")
        if built is None:
            built = super().get_fields()
            cls._built_fields = built  # type: ignore[attr-defined]
        return copy.deepcopy(built)

    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="What the pre-trade checks warned about when it was accepted, each naming the "
        "limit it exceeds (the fat-finger warning tier; a step-up-tier order a strategy may "
        "place within its max_unconfirmed_notional; a pass as reduce-only while halted). "
        "Empty for most orders. Never a refusal: refusals are 422 fat_finger / risk_limit.",
    )


class OrderSerializer(OrderTermsSerializer):
    class Meta:
        model = Order
        fields = [
            "client_order_id",
            *OrderTermsSerializer.WIRE_FIELDS,
            "broker_order_id",
            "status",
            "filled_qty",
            "filled_avg_price",
            "reject_reason",
            "warnings",
            "origin",
            "created_at",
            "submitted_at",
            "updated_at",
            "plan",
            "slice_num",
            "scheduled_time",
        ]
        read_only_fields = fields


class LiquiditySerializer(serializers.Serializer):
    """The liquidity constraint as it was when the plan was made (never recomputed)."""

    adv = serializers.IntegerField(allow_null=True)
    pct_of_adv = serializers.DecimalField(
        source="adv_pct", max_digits=7, decimal_places=6, allow_null=True
    )
    max_slice_qty = serializers.IntegerField(allow_null=True)
    source = serializers.CharField(source="liquidity_source")
    computed_at = serializers.DateTimeField(source="liquidity_computed_at", allow_null=True)
    note = serializers.CharField(source="liquidity_note")


class PlanSerializer(OrderTermsSerializer):
    end_at = serializers.DateTimeField()
    filled_qty = serializers.SerializerMethodField()
    slices_by_status = serializers.SerializerMethodField()
    liquidity = LiquiditySerializer(source="*")

    class Meta:
        model = SlicingPlan
        fields = [
            "id",
            "key",
            *OrderTermsSerializer.WIRE_FIELDS,
            "duration_minutes",
            "interval_seconds",
            "slice_interval_seconds",
            "slice_count",
            "start_at",
            "end_at",
            "status",
            "status_reason",
            "filled_qty",
            "slices_by_status",
            "liquidity",
            "warnings",
            "origin",
            "created_at",
            "updated_at",
            "ended_at",
        ]
        read_only_fields = fields

    def get_filled_qty(self, plan: SlicingPlan) -> int:
        return sum(self._by_status(plan)[1].values())

    def get_slices_by_status(self, plan: SlicingPlan) -> dict[str, int]:
        return self._by_status(plan)[0]

    def _by_status(self, plan: SlicingPlan) -> tuple[dict[str, int], dict[str, int]]:
        """Slice count and filled shares per status, one query per plan."""
        cached = getattr(plan, "_slice_totals", None)
        if cached is None:
            rows = plan.slices.values("status").annotate(n=Count("id"), filled=Sum("filled_qty"))
            cached = (
                {r["status"]: r["n"] for r in rows},
                {r["status"]: int(r["filled"] or 0) for r in rows},
            )
            plan._slice_totals = cached  # type: ignore[attr-defined]
        return cached


class PlanWithSlicesSerializer(PlanSerializer):
    slices = serializers.SerializerMethodField()

    class Meta(PlanSerializer.Meta):
        fields = [*PlanSerializer.Meta.fields, "slices"]
        read_only_fields = fields

    @extend_schema_field(OrderSerializer(many=True))
    def get_slices(self, plan: SlicingPlan) -> list[dict[str, Any]]:
        return OrderSerializer(plan.slices.order_by("slice_num"), many=True).data


class PlanCancelSerializer(serializers.Serializer):
    plan = PlanSerializer()
    canceled = serializers.IntegerField(help_text="Slices canceled (they never went out)")
    in_flight = serializers.IntegerField(
        help_text="Slices already claimed for sending or at the broker, not canceled here"
    )


class CancelRequestSerializer(StrictSerializer):
    """A reason, recorded with the cancel: required from an operator (the one rule of
    tradeops.reasons), optional for a strategy cancelling its own order or plan."""

    reason = ReasonField(optional=True)

"""Operators' view of orders, strategies, limits and switches."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.urls import path
from django.utils import timezone
from django.utils.safestring import mark_safe

from orders.admin_place import PERMISSION as PLACE_PERMISSION
from orders.admin_place import PlaceOrderView
from orders.charts import progress_svg
from orders.controls import trading_switch_set
from orders.dispatch import SliceDispatcher
from orders.limits import (
    FAT_FINGER_FIELDS,
    fat_finger_thresholds,
    limits_in_force,
    risk_limits_with_global,
    row_effective_limits,
    row_fat_finger_thresholds,
)
from orders.models import (
    DispatcherRun,
    Order,
    OrderEvent,
    Position,
    RiskLimit,
    SlicingPlan,
    Strategy,
    StrategyToken,
    TradeStreamRun,
    TradingSwitch,
)
from orders.plans import plan_cancel, plan_set_paused
from orders.selectors import plan_progress
from orders.services import order_cancel
from orders.strategies import strategy_token_issue, strategy_token_revoke
from orders.stream import StreamConsumer
from tradeops.admin_site import AdminPage
from tradeops.admin_tools import (
    AuditedModelAdmin,
    ReadOnlyAdminMixin,
    ReasonForm,
    bulk_reason_action,
    reason_otp_form,
)


class OrderEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderEvent
    extra = 0
    fields = [
        "created_at",
        "source",
        "status",
        "filled_qty",
        "filled_avg_price",
        "broker_updated_at",
        "applied",
        "reason",
        "status_before",
        "note",
    ]
    readonly_fields = fields
    can_delete = False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "client_order_id",
        "strategy",
        "symbol",
        "side",
        "qty",
        "order_type",
        "status",
        "filled_qty",
        "filled_avg_price",
        "origin",
        "created_at",
    ]
    list_filter = ["status", "is_terminal", "origin", "side", "strategy"]
    search_fields = ["client_order_id", "broker_order_id", "symbol"]
    list_select_related = ["strategy"]
    date_hierarchy = "created_at"
    # The ids first, then the terms (which Order inherits, so _meta lists them first).
    readonly_fields = [
        "id",
        "client_order_id",
        "strategy",
        *(
            f.name
            for f in Order._meta.fields
            if f.name not in ("id", "client_order_id", "strategy")
        ),
    ]
    inlines = [OrderEventInline]
    actions = ["cancel_orders"]
    change_list_template = "admin/orders/order/change_list.html"

    def get_urls(self) -> list:
        page = PlaceOrderView(self)
        wrap = self.admin_site.admin_view
        return [
            path("place/", wrap(page.place), name="orders_order_place"),
            path(
                "place/result/<str:kind>/<int:pk>/",
                wrap(page.result),
                name="orders_order_place_result",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        extra = {**(extra_context or {}), "can_place": request.user.has_perm(PLACE_PERMISSION)}
        return super().changelist_view(request, extra)

    @admin.action(description="Cancel selected orders", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return bulk_reason_action(
            self,
            request,
            queryset.filter(is_terminal=False),
            title="Cancel orders",
            call=lambda o, d: order_cancel(order=o, actor=request.user, reason=d["reason"]),
            description="Orders not yet sent are canceled here; the others are canceled at "
            "the broker and their final status arrives through the update path.",
        )

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order") or request.user.is_superuser


admin.site.register_page(
    AdminPage(
        app_label="orders",
        name="Place order",
        url_name="orders_order_place",
        permission=PLACE_PERMISSION,
    )
)


class StrategyTokenInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StrategyToken
    extra = 0
    fields = ["prefix", "created_at", "revoked_at"]
    readonly_fields = fields


@admin.register(Strategy)
class StrategyAdmin(AuditedModelAdmin):
    list_display = ["id", "name", "is_active", "max_unconfirmed_notional", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["id", "name"]
    inlines = [StrategyTokenInline]
    actions = ["issue_token", "revoke_tokens"]
    step_up_action = "strategy.raise_limit"

    def step_up_limits(self, current: Any, data: dict[str, Any]) -> tuple[dict, dict]:
        """Raising the unconfirmed allowance (blank = the global step-up threshold;
        orders.fat_finger_checks resolves it per symbol) or reactivating a deactivated
        strategy (False < True) needs a step-up. A new strategy starts active with a blank
        allowance and no token."""
        default = fat_finger_thresholds(RiskLimit.GLOBAL).step_up_notional

        def allowance(value: Any) -> Any:
            return default if value is None else value

        before = {
            "max_unconfirmed_notional": allowance(
                getattr(current, "max_unconfirmed_notional", None)
            ),
            "is_active": True if current is None else current.is_active,
        }
        after = {
            "max_unconfirmed_notional": allowance(data.get("max_unconfirmed_notional")),
            "is_active": bool(data.get("is_active")),
        }
        return before, after

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["id", "created_at"] if obj is not None else ["created_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # orders reference strategies forever; deactivate instead

    @admin.action(description="Issue a new API token", permissions=["change"])
    def issue_token(self, request: HttpRequest, queryset: QuerySet) -> None:
        for strategy in queryset:
            key = strategy_token_issue(strategy=strategy, actor=request.user)
            self.message_user(
                request,
                f"New token for {strategy.id} (shown once, store it now): {key}",
                messages.WARNING,
            )

    @admin.action(description="Revoke all API tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet) -> Any:
        def revoke(strategy: Strategy, data: dict[str, Any]) -> None:
            for token in strategy.tokens.filter(revoked_at__isnull=True):
                strategy_token_revoke(token=token, actor=request.user, reason=data["reason"])

        return bulk_reason_action(self, request, queryset, title="Revoke tokens", call=revoke)


@admin.register(Position)
class PositionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["symbol", "qty", "avg_entry_price", "synced_at", "updated_at"]
    search_fields = ["symbol"]


def _money(value: Decimal) -> str:
    return f"${value.quantize(Decimal('0.01')):,}"


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f} %"


@admin.register(RiskLimit)
class RiskLimitAdmin(AuditedModelAdmin):
    list_display = [
        "symbol",
        "max_order_qty",
        "max_order_notional",
        "max_position_qty",
        "effective",
        "fat_finger",
        "updated_at",
    ]
    search_fields = ["symbol"]
    fieldsets = [
        (None, {"fields": ["symbol", "max_order_qty", "max_order_notional", "max_position_qty"]}),
        (
            "Fat-finger thresholds (blank = the global row's, then the FAT_FINGER_* settings)",
            {"fields": [column for column, _ in FAT_FINGER_FIELDS.values()]},
        ),
        (None, {"fields": ["audit_reason", "otp_token"]}),
    ]
    audit_action_prefix = "risk_limit"
    step_up_action = "risk_limit.raise"

    def step_up_limits(self, current: Any, data: dict[str, Any]) -> tuple[dict, dict]:
        # every limit on the row, risk and fat-finger alike, as in force for the symbol
        symbol = current.symbol if current is not None else data.get("symbol")
        if not symbol:
            return {}, {}
        return limits_in_force(symbol), limits_in_force(symbol, row=data)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The global row's values come along as subqueries: the effective columns of a whole
        # page cost no query per row.
        return risk_limits_with_global(super().get_queryset(request))

    @admin.display(description="Effective (blank = inherited)")
    def effective(self, obj: RiskLimit) -> str:
        limits = row_effective_limits(obj)  # for `*`: the global row, then settings
        return (
            f"qty ≤ {limits.max_order_qty}, notional ≤ {limits.max_order_notional}, "
            f"position ≤ {limits.max_position_qty}"
        )

    @admin.display(description="Fat-finger (effective)")
    def fat_finger(self, obj: RiskLimit) -> str:
        t = row_fat_finger_thresholds(obj)
        return (
            f"warn > {_money(t.warn_notional)} or > {t.warn_qty} sh, "
            f"OTP > {_money(t.step_up_notional)}, "
            f"collar {_pct(t.collar_pct)}, ADV warn > {_pct(t.warn_pct_adv)}, "
            f"refuse > {_pct(t.max_pct_adv)}"
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["symbol"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RiskLimit, form: Any, change: bool) -> None:
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(TradingSwitch)
class TradingSwitchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "engaged", "reason", "changed_by", "changed_at"]
    actions = ["engage", "release"]

    @admin.action(description="ENGAGE (halt new risk)", permissions=["operate"])
    def engage(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._flip(request, queryset, engaged=True, form_class=ReasonForm)

    @admin.action(description="Release (resume trading) — needs OTP", permissions=["operate"])
    def release(self, request: HttpRequest, queryset: QuerySet) -> Any:
        # Resuming trading puts money at risk again: step-up with a fresh OTP code.
        return self._flip(
            request, queryset, engaged=False, form_class=reason_otp_form("trading_switch.release")
        )

    def _flip(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        engaged: bool,
        form_class: type[ReasonForm],
    ) -> Any:
        verb = "Engage" if engaged else "Release"
        return bulk_reason_action(
            self,
            request,
            queryset,
            title=f"{verb} switches",
            form_class=form_class,
            call=lambda sw, d: trading_switch_set(
                name=sw.name,
                engaged=engaged,
                actor=request.user,
                reason=d["reason"],
                step_up=d.get("step_up"),
            ),
        )

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_tradingswitch")


# --- TWAP --------------------------------------------------------------------------------------
class SliceInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Order
    fk_name = "plan"
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["slice_num"]
    fields = [
        "slice_num",
        "client_order_id",
        "scheduled_time",
        "qty",
        "status",
        "filled_qty",
        "filled_avg_price",
        "submitted_at",
        "reject_reason",
    ]
    readonly_fields = fields
    verbose_name = "slice"
    verbose_name_plural = "slices"


@admin.register(SlicingPlan)
class SlicingPlanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "strategy",
        "symbol",
        "side",
        "qty",
        "filled",
        "slice_count",
        "slice_interval_seconds",
        "max_slice_qty",
        "status",
        "start_at",
    ]
    list_filter = ["status", "side", "liquidity_source", "strategy"]
    search_fields = ["key", "symbol"]
    list_select_related = ["strategy"]
    date_hierarchy = "created_at"
    inlines = [SliceInline]
    actions = ["cancel_remaining", "pause", "resume"]
    fieldsets = [
        (None, {"fields": ["progress_chart", "status", "status_reason", "filled", "warnings"]}),
        (
            "Request",
            {
                "fields": [
                    "key",
                    "strategy",
                    "symbol",
                    "side",
                    "qty",
                    "order_type",
                    "limit_price",
                    "stop_price",
                    "time_in_force",
                    "origin",
                ]
            },
        ),
        (
            "Schedule",
            {
                "fields": [
                    "duration_minutes",
                    "interval_seconds",
                    "slice_interval_seconds",
                    "slice_count",
                    "start_at",
                    "ended_at",
                ]
            },
        ),
        (
            "Liquidity at plan time",
            {
                "fields": [
                    "adv",
                    "adv_pct",
                    "max_slice_qty",
                    "liquidity_source",
                    "liquidity_computed_at",
                    "liquidity_note",
                ]
            },
        ),
    ]
    readonly_fields = [
        *[f.name for f in SlicingPlan._meta.fields],
        "progress_chart",
        "filled",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(filled_total=Sum("slices__filled_qty"))

    @admin.display(description="Filled", ordering="filled_total")
    def filled(self, obj: SlicingPlan) -> int:
        return obj.filled_total or 0

    @admin.display(description="Planned vs filled (cumulative shares)")
    def progress_chart(self, obj: SlicingPlan) -> str:
        planned, filled = plan_progress(obj)
        if not planned:
            return "-"
        svg = progress_svg(planned=planned, filled=filled, total=obj.qty, now=timezone.now())
        return mark_safe(svg)  # noqa: S308 - built from numbers and escaped text only

    @admin.action(description="Cancel remaining slices", permissions=["cancel"])
    def cancel_remaining(self, request: HttpRequest, queryset: QuerySet) -> Any:
        def cancel(plan: SlicingPlan, data: dict[str, Any]) -> str:
            outcome = plan_cancel(plan=plan, actor=request.user, reason=data["reason"])
            return f"#{plan.pk}: {outcome.canceled} pending slice(s) canceled."

        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Cancel remaining slices",
            call=cancel,
            description="Each plan becomes canceled and its slices that have not gone out are "
            "canceled without reaching the broker. Slices already at the broker are left "
            "alone (cancel them as orders).",
        )

    @admin.action(description="Pause (slices stay pending)", permissions=["cancel"])
    def pause(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._pause(request, queryset, paused=True, form_class=ReasonForm)

    @admin.action(
        description="Resume (remaining slices from now) — needs OTP", permissions=["cancel"]
    )
    def resume(self, request: HttpRequest, queryset: QuerySet) -> Any:
        # Resuming puts money at risk again: step-up with a fresh OTP code, like a switch release.
        return self._pause(
            request, queryset, paused=False, form_class=reason_otp_form("plan.resume")
        )

    def _pause(
        self, request: HttpRequest, queryset: QuerySet, *, paused: bool, form_class: type
    ) -> Any:
        return bulk_reason_action(
            self,
            request,
            queryset,
            title=f"{'Pause' if paused else 'Resume'} TWAP plans",
            form_class=form_class,
            call=lambda plan, d: plan_set_paused(
                plan=plan,
                paused=paused,
                actor=request.user,
                reason=d["reason"],
                step_up=d.get("step_up"),
            ),
            description="A paused plan keeps its slices pending; on resume they are "
            "rescheduled from now at the plan's interval.",
        )

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_slicingplan") or request.user.is_superuser


@admin.register(DispatcherRun)
class DispatcherRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "hostname", "pid", "started_at", "heartbeat_at", "stopped_at", "alive"]
    list_filter = ["hostname"]

    @admin.display(boolean=True, description="Alive (recent heartbeat)")
    def alive(self, obj: DispatcherRun) -> bool:
        recent = timezone.now() - timedelta(seconds=3 * SliceDispatcher.HEARTBEAT_SECONDS)
        return obj.stopped_at is None and obj.heartbeat_at >= recent


@admin.register(TradeStreamRun)
class TradeStreamRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "hostname",
        "pid",
        "started_at",
        "heartbeat_at",
        "connected",
        "connects",
        "events",
        "stopped_at",
        "alive",
    ]
    list_filter = ["hostname", "connected"]

    @admin.display(boolean=True, description="Alive and connected (recent heartbeat)")
    def alive(self, obj: TradeStreamRun) -> bool:
        recent = timezone.now() - timedelta(seconds=3 * StreamConsumer.HEARTBEAT_SECONDS)
        return obj.stopped_at is None and obj.connected and obj.heartbeat_at >= recent

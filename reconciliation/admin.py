"""Operators' reconciliation console: gate page, runs, orphans, quarantines, mismatches."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from orders.models import Strategy
from reconciliation.api import status_payload
from reconciliation.engine import reconciliation_run
from reconciliation.gate import reconciliation_force_complete
from reconciliation.models import OrphanOrder, PositionMismatch, Quarantine, ReconciliationRun
from reconciliation.services import (
    orphan_adopt,
    orphan_cancel,
    orphan_narrow,
    orphan_resolve,
    quarantine_clear,
)
from tradeops.admin_tools import (
    ReadOnlyAdminMixin,
    ReasonForm,
    ReasonOtpForm,
    bulk_reason_action,
    reason_otp_form,
)
from tradeops.errors import TradeOpsError

PERM = "reconciliation.manage_reconciliation"


class AdoptForm(ReasonOtpForm):
    """Adopting lifts the orphan's quarantine: a reason and a step-up."""

    step_up_action = "orphan.adopt"
    strategy = forms.ModelChoiceField(
        queryset=Strategy.objects.filter(is_active=True),
        help_text="The strategy that owns this order from now on.",
    )
    field_order = ["strategy", "reason", "otp_token"]


class ForceCompleteForm(ReasonForm):
    """A reason and an OTP code; the service checks the gate first, then verifies the code."""

    otp_token = ReasonOtpForm.base_fields["otp_token"]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "started_at",
        "kind",
        "status",
        "dry_run",
        "orders_checked",
        "orders_updated",
        "fills_corrected",
        "marked_failed",
        "orphans_found",
        "position_mismatches",
        "conflicts_skipped",
        "broker_calls",
        "errors",
    ]
    list_filter = ["status", "kind", "dry_run"]
    readonly_fields = [f.name for f in ReconciliationRun._meta.fields]
    change_list_template = "admin/reconciliation/run_changelist.html"

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.status_view)
        return [path("status/", view, name="reconciliation_status"), *super().get_urls()]

    def status_view(self, request: HttpRequest) -> HttpResponse:
        force_form = ForceCompleteForm(user=request.user)
        if request.method == "POST" and "run" in request.POST:
            outcome = reconciliation_run(kind="manual")
            if outcome.skipped:
                self.message_user(request, "Another reconciliation is running.", messages.WARNING)
            else:
                level = messages.SUCCESS if outcome.succeeded else messages.ERROR
                self.message_user(
                    request,
                    f"Reconciliation {outcome.run.status}: "
                    f"{outcome.run.orders_updated} updated, "
                    f"{outcome.run.orphans_found} orphans.",
                    level,
                )
            return HttpResponseRedirect(reverse("admin:reconciliation_status"))
        if request.method == "POST" and "force" in request.POST:
            force_form = ForceCompleteForm(request.POST, user=request.user)
            if force_form.is_valid():
                try:
                    reconciliation_force_complete(
                        actor=request.user,
                        reason=force_form.cleaned_data["reason"],
                        otp_token=force_form.cleaned_data["otp_token"],
                        session=request.session,
                    )
                except TradeOpsError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self.message_user(
                        request,
                        "Gate opened by override: every order placed under it is flagged.",
                        messages.WARNING,
                    )
                    return HttpResponseRedirect(reverse("admin:reconciliation_status"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconciliation",
            "status": status_payload(),
            "runs": ReconciliationRun.objects.all()[:15],
            "force_form": force_form,
            "can_force": request.user.has_perm(PERM),
            "opts": self.model._meta,
            "untracked": OrphanOrder.objects.filter(status=OrphanOrder.Status.UNTRACKED).count(),
            "quarantines": Quarantine.objects.active().count(),
        }
        return TemplateResponse(request, "admin/reconciliation/status.html", context)


@admin.register(OrphanOrder)
class OrphanOrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "broker_order_id",
        "symbol",
        "side",
        "qty",
        "filled_qty",
        "broker_status",
        "estimated_notional",
        "status",
        "strategy_id",
        "detected_at",
        "resolved_by",
    ]
    list_filter = ["status", "broker_status", "side", "symbol"]
    search_fields = ["broker_order_id", "client_order_id", "symbol"]
    list_select_related = ["adopted_order"]
    readonly_fields = [f.name for f in OrphanOrder._meta.fields]
    actions = ["adopt", "cancel_at_broker", "narrow_quarantine", "resolve"]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM)

    @admin.action(description="Adopt into a strategy — needs OTP", permissions=["manage"])
    def adopt(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Adopt orphan orders",
            form_class=AdoptForm,
            call=lambda o, d: orphan_adopt(
                orphan=o,
                strategy=d["strategy"],
                actor=request.user,
                reason=d["reason"],
                step_up=d["step_up"],
            ),
            description="The order joins the ledger under the chosen strategy and its "
            "quarantine is lifted.",
        )

    @admin.action(description="Cancel at the broker", permissions=["manage"])
    def cancel_at_broker(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Cancel orphan orders at the broker",
            call=lambda o, d: orphan_cancel(orphan=o, actor=request.user, reason=d["reason"]),
        )

    @admin.action(description="Narrow quarantine * → external — needs OTP", permissions=["manage"])
    def narrow_quarantine(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Narrow quarantines to 'external'",
            form_class=reason_otp_form("quarantine.narrow"),
            call=lambda o, d: orphan_narrow(
                orphan=o, actor=request.user, reason=d["reason"], step_up=d["step_up"]
            ),
            description="Other strategies may trade the symbol again; the orphan's exposure "
            "still counts in every risk check. Do this only after verifying the order.",
        )

    @admin.action(description="Resolve (finished at the broker)", permissions=["manage"])
    def resolve(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Resolve orphan orders",
            call=lambda o, d: orphan_resolve(orphan=o, actor=request.user, reason=d["reason"]),
        )


@admin.register(Quarantine)
class QuarantineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "symbol",
        "strategy_id",
        "reason",
        "orphan",
        "created_at",
        "cleared_at",
        "cleared_by",
    ]
    list_filter = [("cleared_at", admin.EmptyFieldListFilter), "strategy_id", "symbol"]
    search_fields = ["symbol", "reason"]
    list_select_related = ["orphan"]
    readonly_fields = [f.name for f in Quarantine._meta.fields]
    actions = ["clear"]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM)

    @admin.action(
        description="Clear (once its orphan is resolved) — needs OTP", permissions=["manage"]
    )
    def clear(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Clear quarantines",
            form_class=reason_otp_form("quarantine.clear"),
            call=lambda q, d: quarantine_clear(
                quarantine=q, actor=request.user, reason=d["reason"], step_up=d["step_up"]
            ),
        )


@admin.register(PositionMismatch)
class PositionMismatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["detected_at", "symbol", "db_qty", "broker_qty", "corrected", "run"]
    list_filter = ["symbol", "corrected"]
    list_select_related = ["run"]

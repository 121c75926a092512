"""Operators' view of signals: model versions (promote; emergency override with reason + OTP),
every shadow validation with its figures and old-vs-new scatter, hydration runs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from signals.charts import scatter_svg
from signals.models import HydrationRun, ModelVersion, ShadowValidation
from signals.promotion import PERMISSION, model_override_activate, model_promote
from tradeops.admin_tools import (
    ReadOnlyAdminMixin,
    ReasonForm,
    bulk_reason_action,
    reason_otp_form,
)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class ShadowValidationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ShadowValidation
    fk_name = "candidate"
    extra = 0
    fields = ["requested_at", "kind", "outcome", "baseline", "spearman_mean", "divergence"]
    readonly_fields = fields
    show_change_link = True


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "version",
        "status",
        "feature_set_version",
        "training_start",
        "training_end",
        "created_by",
        "created_at",
        "status_changed_at",
        "short_sha",
    ]
    list_filter = ["status", "name", "feature_set_version"]
    search_fields = ["name", "artifact_sha256"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    inlines = [ShadowValidationInline]
    actions = ["promote", "activate_without_validation"]

    @admin.display(description="sha256")
    def short_sha(self, obj: ModelVersion) -> str:
        return obj.artifact_sha256[:12]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    @admin.action(
        description="Promote (shadow-validate, then go live if it passes)", permissions=["manage"]
    )
    def promote(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def call(model: ModelVersion, data: dict[str, Any]) -> str:
            # refusals (tampered artifact, wrong status, a validation running) are
            # TradeOpsErrors: reported per version, nothing changes
            validation = model_promote(model=model, actor=request.user, reason=data["reason"])
            return f"{model.label}: validation {validation.pk} queued."

        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Promote model versions",
            call=call,
            form_class=ReasonForm,
            description="Each version is compared with the active model by a job; it goes "
            "live only if it passes (the first model: a sanity check).",
        )

    @admin.action(
        description="EMERGENCY: activate WITHOUT validation (reason + OTP)", permissions=["manage"]
    )
    def activate_without_validation(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", "error")
            return None

        def call(model: ModelVersion, data: dict[str, Any]) -> str:
            model_override_activate(
                model=model,
                actor=request.user,
                reason=data["reason"],
                step_up=data["step_up"],
            )
            return f"{model.label} is ACTIVE WITHOUT VALIDATION (audited)."

        return bulk_reason_action(
            self,
            request,
            queryset,
            title="Activate without shadow validation",
            call=call,
            form_class=reason_otp_form("model.activate_unvalidated"),
            description="The emergency override: the model serves at once, unvalidated. "
            "Its artifact is still verified. Recorded in the audit trail and logged at CRITICAL.",
        )


@admin.register(ShadowValidation)
class ShadowValidationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "candidate",
        "baseline",
        "kind",
        "outcome",
        "spearman",
        "diverg",
        "pearson_fmt",
        "n_samples",
        "requested_by",
        "requested_at",
    ]
    list_filter = ["outcome", "kind", "status"]
    list_select_related = ["candidate", "baseline"]
    search_fields = ["candidate__name", "requested_by", "reason"]
    readonly_fields = [
        "scatter",
        *[f.name for f in ShadowValidation._meta.fields if f.name != "sample"],
    ]
    exclude = ["sample"]

    @admin.display(description="Spearman (mean/date)", ordering="spearman_mean")
    def spearman(self, obj: ShadowValidation) -> str:
        return _figure(obj.spearman_mean)

    @admin.display(description="Divergence", ordering="divergence")
    def diverg(self, obj: ShadowValidation) -> str:
        return _figure(obj.divergence)

    @admin.display(description="Pearson (recorded)", ordering="pearson")
    def pearson_fmt(self, obj: ShadowValidation) -> str:
        return _figure(obj.pearson)

    @admin.display(description="Old vs new scores")
    def scatter(self, obj: ShadowValidation) -> str:
        sample = obj.sample or {}
        if "old" not in sample:
            return format_html("<em>{}</em>", "No comparison (first model, sanity or override).")
        labels = [f"{s} {d}" for s, d in zip(sample["symbols"], sample["dates"], strict=True)]
        svg = scatter_svg(
            old=[float(v) for v in sample["old"]],
            new=[float(v) for v in sample["new"]],
            labels=labels,
            title=f"Validation {obj.pk}: {obj.baseline} vs {obj.candidate}",
        )
        return mark_safe(svg)  # noqa: S308 - built from numbers and escaped text only


@admin.register(HydrationRun)
class HydrationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "started_at",
        "trigger",
        "status",
        "symbols_ok",
        "symbols_failed",
        "symbols_total",
        "as_of",
        "duration",
        "reason",
    ]
    list_filter = ["status", "trigger"]
    readonly_fields = [f.name for f in HydrationRun._meta.fields]

    @admin.display(description="Seconds")
    def duration(self, obj: HydrationRun) -> str:
        return "-" if obj.duration_seconds is None else f"{obj.duration_seconds:.1f}"

"""Admin building blocks: audited edits, and confirmation pages (reason, optional OTP step-up)
for dangerous actions, in the pattern of Django's own delete_selected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.forms.models import model_to_dict
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tradeops.audit import audit_record
from tradeops.otp import STEP_UP_HINT, otp_step_up


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        min_length=5,
        max_length=1000,
        help_text="Recorded in the audit trail.",
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user


class ReasonOtpInputForm(ReasonForm):
    """Collects a reason and an OTP code; the service it feeds verifies the code."""

    otp_token = forms.CharField(
        label="OTP code",
        max_length=16,
        help_text=STEP_UP_HINT,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
    )


class ReasonOtpForm(ReasonOtpInputForm):
    """Collects a reason and verifies a fresh OTP code (step-up) itself."""

    def clean_otp_token(self) -> str:
        token = self.cleaned_data["otp_token"]
        if not otp_step_up(self.user, token):
            raise forms.ValidationError("Invalid or already used OTP code.")
        return token


def confirm_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    title: str,
    form_class: type[ReasonForm],
    perform: Callable[[QuerySet, dict[str, Any]], str],
    description: str = "",
    extra_initial: dict[str, Any] | None = None,
) -> HttpResponse | None:
    """Show a confirmation page; on a valid confirmed POST run ``perform`` and go back to the
    change list with its message."""
    if request.POST.get("confirmed"):
        form = form_class(request.POST, user=request.user)
        if form.is_valid():
            message = perform(queryset, form.cleaned_data)
            modeladmin.message_user(request, message, messages.SUCCESS)
            return None
    else:
        form = form_class(initial=extra_initial or {}, user=request.user)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "description": description,
        "queryset": queryset,
        "form": form,
        "action": request.POST.get("action", ""),
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
    }
    return TemplateResponse(request, "admin/tradeops/confirm_action.html", context)


def bulk_reason_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    title: str,
    call: Callable[[Any, dict[str, Any]], Any],
    form_class: type[ReasonForm] = ReasonForm,
    description: str = "",
) -> HttpResponse | None:
    """An admin action that asks for a reason (and whatever ``form_class`` adds), then runs
    ``call(obj, cleaned_data)`` for each selected object (a returned string is added to the
    message); domain errors are reported per object instead of aborting the batch."""
    from tradeops.errors import TradeOpsError

    def perform(qs: QuerySet, data: dict[str, Any]) -> str:
        objects, failed, notes = list(qs), [], []
        for obj in objects:
            try:
                note = call(obj, data)
            except TradeOpsError as exc:
                failed.append(f"{obj}: {exc.message}")
                continue
            if isinstance(note, str):
                notes.append(note)
        if failed:
            modeladmin.message_user(request, "Not done: " + "; ".join(failed), messages.WARNING)
        done = f"{title}: done for {len(objects) - len(failed)} of {len(objects)}."
        return " ".join([done, *notes])

    return confirm_action(
        modeladmin,
        request,
        queryset,
        title=title,
        form_class=form_class,
        perform=perform,
        description=description,
    )


class AuditReasonForm(forms.ModelForm):
    audit_reason = forms.CharField(
        label="Reason for this change",
        min_length=5,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Recorded in the audit trail.",
    )


class AuditedModelAdmin(admin.ModelAdmin):
    """Every add/change through the admin writes an AuditEvent with before/after and a
    mandatory reason, in the admin's own transaction."""

    form = AuditReasonForm
    audit_action_prefix = ""

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        return fields if "audit_reason" in fields else [*fields, "audit_reason"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            old = type(obj).objects.filter(pk=obj.pk).first()
            before = model_to_dict(old) if old is not None else None
        super().save_model(request, obj, form, change)
        prefix = self.audit_action_prefix or obj._meta.model_name
        audit_record(
            actor=request.user,
            action=f"{prefix}.{'change' if change else 'add'}",
            object_type=obj._meta.model_name,
            object_id=obj.pk,
            reason=form.cleaned_data.get("audit_reason", ""),
            before=before,
            after=model_to_dict(obj),
        )


class ReadOnlyAdminMixin:
    """For ledgers: viewable, never edited or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

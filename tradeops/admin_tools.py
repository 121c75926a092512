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
from tradeops.errors import TradeOpsError
from tradeops.otp import STEP_UP_ACTIONS, STEP_UP_HINT, step_up_verify
from tradeops.reasons import ReasonFormField


class ReasonForm(forms.Form):
    reason = ReasonFormField()

    def __init__(
        self, *args: Any, user: Any = None, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.request = request


class ReasonOtpForm(ReasonForm):
    """A reason and a step-up: the code is verified here (``step_up_verify``: the operator's
    own device, audited and counted when wrong) and the verified StepUp is handed to the
    service in ``cleaned_data["step_up"]``. Set ``step_up_action`` in a subclass."""

    step_up_action = ""
    otp_token = forms.CharField(
        label="OTP code",
        max_length=16,
        required=False,
        help_text=STEP_UP_HINT,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:  # a bad reason: do not spend (or count) a code on a refused form
            return data
        try:
            data["step_up"] = step_up_verify(
                user=self.user,
                token=data.get("otp_token", ""),
                action=self.step_up_action,
                session=getattr(self.request, "session", None),
            )
        except TradeOpsError as exc:
            self.add_error("otp_token", exc.message)
        return data


def reason_otp_form(action: str) -> type[ReasonOtpForm]:
    """A ReasonOtpForm whose step-up is for ``action`` (a key of STEP_UP_ACTIONS)."""
    if action not in STEP_UP_ACTIONS:
        raise ValueError(f"unknown step-up action {action!r}")
    name = f"ReasonOtpForm_{action.replace('.', '_')}"
    return type(name, (ReasonOtpForm,), {"step_up_action": action})


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
        form = form_class(request.POST, user=request.user, request=request)
        if form.is_valid():
            message = perform(queryset, form.cleaned_data)
            modeladmin.message_user(request, message, messages.SUCCESS)
            return None
    else:
        form = form_class(initial=extra_initial or {}, user=request.user, request=request)
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


Limits = dict[str, Any]


def limits_raised(before: Limits, after: Limits) -> list[str]:
    """The limits ``after`` makes looser than ``before`` (pure). Every limit here is "higher is
    looser" (a max qty, a notional, a collar, a share of ADV); None means "not known" (no
    default we can read), and a change to or from an unknown value counts as raising: fail
    closed, the operator types one more code."""
    raised = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            if old != new:
                raised.append(name)
        elif new > old:
            raised.append(name)
    return raised


class AuditReasonForm(forms.ModelForm):
    """The admin's change form: a mandatory reason, and a step-up (OTP code) when the change
    raises a limit (``AuditedModelAdmin.step_up_limits``)."""

    audit_reason = ReasonFormField(label="Reason for this change")
    otp_token = forms.CharField(
        label="OTP code",
        max_length=16,
        required=False,
        help_text="Needed only when the change raises a limit (step-up). " + STEP_UP_HINT,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
    )
    model_admin: AuditedModelAdmin | None = None
    request: HttpRequest | None = None
    step_up = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors or self.model_admin is None or not self.model_admin.step_up_action:
            return data
        current = self.instance if self.instance.pk is not None else None
        raised = limits_raised(*self.model_admin.step_up_limits(current, data))
        if not raised:
            return data
        try:
            self.step_up = step_up_verify(
                user=getattr(self.request, "user", None),
                token=data.get("otp_token", ""),
                action=self.model_admin.step_up_action,
                session=getattr(self.request, "session", None),
            )
        except TradeOpsError as exc:
            self.add_error("otp_token", f"{exc.message} (this change raises {', '.join(raised)})")
        return data


class AuditedModelAdmin(admin.ModelAdmin):
    """Every add/change through the admin writes an AuditEvent with before/after and a
    mandatory reason, in the admin's own transaction. A model admin whose changes can raise a
    limit sets ``step_up_action`` and ``step_up_limits``: such a change needs a step-up."""

    form = AuditReasonForm
    audit_action_prefix = ""
    step_up_action = ""

    def step_up_limits(self, current: Any, data: dict[str, Any]) -> tuple[Limits, Limits]:
        """(the limits in force now, the limits after this change) — effective values, so
        that blanking a field that then inherits a higher value counts as raising."""
        return {}, {}

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"model_admin": self, "request": request})

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        extra = ["audit_reason"] + (["otp_token"] if self.step_up_action else [])
        return [*(f for f in fields if f not in extra), *extra]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            old = type(obj).objects.filter(pk=obj.pk).first()
            before = model_to_dict(old) if old is not None else None
        super().save_model(request, obj, form, change)
        prefix = self.audit_action_prefix or obj._meta.model_name
        after = model_to_dict(obj)
        if getattr(form, "step_up", None) is not None:
            after["step_up"] = form.step_up.as_audit()
        audit_record(
            actor=request.user,
            action=f"{prefix}.{'change' if change else 'add'}",
            object_type=obj._meta.model_name,
            object_id=obj.pk,
            reason=form.cleaned_data.get("audit_reason", ""),
            before=before,
            after=after,
        )


class ReadOnlyAdminMixin:
    """For ledgers: viewable, never edited or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

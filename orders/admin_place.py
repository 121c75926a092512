"""The admin's "Place order" page (issue 12): form -> review -> submit -> result.

Thin: the form parses and validates with the API's own serializers (one rule for both doors),
``orders.manual`` judges and places. Mounted by ``OrderAdmin.get_urls`` inside
``admin_site.admin_view``, so a session without a verified OTP device gets the OTP login page;
an operator without ``orders.place_manual_order`` gets a 403.
"""

from __future__ import annotations

import dataclasses
import secrets
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from orders import risk
from orders.fat_finger import CENT, Thresholds
from orders.manual import (
    ManualRequest,
    ManualResult,
    ManualReview,
    manual_market,
    manual_place,
    manual_review,
)
from orders.models import (
    MANUAL_STRATEGY_ID,
    RESERVED_STRATEGY_ID,
    Order,
    OrderType,
    Origin,
    Side,
    SlicingPlan,
    Strategy,
    TimeInForce,
)
from orders.serializers import OrderRequestSerializer, SliceRequestSerializer
from tradeops.errors import TradeOpsError
from tradeops.otp import STEP_UP_HINT
from tradeops.symbols import symbol_or_none

PERMISSION = "orders.place_manual_order"
TERMS = [
    "strategy",
    "symbol",
    "side",
    "qty",
    "type",
    "limit_price",
    "stop_price",
    "time_in_force",
    "duration_minutes",
    "interval_seconds",
]


def _strategy_choices() -> list[tuple[str, str]]:
    ids = (
        Strategy.objects.filter(is_active=True)
        .exclude(pk=RESERVED_STRATEGY_ID)
        .values_list("id", flat=True)
    )
    return [(sid, sid) for sid in ids]


class PlaceOrderForm(forms.Form):
    """The order's terms, named like the API's fields, plus the form's nonce (the idempotency
    key of this one form). Values are checked by the API's serializers."""

    nonce = forms.CharField(widget=forms.HiddenInput, min_length=16, max_length=64)
    strategy = forms.ChoiceField(choices=_strategy_choices)
    symbol = forms.CharField(max_length=16)
    side = forms.ChoiceField(choices=Side.choices)
    qty = forms.CharField(max_length=12, label="Qty (shares)")
    type = forms.ChoiceField(choices=OrderType.choices, initial=OrderType.MARKET)
    limit_price = forms.CharField(max_length=20, required=False)
    stop_price = forms.CharField(max_length=20, required=False)
    time_in_force = forms.ChoiceField(choices=TimeInForce.choices, initial=TimeInForce.DAY)
    duration_minutes = forms.CharField(
        max_length=6, required=False, help_text="TWAP plan only: over how many minutes."
    )
    interval_seconds = forms.CharField(
        max_length=6, required=False, help_text="TWAP plan only: seconds between slices."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        wire = {name: data[name] for name in TERMS if data.get(name) not in (None, "")}
        is_plan = "duration_minutes" in wire or "interval_seconds" in wire
        serializer_class = SliceRequestSerializer if is_plan else OrderRequestSerializer
        serializer = serializer_class(data=wire)
        if not serializer.is_valid():
            for name, messages in serializer.errors.items():
                field = name if name in self.fields else None
                for message in messages if isinstance(messages, list) else [messages]:
                    self.add_error(field, str(message))
            return data
        data["validated"] = serializer.validated_data
        return data

    def manual_request(self) -> ManualRequest:
        v = self.cleaned_data["validated"]
        intent = risk.OrderIntent.from_request(
            v, strategy_id=self.cleaned_data["strategy"], origin=Origin.ADMIN
        )
        intent = dataclasses.replace(intent, request_key=self.cleaned_data["nonce"])
        return ManualRequest(
            intent=intent,
            duration_minutes=v.get("duration_minutes"),
            interval_seconds=v.get("interval_seconds"),
        )


class ConfirmForm(forms.Form):
    """The review step's own fields; what they are worth is decided by the fresh verdict."""

    review_token = forms.CharField(widget=forms.HiddenInput, required=False)
    confirm = forms.BooleanField(required=False, label="I have checked this order: place it")
    otp_token = forms.CharField(
        label="OTP code",
        required=False,
        max_length=16,
        help_text=STEP_UP_HINT,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _hidden_terms(form: PlaceOrderForm) -> PlaceOrderForm:
    """The same bound form, every field hidden: the review page posts the terms back (and the
    server judges them again)."""
    for field in form.fields.values():
        field.widget = forms.HiddenInput()
    return form


def percent(fraction: Decimal | None) -> str:
    """A fraction as a percentage for people: 0.1 -> "10 %", 0.0000166 -> "0.0017 %"."""
    if fraction is None:
        return "unknown"
    value = fraction * 100
    text = f"{value:.{4 if abs(value) < 1 else 2}f}".rstrip("0").rstrip(".")
    return f"{text} %"


def thresholds_text(t: Thresholds | None) -> str:
    if t is None:
        return ""
    return (
        f"warn above ${t.warn_notional:,} or {t.warn_qty:,} shares; OTP above "
        f"${t.step_up_notional:,}; price collar {percent(t.collar_pct)}; share of ADV: warn "
        f"above {percent(t.warn_pct_adv)}, refuse above {percent(t.max_pct_adv)}"
    )


def _warning_text(review: ManualReview) -> str:
    """The words issue 12 asks for on a ``warn`` or ``step_up`` review."""
    notional = review.assessment.verdict.notional
    money = "?" if notional is None else f"${notional.quantize(CENT):,}"
    return (
        f"\u26a0\ufe0f This order ({money} / {review.request.intent.qty:,} shares) exceeds "
        "normal limits. Are you sure?"
    )


class PlaceOrderView:
    """The page's views (the form with its review and submit steps, and the result), bound to
    the OrderAdmin for each_context and opts."""

    def __init__(self, model_admin: Any) -> None:
        self.model_admin = model_admin

    def _context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.model_admin.admin_site.each_context(request),
            "opts": Order._meta,
            "title": "Place order",
            **extra,
        }

    def _require(self, request: HttpRequest) -> None:
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied

    def place(self, request: HttpRequest) -> HttpResponse:
        self._require(request)
        if request.method != "POST":
            initial = {
                "nonce": secrets.token_hex(16),
                "strategy": MANUAL_STRATEGY_ID,
                "symbol": request.GET.get("symbol", ""),
            }
            return self._form_page(request, PlaceOrderForm(initial=initial))
        form = PlaceOrderForm(request.POST)
        if not form.is_valid() or "_edit" in request.POST:
            return self._form_page(request, form)
        if "_submit" not in request.POST:
            return self._review(request, form)
        confirm = ConfirmForm(request.POST)
        confirm.is_valid()  # all optional; an invalid one (a too long code) counts as absent
        try:
            result = manual_place(
                request=form.manual_request(),
                user=request.user,
                token=confirm.cleaned_data.get("review_token", ""),
                confirmed=bool(confirm.cleaned_data.get("confirm")),
                otp_token=confirm.cleaned_data.get("otp_token", ""),
                session=request.session,
            )
        except TradeOpsError as exc:
            return self._form_page(request, form, error=exc)
        if result.review is not None:
            return self._review_page(request, form, result.review, errors=result.errors)
        return HttpResponseRedirect(self._result_url(result))

    def _review(self, request: HttpRequest, form: PlaceOrderForm) -> HttpResponse:
        try:
            review = manual_review(request=form.manual_request(), user=request.user)
        except TradeOpsError as exc:
            return self._form_page(request, form, error=exc)
        return self._review_page(request, form, review)

    def _form_page(
        self, request: HttpRequest, form: PlaceOrderForm, *, error: TradeOpsError | None = None
    ) -> HttpResponse:
        if error is not None:
            fields = (error.details or {}).get("fields", {})
            for name, messages in fields.items():
                form.add_error(name if name in form.fields else None, list(messages))
            if not fields:
                form.add_error(None, f"{error.message} ({error.code})")
        symbol = symbol_or_none(form["symbol"].value())
        market = manual_market(symbol) if symbol else None
        context = self._context(
            request,
            form=form,
            stage="form",
            market=market,
            thresholds_text=thresholds_text(market.thresholds if market else None),
        )
        return TemplateResponse(request, "admin/orders/place.html", context)

    def _review_page(
        self,
        request: HttpRequest,
        form: PlaceOrderForm,
        review: ManualReview,
        *,
        errors: list[str] | None = None,
    ) -> HttpResponse:
        confirm = ConfirmForm(initial={"review_token": review.token})
        verdict = review.assessment.verdict
        context = self._context(
            request,
            title="Review order",
            stage="review",
            form=_hidden_terms(form),
            confirm_form=confirm,
            review=review,
            market=review.market,
            verdict=verdict,
            warning=_warning_text(review),
            pct_adv=percent(verdict.pct_adv),
            thresholds_text=thresholds_text(review.market.thresholds),
            errors=errors or [],
        )
        return TemplateResponse(request, "admin/orders/place.html", context)

    def _result_url(self, result: ManualResult) -> str:
        if result.plan is not None:
            url = reverse("admin:orders_order_place_result", args=["plan", result.plan.pk])
        else:
            assert result.order is not None  # noqa: S101 - a result without a review has one
            url = reverse("admin:orders_order_place_result", args=["order", result.order.pk])
        return url + ("?replayed=1" if result.replayed else "")

    def result(self, request: HttpRequest, kind: str, pk: int) -> HttpResponse:
        self._require(request)
        if kind not in ("order", "plan"):
            raise Http404
        model = SlicingPlan if kind == "plan" else Order
        placed = get_object_or_404(model, pk=pk)
        context = self._context(
            request,
            title="Order placed" if kind == "order" else "TWAP plan placed",
            kind=kind,
            placed=placed,
            replayed=bool(request.GET.get("replayed")),
            change_url=reverse(f"admin:orders_{model._meta.model_name}_change", args=[pk]),
        )
        return TemplateResponse(request, "admin/orders/place_result.html", context)

"""The operators' admin: every page needs a password AND a verified TOTP device."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.views.decorators.debug import sensitive_variables
from django_otp.admin import OTPAdminSite

from tradeops.login import admin_login_verify


class TradeOpsLoginForm(AdminAuthenticationForm):
    """Username, password and OTP code in one submit, checked together by
    ``admin_login_verify``: no device list that appears once the password is right, and one
    answer for every failure."""

    otp_token = forms.CharField(
        label="OTP code",
        max_length=32,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="From your authenticator app (or a backup code).",
    )

    @sensitive_variables("password", "token")
    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        token = self.cleaned_data.get("otp_token")
        if not (username and password and token):
            return self.cleaned_data  # the missing field says so
        verdict = admin_login_verify(
            request=self.request, username=username, password=password, token=token
        )
        if verdict.user is None:
            code = "throttled" if verdict.throttled else "invalid_login"
            raise forms.ValidationError(verdict.message, code=code)
        self.user_cache = verdict.user
        return self.cleaned_data


class TradeOpsAdminSite(OTPAdminSite):
    site_header = "TradeOps"
    site_title = "TradeOps"
    index_title = "Operations console"
    login_form = TradeOpsLoginForm
    login_template = "admin/tradeops/login.html"

    def __init__(self, name: str = "admin") -> None:
        # OTPAdminSite defaults to name="otpadmin"; "admin" keeps every admin: URL name working.
        super().__init__(name)

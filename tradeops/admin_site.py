"""The operators' admin: every page needs a password AND a verified TOTP device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django.urls import reverse
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


@dataclass(frozen=True)
class AdminPage:
    """A custom admin page (a ModelAdmin's get_urls view) listed on the index under its app,
    like a model, for users holding ``permission``."""

    app_label: str
    name: str
    url_name: str
    permission: str


class TradeOpsAdminSite(OTPAdminSite):
    site_header = "TradeOps"
    site_title = "TradeOps"
    index_title = "Operations console"
    login_form = TradeOpsLoginForm
    login_template = "admin/tradeops/login.html"

    def __init__(self, name: str = "admin") -> None:
        # OTPAdminSite defaults to name="otpadmin"; "admin" keeps every admin: URL name working.
        super().__init__(name)
        self.pages: list[AdminPage] = []

    def register_page(self, page: AdminPage) -> None:
        self.pages.append(page)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = super().get_app_list(request, app_label)
        for app in apps:
            for page in self.pages:
                if page.app_label != app["app_label"]:
                    continue
                if not request.user.has_perm(page.permission):
                    continue
                url = reverse(f"{self.name}:{page.url_name}")
                app["models"].append(
                    {
                        "name": page.name,
                        "object_name": page.name.replace(" ", ""),
                        "perms": {"view": True},
                        "admin_url": url,
                        "add_url": None,
                        "view_only": True,
                    }
                )
            app["models"].sort(key=lambda m: str(m["name"]).lower())
        return apps

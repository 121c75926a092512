"""python manage.py otp_code <user> (demo only)"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = (
        "Print the current TOTP code of a user's device, for the demo on a machine without an "
        "authenticator app. Refuses to run unless TradeOps uses the built-in paper broker."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.USING_PAPER_BROKER:
            raise CommandError("otp_code exists for the demo only (ALPACA keys are set).")
        user = get_user_model().objects.filter(username=options["username"]).first()
        device = TOTPDevice.objects.filter(user=user).first() if user else None
        if device is None:
            raise CommandError(f"No TOTP device for '{options['username']}'.")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        totp.time = time.time()
        left = device.step - int(time.time() - device.t0) % device.step
        self.stdout.write(f"{totp.token():0{device.digits}d}  (valid for {left}s more)")

"""python manage.py otp_enroll <user>"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from tradeops.otp import qr_text, totp_device_create


class Command(BaseCommand):
    help = (
        "Enroll a TOTP device for a user: prints the otpauth:// URL and a QR code to scan with "
        "an authenticator app. The admin refuses every page without a verified device."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="Device name")
        parser.add_argument(
            "--replace", action="store_true", help="Delete the user's existing TOTP devices first"
        )
        parser.add_argument("--no-qr", action="store_true", help="Print only the URL")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user '{options['username']}'.")
        if not options["replace"] and TOTPDevice.objects.filter(user=user).exists():
            raise CommandError("The user already has a TOTP device; use --replace to rotate it.")
        device = totp_device_create(
            user=user,
            name=options["name"],
            replace=options["replace"],
            actor="command:otp_enroll",
        )
        self.stdout.write(f"TOTP device '{device.name}' enrolled for {user.get_username()}.")
        self.stdout.write(f"otpauth URL: {device.config_url}")
        if not options["no_qr"]:
            self.stdout.write(qr_text(device.config_url))

"""python manage.py force_complete_reconciliation --reason ... --user ... [--otp CODE]"""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reconciliation.gate import reconciliation_force_complete
from tradeops.errors import TradeOpsError
from tradeops.otp import command_user


class Command(BaseCommand):
    help = (
        "Open the reconciliation gate without a reconciliation (e.g. the broker's order list "
        "is unavailable but an operator has verified the account by hand). Needs a user with "
        "permission reconciliation.manage_reconciliation, a reason and a fresh OTP code of "
        "that user (asked for if --otp is omitted). Audited; every order placed under the "
        "override is flagged and logged; the override ages out like a reconciliation."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reason", required=True)
        parser.add_argument("--user", required=True, help="Operator username")
        parser.add_argument("--otp", help="Current OTP code (prompted when omitted)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = command_user(options["user"])
            token = options["otp"] or getpass.getpass("OTP code: ")
            reconciliation_force_complete(actor=user, reason=options["reason"], otp_token=token)
        except TradeOpsError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write("gate opened by override (audited); it ages out like a reconciliation")

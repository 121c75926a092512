"""python manage.py quarantines {list,clear}"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reconciliation.models import Quarantine
from reconciliation.services import quarantine_clear
from tradeops.errors import TradeOpsError
from tradeops.otp import command_step_up
from tradeops.reasons import reason_clean


class Command(BaseCommand):
    help = (
        "List quarantines, or clear one by id (refused while its orphan is unresolved: adopt, "
        "cancel or resolve the orphan first with `manage.py orphans`). Clearing acts as operator "
        "--user and needs a fresh OTP code of theirs (--otp, asked for when omitted). Audited."
    )

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("list", help="Active quarantines (--all for cleared too)")
        ls.add_argument("--all", action="store_true")
        clear = sub.add_parser("clear", help="Clear one quarantine")
        clear.add_argument("quarantine_id", type=int)
        clear.add_argument("--reason", required=True)
        clear.add_argument("--user", required=True, help="Operator username (step-up)")
        clear.add_argument("--otp", help="A fresh OTP code (asked for when omitted)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            qs = Quarantine.objects.select_related("orphan")
            if not options["all"]:
                qs = qs.active()
            rows = list(qs[:500])
            for q in rows:
                state = "active" if q.is_active else f"cleared by {q.cleared_by}"
                self.stdout.write(f"{q.pk:>6}  {q.key:24} {state:24} {q.reason}")
            self.stdout.write(f"{len(rows)} quarantine(s)")
            return
        quarantine = Quarantine.objects.filter(pk=options["quarantine_id"]).first()
        if quarantine is None:
            raise CommandError(f"No quarantine {options['quarantine_id']}.")
        try:
            reason_clean(options["reason"])  # before a code is spent on a refused reason
            user, step_up = command_step_up(
                username=options["user"], otp=options["otp"], action="quarantine.clear"
            )
            quarantine_clear(
                quarantine=quarantine, actor=user, reason=options["reason"], step_up=step_up
            )
        except TradeOpsError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"cleared {quarantine.key}")

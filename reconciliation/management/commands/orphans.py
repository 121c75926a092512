"""python manage.py orphans {list,adopt,cancel,narrow,resolve}"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from orders.models import Strategy
from reconciliation.models import OrphanOrder
from reconciliation.services import orphan_adopt, orphan_cancel, orphan_narrow, orphan_resolve
from tradeops.errors import TradeOpsError
from tradeops.otp import command_step_up
from tradeops.reasons import reason_clean

STEP_UP = {"adopt": "orphan.adopt", "narrow": "quarantine.narrow"}


class Command(BaseCommand):
    help = (
        "Review and resolve orphan orders (broker orders TradeOps did not place). list: show "
        "them; adopt ID --strategy S: take one into the ledger (lifts its quarantine); cancel "
        "ID: cancel it at the broker; narrow ID: quarantine only 'external' instead of every "
        "strategy; resolve ID: acknowledge one that finished at the broker. ID is the broker "
        "order id. Every change needs --reason and is audited (actor: --actor). adopt and "
        "narrow lift a fence: they act as operator --user and need a fresh OTP code of theirs "
        "(--otp, asked for when omitted)."
    )

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("list", help="List orphans")
        ls.add_argument("--all", action="store_true", help="Include resolved ones")
        for name in ("adopt", "cancel", "narrow", "resolve"):
            p = sub.add_parser(name, help=f"{name} an orphan")
            p.add_argument("broker_order_id")
            p.add_argument("--reason", required=True)
            p.add_argument("--dry-run", action="store_true", help="Show what would happen")
            if name in STEP_UP:
                p.add_argument("--user", required=True, help="Operator username (step-up)")
                p.add_argument("--otp", help="A fresh OTP code (asked for when omitted)")
            else:
                p.add_argument("--actor", default="command:orphans", help="Who (for the audit)")
            if name == "adopt":
                p.add_argument("--strategy", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            self._list(options["all"])
            return
        orphan = OrphanOrder.objects.filter(broker_order_id=options["broker_order_id"]).first()
        if orphan is None:
            raise CommandError(f"No orphan with broker order id {options['broker_order_id']}.")
        if options["dry_run"]:
            self.stdout.write(f"would {options['action']} {orphan}")
            return
        try:
            # the reason first: no code is spent on a refused reason
            kwargs: dict[str, Any] = {"orphan": orphan, "reason": reason_clean(options["reason"])}
            if options["action"] in STEP_UP:
                kwargs["actor"], kwargs["step_up"] = command_step_up(
                    username=options["user"], otp=options["otp"], action=STEP_UP[options["action"]]
                )
            else:
                kwargs["actor"] = options["actor"]
            if options["action"] == "adopt":
                strategy = Strategy.objects.filter(pk=options["strategy"]).first()
                if strategy is None:
                    raise CommandError(f"No strategy '{options['strategy']}'.")
                order = orphan_adopt(strategy=strategy, **kwargs)
                self.stdout.write(f"adopted as order {order.client_order_id} ({strategy.pk})")
            elif options["action"] == "cancel":
                orphan = orphan_cancel(**kwargs)
                self.stdout.write(
                    f"cancel sent: broker status {orphan.broker_status}, orphan {orphan.status}"
                )
            elif options["action"] == "narrow":
                self.stdout.write(f"narrowed {orphan_narrow(**kwargs)} quarantine(s)")
            else:
                orphan_resolve(**kwargs)
                self.stdout.write("resolved")
        except TradeOpsError as exc:
            raise CommandError(exc.message) from None

    def _list(self, include_all: bool) -> None:
        qs = OrphanOrder.objects.all()
        if not include_all:
            qs = qs.filter(status=OrphanOrder.Status.UNTRACKED)
        rows = list(qs[:500])
        for o in rows:
            self.stdout.write(
                f"{o.broker_order_id}  {o.symbol:6} {o.side:4} {o.qty:>7} "
                f"filled {o.filled_qty:>7}  {o.broker_status:16} {o.status:9} "
                f"detected {o.detected_at:%Y-%m-%d %H:%M:%S}"
            )
        self.stdout.write(f"{len(rows)} orphan(s)")

"""python manage.py promote_model"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from signals.models import ModelVersion, ShadowValidation
from signals.promotion import model_promote
from signals.registry import ModelError, model_get
from tradeops.errors import TradeOpsError

POLL_SECONDS = 0.5


class Command(BaseCommand):
    help = (
        "Ask for model NAME VERSION to go live. A django-q2 job shadow-validates it against "
        "the active model (the first model: a sanity check only); it goes live if it passes, "
        "else it is marked rejected and the active model keeps serving. With --wait, prints the "
        "validation's figures and exits 0 when the version went live, 1 when it was rejected "
        "(2 when no result came within --timeout)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("version", type=int)
        parser.add_argument(
            "--reason", required=True, help="Why (recorded in the audit trail; 5+ characters)"
        )
        parser.add_argument("--wait", action="store_true", help="Wait for the validation")
        parser.add_argument(
            "--timeout", type=float, default=300.0, help="Seconds --wait waits (default 300)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = model_get(name=options["name"], version=options["version"])
            validation = model_promote(
                model=model, actor="command:promote_model", reason=options["reason"]
            )
        except (ModelError, TradeOpsError) as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"promote_model: {model.label} sent to {validation.get_kind_display()} "
            f"(validation {validation.pk})"
        )
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while validation.status != ShadowValidation.Status.FINISHED:
            if time.monotonic() > deadline:
                self.stderr.write(
                    f"promote_model: no result within {options['timeout']:.0f}s (is a job "
                    "cluster running? `manage.py qcluster`); the validation stays queued"
                )
                raise SystemExit(2)
            time.sleep(POLL_SECONDS)
            validation.refresh_from_db()
        self._report(validation)
        model.refresh_from_db()
        if model.status != ModelVersion.Status.ACTIVE:
            raise SystemExit(1)

    def _report(self, v: ShadowValidation) -> None:
        w = self.stdout.write
        w(f"validation {v.pk} ({v.kind}): {v.outcome}")
        if v.baseline_id:
            w(f"  against:          {v.baseline.label}")
        w(f"  sample:           {v.n_samples} rows over {v.n_dates} dates ({v.sample_source})")
        figures = [
            ("spearman (mean)", v.spearman_mean, f">= {v.min_correlation}"),
            ("spearman (min)", v.spearman_min, ""),
            ("divergence", v.divergence, f"<= {v.max_divergence}"),
            ("pearson", v.pearson, "(recorded)"),
            ("sign changes", v.sign_change_rate, "(recorded)"),
        ]
        for label, value, rule in figures:
            if value is not None:
                w(f"  {label + ':':<18}{value:.4f} {rule}")
        if v.new_min is not None:
            w(f"  new range:        {v.new_min:.6g} .. {v.new_max:.6g}")
        if v.old_min is not None:
            w(f"  old range:        {v.old_min:.6g} .. {v.old_max:.6g}")
        w(f"  finite: {v.finite}  non-constant: {v.non_constant}")
        for reason in v.reasons or ([v.error_text] if v.error_text else []):
            w(f"  reason: {reason}")

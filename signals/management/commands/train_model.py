"""python manage.py train_model"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from signals.registry import ModelError
from signals.training import DEFAULT_ROUNDS, model_train


def iso_date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {raw!r}") from None


class Command(BaseCommand):
    help = (
        "Train a LightGBM model on the stored daily bars of SIGNAL_UNIVERSE (next-day return "
        "in excess of the day's mean as the label) and register it as a candidate. It does not "
        "go live: promote_model NAME VERSION asks for that (shadow validation first). Run "
        "sync_bars --days N first for enough history."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--name", required=True, help="Model name (lowercase, - and _)")
        parser.add_argument("--start", type=iso_date, help="First feature date (YYYY-MM-DD)")
        parser.add_argument("--end", type=iso_date, help="Last date whose bars may be used")
        parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="Boosting rounds")
        parser.add_argument("--seed", type=int, default=7, help="LightGBM seed")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["rounds"] <= 5000:
            raise CommandError("--rounds must be between 1 and 5000")
        if options["start"] and options["end"] and options["start"] > options["end"]:
            raise CommandError("--start is after --end")
        self.stdout.write(f"train_model: training {options['name']} on stored bars...")
        try:
            model = model_train(
                name=options["name"],
                symbols=settings.SIGNAL_UNIVERSE,
                actor="command:train_model",
                start=options["start"],
                end=options["end"],
                rounds=options["rounds"],
                seed=options["seed"],
            )
        except ModelError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"train_model: registered {model.name} version {model.version} (candidate), "
            f"{model.training_rows} rows {model.training_start}..{model.training_end}, "
            f"sha256 {model.artifact_sha256[:12]}"
        )

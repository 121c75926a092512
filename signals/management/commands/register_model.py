"""python manage.py register_model"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from signals.features import FEATURE_SET_VERSION
from signals.registry import ModelError, model_register


class Command(BaseCommand):
    help = (
        "Register a LightGBM model trained elsewhere (a text file from Booster.save_model; "
        "pickles are refused) as the next version of NAME, a candidate. Its features must be "
        "the feature set's, in order (docs/signals.md). Prints the new version."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="LightGBM text model file")
        parser.add_argument("--name", required=True, help="Model name (lowercase, - and _)")
        parser.add_argument(
            "--feature-set",
            default=FEATURE_SET_VERSION,
            help=f"Feature set it was trained on (default {FEATURE_SET_VERSION})",
        )
        parser.add_argument("--note", default="", help="Why (recorded in the audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            model = model_register(
                data=data,
                name=options["name"],
                actor="command:register_model",
                feature_set_version=options["feature_set"],
                note=options["note"],
            )
        except ModelError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"register_model: {model.name} version {model.version} registered (candidate), "
            f"sha256 {model.artifact_sha256}"
        )
        self.stdout.write(str(model.version))

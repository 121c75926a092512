"""python manage.py sync_assets [--dry-run]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marketdata.assets import AssetListUnavailable, assets_preview, assets_refresh


class Command(BaseCommand):
    help = (
        "Load the broker's asset list into the cache now (the daily job does the same on "
        "ASSETS_REFRESH_CRON). Use it after the broker halts, delists or restricts a symbol, "
        "so orders and TWAP slices are judged on the new list at once. --dry-run fetches the "
        "list and prints what would change, writing nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print the changes only")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("loading the broker's asset list...")
        try:
            if options["dry_run"]:
                preview = assets_preview()
                for line in preview.lines:
                    self.stdout.write(f"  {line}")
                self.stdout.write(
                    f"dry run: {preview.loaded} assets; {len(preview.lines)} changes, "
                    "nothing written"
                )
                return
            result = assets_refresh()
        except AssetListUnavailable as exc:
            raise CommandError(f"asset list not loaded: {exc}") from None
        self.stdout.write(
            f"asset list loaded: {result.loaded} assets ({result.tradable} tradable), "
            f"{result.removed} removed"
        )

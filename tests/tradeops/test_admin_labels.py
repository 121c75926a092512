"""What an operator reads in the admin: plural names, and models that match their migrations."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command

pytestmark = pytest.mark.django_db

OUR_APPS = ("tradeops", "orders", "reconciliation", "signals", "marketdata")


def test_the_admin_index_spells_plurals_right(ops_admin: Any) -> None:
    html = ops_admin.get("/admin/").content.decode()
    assert "Trading switches" in html and "Position mismatches" in html
    assert "switchs" not in html and "mismatchs" not in html


@pytest.mark.parametrize(
    "model",
    [m for m in apps.get_models() if m._meta.app_label in OUR_APPS],
    ids=lambda m: m._meta.label,
)
def test_no_naive_plural(model: Any) -> None:
    # Django's default plural adds "s": "switch" -> "switchs".
    name, plural = str(model._meta.verbose_name), str(model._meta.verbose_name_plural)
    if name.endswith(("s", "x", "z", "ch", "sh")):
        assert plural != f"{name}s", f"{model._meta.label}: set verbose_name_plural"


def test_models_and_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)

"""Process start stays light: ``django.setup()`` must not import the scientific stack or
alpaca-py's market-data models. They cost ~2.5 s of CPU per process (each qcluster worker,
``reconcile --once``, every management command) and only the code that reads bars, quotes or
features needs them — it imports them where it uses them (issue 14 point 8, cold start)."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from tradeops.checks import TRADING

from .probe import fresh_process_json

HEAVY = ("pandas", "numpy", "lightgbm", "scipy", "alpaca.data")
PROBE = (
    "import django, json, sys; django.setup(); "
    f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
)


def heavy_modules_after_setup(code: str = PROBE) -> list[str]:
    return fresh_process_json(code)


def test_django_setup_imports_no_heavy_module() -> None:
    assert heavy_modules_after_setup() == []


def test_the_probe_sees_a_heavy_import() -> None:
    """The check itself can fail: a module that imports pandas at import time is caught."""
    code = PROBE.replace("django.setup(); ", "django.setup(); import signals.features, pandas; ")
    assert heavy_modules_after_setup(code) == ["numpy", "pandas"]


# Web-only modules: the admin pages and forms, DRF's views and serializers, the OpenAPI schema.
# A process that serves no HTTP (qcluster, reconcile, run_slices) starts without them; the
# root URLconf loads them (tradeops/admin_config.py, tradeops/urls.py).
WEB_ONLY = (
    "orders.admin",
    "orders.admin_place",
    "reconciliation.admin",
    "reconciliation.api",
    "tradeops.admin_tools",
    "tradeops.api_schema",
    "drf_spectacular.plumbing",
    "rest_framework.serializers",
    "rest_framework.response",
    "django.test",
)
WEB_PROBE = (
    "import django, json, sys; django.setup(); "
    f"print(json.dumps(sorted(m for m in {WEB_ONLY!r} if m in sys.modules)))"
)


def test_django_setup_imports_no_web_module() -> None:
    assert heavy_modules_after_setup(WEB_PROBE) == []


def test_the_urlconf_registers_the_admin() -> None:
    """What setup no longer imports, the URLconf does: every app's ModelAdmins are registered
    and drf-spectacular knows the strategy token's scheme once the web's URLs load."""
    code = WEB_PROBE.replace(
        "django.setup(); ",
        "django.setup(); import tradeops.urls; from django.contrib import admin; "
        "from django.apps import apps; "
        "assert {m._meta.app_label for m in admin.site._registry} >= "
        "{'orders', 'reconciliation', 'signals', 'marketdata', 'tradeops', 'auth'}, "
        "admin.site._registry; "
        "from drf_spectacular.extensions import OpenApiAuthenticationExtension as E; "
        "assert any(getattr(e, 'name', None) == 'strategyToken' for e in E._registry); ",
    )
    assert set(heavy_modules_after_setup(code)) == set(WEB_ONLY)


def test_the_admin_checks_see_the_registry() -> None:
    """`manage.py check` (CI, deploy) still checks every ModelAdmin: the admin check discovers
    the admin modules before it runs, even when nothing loaded the URLconf."""
    code = WEB_PROBE.replace(
        "django.setup(); ",
        "django.setup(); from django.core import checks; "
        "checks.run_checks(tags=[checks.Tags.admin]); ",
    )
    assert {"orders.admin", "reconciliation.admin"} <= set(heavy_modules_after_setup(code))


WORKERS = ("qcluster", "reconcile", "run_slices", "stream_trade_updates", "stream_quotes")


def test_long_running_workers_run_only_the_trading_checks() -> None:
    """All checks load the URLconf (the whole web stack) and cost ~0.4 s per (re)start, which
    the startup reconciliation and so the order gate wait for; the workers run the trading
    checks only. ``qcluster`` is our subclass of django-q2's command (tradeops precedes
    django_q in INSTALLED_APPS)."""
    from django.core.management import get_commands, load_command_class
    from django_q.management.commands.qcluster import Command as DjangoQCluster

    commands = get_commands()
    assert commands["qcluster"] == "tradeops"
    for name in WORKERS:
        command = load_command_class(commands[name], name)
        assert command.requires_system_checks == [TRADING], name
    assert isinstance(load_command_class("tradeops", "qcluster"), DjangoQCluster)
    # migrate (the deploy step) still runs every check first; check and runserver run them
    # themselves
    assert load_command_class(commands["migrate"], "migrate").requires_system_checks == "__all__"


@override_settings(TIME_ZONE="Europe/Paris", SIGNAL_UNIVERSE=["AAPL", "not a symbol"])
def test_a_worker_still_refuses_a_trading_misconfiguration() -> None:
    """The trading checks stay in the workers' start: a non-UTC zone or a bad universe stops
    them (BaseCommand.execute raises SystemCheckError on these errors)."""
    ids = {m.id for m in checks.run_checks(tags=[TRADING]) if m.is_serious()}
    assert ids == {"tradeops.E001", "signals.E001"}
    with pytest.raises(SystemCheckError, match=r"tradeops\.E001"):
        call_command("reconcile", "--once", skip_checks=False)

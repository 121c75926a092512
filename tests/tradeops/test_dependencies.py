"""Dependencies point one way, one module talks to alpaca-py, and modules stay readable: checked
on the source (ast), so a change that breaks the shape fails here, not in review.

    tradeops  <-  marketdata  <-  orders  <-  reconciliation
                  marketdata  <-  signals
    paperbroker: an imitation of Alpaca, imports none of them

Where a lower layer needs something from a higher one, it lists a dotted path in settings
(PRETRADE_CHECKS, SLICE_PRESEND_CHECKS, HEALTH_CHECKS, METRICS_DB_GAUGES,
QUOTE_UNIVERSE_SOURCES, ...): a string, not an import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

APPS = ("tradeops", "marketdata", "orders", "reconciliation", "signals", "paperbroker")
# What each app may import of the others (itself always).
ALLOWED: dict[str, frozenset[str]] = {
    "tradeops": frozenset(),
    "marketdata": frozenset({"tradeops"}),
    "orders": frozenset({"tradeops", "marketdata"}),
    "reconciliation": frozenset({"tradeops", "marketdata", "orders"}),
    "signals": frozenset({"tradeops", "marketdata"}),
    "paperbroker": frozenset(),
}
# The composition roots: the URL configuration mounts every app, the demo starts them all.
ROOTS = frozenset({"tradeops/urls.py", "tradeops/management/commands/demo.py"})
# Interfaces are leaves: no other app builds on them (shared API pieces live in tradeops).
INTERFACES = ("api", "serializers", "admin", "urls")
# The broker seam (DESIGN §2): the only modules that import alpaca-py.
SEAM = (
    "tradeops/broker.py",
    "tradeops/broker_types.py",
    "tradeops/data_stream.py",
    "tradeops/trade_stream.py",
)
# STYLE.md: "a module past ~600 lines splits by concept".
MAX_LINES = 600


def sources() -> Iterator[tuple[str, Path]]:
    base = Path(settings.BASE_DIR)
    for app in APPS:
        for path in sorted((base / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield app, path


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute import in the file, those inside functions (lazy imports) included."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # "from orders import services" imports orders.services
                yield node.lineno, f"{node.module}.{alias.name}"


def edges() -> Iterator[tuple[str, str, int, str]]:
    """(app, file relative to the project, line, imported module) for every import."""
    base = Path(settings.BASE_DIR)
    for app, path in sources():
        relative = path.relative_to(base).as_posix()
        for line, module in imports_of(path):
            yield app, relative, line, module


def test_the_scan_sees_imports() -> None:
    """The rules below are only as good as the scan: it must see known imports, lazy ones too."""
    found = {(f, m) for _, f, _, m in edges()}
    assert ("orders/risk.py", "marketdata.quotes") in found
    assert ("reconciliation/engine.py", "orders.bulk_updates") in found
    assert ("tradeops/broker.py", "alpaca.trading.client") in found


def test_apps_import_only_the_layers_below_them() -> None:
    wrong = [
        f"{f}:{line} imports {module}"
        for app, f, line, module in edges()
        if (other := module.split(".")[0]) in APPS
        and other != app
        and other not in ALLOWED[app]
        and f not in ROOTS
    ]
    assert wrong == []


def test_no_app_builds_on_another_apps_interface() -> None:
    wrong = [
        f"{f}:{line} imports {module}"
        for app, f, line, module in edges()
        if (parts := module.split("."))[0] in APPS
        and parts[0] != app
        and len(parts) > 1
        and parts[1] in INTERFACES
        and f not in ROOTS
    ]
    assert wrong == []


def test_only_the_broker_seam_imports_alpaca() -> None:
    wrong = [
        f"{f}:{line} imports {module}"
        for _, f, line, module in edges()
        if module.split(".")[0] == "alpaca" and f not in SEAM
    ]
    assert wrong == []


def test_modules_stay_under_the_size_where_they_split_by_concept() -> None:
    base = Path(settings.BASE_DIR)
    long = [
        f"{path.relative_to(base).as_posix()}: {lines} lines"
        for _, path in sources()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert long == []


@pytest.mark.parametrize(
    "setting",
    [
        "PRETRADE_CHECKS",
        "PRETRADE_PREPARE",
        "PRETRADE_EXPOSURE_SOURCES",
        "SLICE_PRESEND_CHECKS",
        "HEALTH_CHECKS",
        "METRICS_DB_GAUGES",
        "QUOTE_UNIVERSE_SOURCES",
    ],
)
def test_every_hook_in_settings_can_be_imported(setting: str) -> None:
    """The hooks are what keeps the layering: a renamed function must not leave a dead path."""
    from django.utils.module_loading import import_string

    for path in getattr(settings, setting):
        assert callable(import_string(path)), path

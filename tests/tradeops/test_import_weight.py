"""Process start stays light: ``django.setup()`` must not import the scientific stack or
alpaca-py's market-data models. They cost ~2.5 s of CPU per process (each qcluster worker,
``reconcile --once``, every management command) and only the code that reads bars, quotes or
features needs them — it imports them where it uses them (issue 14 point 8, cold start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.conf import settings

HEAVY = ("pandas", "numpy", "lightgbm", "scipy", "alpaca.data")
PROBE = (
    "import django, json, sys; django.setup(); "
    f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
)


def heavy_modules_after_setup(code: str = PROBE) -> list[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradeops.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_django_setup_imports_no_heavy_module() -> None:
    assert heavy_modules_after_setup() == []


def test_the_probe_sees_a_heavy_import() -> None:
    """The check itself can fail: a module that imports pandas at import time is caught."""
    code = PROBE.replace("django.setup(); ", "django.setup(); import signals.features, pandas; ")
    assert heavy_modules_after_setup(code) == ["numpy", "pandas"]

"""Run a snippet in a fresh interpreter (Django's settings, this checkout) and read back the JSON
it prints last: what a new process imports is only visible from outside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from django.conf import settings


def fresh_process_json(code: str, **env: str) -> Any:
    """The JSON value on the last line ``code`` prints, run with ``env`` added."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tradeops.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])

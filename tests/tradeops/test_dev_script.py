"""``./dev``'s first run: it says what it installs and shows pip's progress, one short line
per package, without the local package mirror's warnings. pip is replaced by a script that
replays output recorded from a real ``pip install -r requirements.txt`` on this machine (a
real install takes a minute and needs the registry); everything else is the real script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.slow

# Recorded from pip 24 (stdout, then stderr) with the local mirror configured.
PIP_STDOUT = """\
Looking in indexes: https://pypi.org/simple, file:///opt/pypi/simple, file:///opt/pypi-more/simple
Looking in links: /opt/wheels
Collecting Django==5.2.19 (from -r requirements.txt (line 3))
  Downloading django-5.2.19-py3-none-any.whl (8.3 MB)
Processing /opt/pypi/files/dj_database_url-3.1.2-py3-none-any.whl (from -r requirements.txt (line 10))
Collecting asgiref>=3.8.1 (from Django==5.2.19->-r requirements.txt (line 3))
  Using cached asgiref-3.13.0-py3-none-any.whl (24 kB)
Installing collected packages: asgiref, Django, dj-database-url
Successfully installed Django-5.2.19 asgiref-3.13.0 dj-database-url-3.1.2
"""  # noqa: E501
PIP_STDERR = """\
WARNING: Location 'file:///opt/pypi-more/simple/django/' is ignored: it is neither a file nor a directory.
WARNING: Location 'file:///opt/pypi/simple/asgiref/' is ignored: it is neither a file nor a directory.
"""  # noqa: E501

FAKE_PYTHON = """#!/bin/sh
# pip replays the recorded output (and FAKE_PIP_STATUS); anything else is the real Python.
if [ "$1 $2" = "-m pip" ]; then
    echo "$*" >> "$FAKE_PIP_CALLS"
    cat "$FAKE_PIP_STDOUT"
    cat "$FAKE_PIP_STDERR" >&2
    exit "${FAKE_PIP_STATUS:-0}"
fi
exec "%s" "$@"
"""


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON % sys.executable)
    python.chmod(0o755)
    (tmp_path / "pip.out").write_text(PIP_STDOUT)
    (tmp_path / "pip.err").write_text(PIP_STDERR)
    return venv


def dev(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    tmp = venv.parent
    return subprocess.run(
        [str(Path(settings.BASE_DIR) / "dev"), *args],
        env={
            **os.environ,
            "VENV": str(venv),
            "FAKE_PIP_CALLS": str(tmp / "pip.calls"),
            "FAKE_PIP_STDOUT": str(tmp / "pip.out"),
            "FAKE_PIP_STDERR": str(tmp / "pip.err"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_first_run_says_what_it_installs_and_shows_one_line_per_package(fake_venv: Path) -> None:
    first = dev(fake_venv, "manage", "check")
    assert first.returncode == 0, first.stderr
    assert "System check identified no issues" in first.stdout  # then the command ran
    assert first.stderr.splitlines() == [
        f"dev: installing requirements.txt into {fake_venv} (about a minute the first time)...",
        "dev:   collecting Django==5.2.19",
        "dev:   collecting dj_database_url-3.1.2-py3-none-any.whl",
        "dev:   collecting asgiref>=3.8.1",
        "dev:   installing 3 packages...",
        "dev: requirements.txt installed",
    ]
    # Installed once: the next run goes straight to the command.
    second = dev(fake_venv, "manage", "check")
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert len((fake_venv.parent / "pip.calls").read_text().splitlines()) == 1


def test_a_failed_install_shows_pips_error_and_stops(fake_venv: Path) -> None:
    (fake_venv.parent / "pip.err").write_text(
        PIP_STDERR + "ERROR: No matching distribution found for Django==9.9\n"
    )
    failed = dev(fake_venv, "manage", "check", FAKE_PIP_STATUS="1")
    assert failed.returncode == 1
    assert failed.stdout == ""  # the command did not run
    assert "ERROR: No matching distribution found for Django==9.9" in failed.stderr
    assert "WARNING: Location" not in failed.stderr
    assert failed.stderr.endswith(
        "dev: installing requirements.txt failed (pip's errors are above)\n"
    )
    assert not (fake_venv / ".installed-requirements.txt").exists()  # tried again next time

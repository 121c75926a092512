"""The production web server as the README documents it: gunicorn with
deploy/gunicorn.conf.py, against the test database and the paper broker, serving an
authenticated order, with each request thread keeping its PostgreSQL connection."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from orders.models import Strategy
from orders.strategies import strategy_create, strategy_token_issue
from tests.helpers import wait_for
from tests.marketdata.support import free_port
from tests.orders.twap_support import database_url, manage_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(settings.BASE_DIR)
APP_NAME = "tradeops-gunicorn-test"


def documented_command() -> list[str]:
    """The README's production command, as written there."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^DATABASE_URL=\S+ (gunicorn -c \S+)$", readme, re.MULTILINE)
    assert match, "README: the production command is gone"
    name, *args = match.group(1).split()
    return [str(Path(sys.executable).parent / name), *args]


def web_backends() -> list[tuple[int, Any]]:
    """(pid, backend start) of the web's PostgreSQL connections, found by application name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s",
            [APP_NAME],
        )
        return cursor.fetchall()


@pytest.fixture
def gunicorn(paper: Any, trading_ready: None) -> Any:
    port = free_port()
    env = manage_env(
        paper,
        DATABASE_URL=f"{database_url()}?application_name={APP_NAME}",
        WEB_BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="1",
        WEB_THREADS="1",  # every request on one thread: one connection to watch
    )
    env.pop("DB_CONN_MAX_AGE", None)  # the config file's default is what is tested
    process = subprocess.Popen(
        documented_command(),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
        try:
            return requests.get(f"{url}/ready", timeout=10).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # still booting
            return False

    try:
        wait_for(ready, timeout=60, interval=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_documented_gunicorn_command_places_an_order_on_kept_connections(
    gunicorn: str, paper: Any
) -> None:
    strategy = Strategy.objects.filter(pk="alpha").first() or strategy_create(
        strategy_id="alpha", actor="test"
    )
    key = strategy_token_issue(strategy=strategy, actor="test")
    session = requests.Session()
    session.headers["Authorization"] = f"Token {key}"
    order = {"symbol": "AAPL", "side": "buy", "qty": 3, "type": "market", "time_in_force": "day"}

    placed = session.post(f"{gunicorn}/api/v1/orders", json=order, timeout=30)
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert body["status"] == "filled" and body["filled_qty"] == 3
    assert paper.submit_count(body["client_order_id"]) == 1
    again = session.post(f"{gunicorn}/api/v1/orders", json=order, timeout=30)
    assert again.status_code == 200 and again.json()["client_order_id"] == body["client_order_id"]
    assert requests.get(f"{gunicorn}/api/v1/orders", timeout=10).status_code == 401

    # One thread, one connection, kept between requests (DB_CONN_MAX_AGE from the config
    # file): the same PostgreSQL backend served every request and is still open after them.
    kept = web_backends()
    assert len(kept) == 1, kept
    for _ in range(3):
        got = session.get(f"{gunicorn}/api/v1/orders/{body['client_order_id']}", timeout=10)
        assert got.status_code == 200
    assert web_backends() == kept

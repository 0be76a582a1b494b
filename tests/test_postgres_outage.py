"""The database goes away and comes back while the app keeps running.

Issue 14's rule: during the outage content goes only to senders this server can be sure have not
opted out (its fresh mirror); an opt-out is honoured at once and kept on local disk, then written
to the database when it is back; /healthz says what is wrong; and once the server is back, the
same app (its pools reconnect by themselves) records opt-outs again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from mbcsms import create_app
from tests.helpers import app_env, post_signed
from tests.pg_server import PgServer, throwaway_server
from tests.twiml import messages, one_message


class Collected(logging.Handler):
    """The mbcsms logger's records, formatted as they reach stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        from mbcsms.logs import JsonFormatter

        self.lines.append(json.loads(JsonFormatter().format(record)))

    def events(self) -> list[object]:
        return [line["event"] for line in self.lines]


@pytest.fixture
def server() -> Iterator[PgServer]:
    with throwaway_server() as running:
        yield running


@pytest.fixture
def collected() -> Iterator[Collected]:
    handler = Collected()
    logger = logging.getLogger("mbcsms")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def wait_for_health(client: FlaskClient, status: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        response = client.get("/healthz")
        if response.status_code == status:
            return
        assert time.monotonic() < deadline, f"/healthz stayed {response.status_code}, not {status}"
        time.sleep(0.2)


def test_an_outage_and_a_recovery_without_restarting_the_app(
    server: PgServer, tmp_path: Path, collected: Collected
) -> None:
    app = create_app(app_env(tmp_path, DATABASE_URL=server.url(), MBCSMS_LOCAL_STATE=str(tmp_path / "l.db")))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert "HER2" in one_message(post_signed(client, "HER2"))
    assert app.extensions["mbcsms"].sync_mirror()

    server.stop()

    # A sender the fresh mirror knows has not opted out is still answered with content.
    assert "HER2" in one_message(post_signed(client, "HER2"))
    assert "store_breaker_opened" in collected.events()
    # An opt-out is honoured at once and kept locally: never a 503, never lost.
    stop_sid = "SM" + "7" * 32
    assert messages(post_signed(client, "STOP", sid=stop_sid)) == []
    assert messages(post_signed(client, "HER2")) == []
    assert "opt_change_kept_locally" in collected.events()
    health = client.get("/healthz")
    assert health.status_code == 503
    reason = health.get_data(as_text=True)
    assert reason.startswith("store unavailable: postgresql (breaker ") and len(reason) < 300

    server.start()

    wait_for_health(client, 200)
    assert "opt_changes_flushed" in collected.events()
    # Twilio's retry of the same STOP gets the same answer, and the bot stays silent.
    assert messages(post_signed(client, "STOP", sid=stop_sid)) == []
    assert messages(post_signed(client, "HER2")) == []
    assert not (tmp_path / "state.db").exists()  # never fell back to SQLite


def test_the_app_starts_while_the_database_is_down(server: PgServer, tmp_path: Path, collected: Collected) -> None:
    server.stop()
    app = create_app(app_env(tmp_path, DATABASE_URL=server.url(), MBCSMS_LOCAL_STATE=str(tmp_path / "l.db")))
    client = app.test_client()
    assert "store_schema_deferred" in collected.events()
    # Started during the outage, with no mirror: nothing but crisis replies until the store returns.
    assert messages(post_signed(client, "HER2")) == []
    assert "988" in one_message(post_signed(client, "I want to kill myself"))
    assert client.get("/healthz").status_code == 503

    server.start()

    # The schema is created on first use once the server is up.
    wait_for_health(client, 200)
    assert messages(post_signed(client, "STOP")) == []
    assert messages(post_signed(client, "HER2")) == []

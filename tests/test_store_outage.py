"""Issue 14 through the Flask test client, on both stores: while the store cannot be used, a
sender who opted out gets nothing, a crisis is answered in under 2 s, a sender the server can be
sure of is answered, opt-outs during the outage are honoured and reach the store afterwards.

The same checks run through the Procfile's gunicorn in test_procfile_outage.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from mbcsms import create_app
from mbcsms.bot import Bot, Inbound
from mbcsms.conversation import Reply, SenderState
from mbcsms.store import Recorded, StoreBusy
from mbcsms.store.sqlite import SQLiteStore
from tests.helpers import app_env, post_signed
from tests.outages import (
    CRISIS,
    HangingProxy,
    after_outage,
    before_outage,
    client_sender,
    during_outage,
    pending_changes,
    postgres_opted_out,
    sqlite_opted_out,
    sqlite_write_lock,
)
from tests.pg_server import PgServer, throwaway_server
from tests.twiml import messages, one_message

FAST = {"MBCSMS_STORE_RETRY_SECONDS": "0.5"}


@pytest.fixture
def server() -> Iterator[PgServer]:
    with throwaway_server() as running:
        yield running


def healthy(app: Flask) -> Callable[[], bool]:
    client = app.test_client()
    return lambda: client.get("/healthz").status_code == 200


def bot_of(app: object) -> Bot:
    return app.extensions["mbcsms"]  # type: ignore[attr-defined, no-any-return]


def test_sqlite_write_lock_held_from_outside(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    app = create_app(app_env(tmp_path, **FAST))
    client = app.test_client()
    send = client_sender(client)
    before = before_outage(send)
    with sqlite_write_lock(database):
        measured = during_outage(send, before, clear_is_known=True)  # the flag reads without the lock
        assert not sqlite_opted_out(database)  # LATE's opt-out waits on local disk...
        assert pending_changes(tmp_path / "state.db-local") == 1
    after_outage(send, healthy(app))
    assert sqlite_opted_out(database)  # ...and is in the store once it is back
    assert pending_changes(tmp_path / "state.db-local") == 0
    assert bot_of(app).events.counts["outage_seconds"] > 0
    assert measured.content_to_opted_out == 0


def test_postgresql_stopped(server: PgServer, tmp_path: Path) -> None:
    local = tmp_path / "local.db"
    app = create_app(app_env(tmp_path, DATABASE_URL=server.url(), MBCSMS_LOCAL_STATE=str(local), **FAST))
    bot = bot_of(app)
    send = client_sender(app.test_client())
    before = before_outage(send)
    assert bot.sync_mirror()  # what its background thread does every couple of seconds
    server.stop()
    during_outage(send, before, clear_is_known=True)  # the mirror is fresh: CLEAR is known
    assert app.test_client().get("/healthz").status_code == 503
    # A server that starts during the outage has no mirror: nothing but crisis replies.
    newcomer = create_app(app_env(tmp_path, DATABASE_URL=server.url(), MBCSMS_LOCAL_STATE=str(tmp_path / "new.db")))
    assert messages(post_signed(newcomer.test_client(), "HER2", sender="+15550201005")) == []
    assert "988" in one_message(post_signed(newcomer.test_client(), CRISIS, sender="+15550201005"))
    assert bot_of(newcomer).events.counts["replies_withheld_state_unknown"] == 1
    server.start()
    after_outage(send, healthy(app))
    assert postgres_opted_out(server.url())
    assert pending_changes(local) == 0
    assert app.test_client().get("/healthz").status_code == 200


def test_postgresql_hanging(server: PgServer, tmp_path: Path) -> None:
    proxy = HangingProxy(server.port)
    local = tmp_path / "local.db"
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    try:
        app = create_app(app_env(tmp_path, DATABASE_URL=url, MBCSMS_LOCAL_STATE=str(local), **FAST))
        bot = bot_of(app)
        send = client_sender(app.test_client())
        before = before_outage(send)
        assert bot.sync_mirror()
        proxy.hang()
        started = time.monotonic()
        during_outage(send, before, clear_is_known=True)
        # No request sat on the hanging database: about 30 requests in a few seconds.
        assert time.monotonic() - started < 15
        health = app.test_client().get("/healthz")
        assert health.status_code == 503 and "postgresql" in health.get_data(as_text=True)
        proxy.resume()
        after_outage(send, healthy(app))
        assert postgres_opted_out(server.url())
    finally:
        proxy.close()


def test_a_hanging_database_at_start_answers_crises_at_once(tmp_path: Path) -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        url = f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/x"
        app = create_app(app_env(tmp_path, DATABASE_URL=url, MBCSMS_LOCAL_STATE=str(tmp_path / "l.db")))
        client = app.test_client()
        for _ in range(3):
            started = time.perf_counter()
            assert "988" in one_message(post_signed(client, CRISIS))
            assert time.perf_counter() - started < 1.0
        assert messages(post_signed(client, "HER2")) == []  # no mirror: unsure, so nothing
        # An opt-out is still honoured (kept locally) and confirmed, never a 503.
        assert "ALTA" in one_message(post_signed(client, "PARAR"))
    finally:
        listener.close()


@pytest.mark.parametrize("damage", ["corrupt", "missing_directory"])
def test_a_broken_sqlite_file_withholds_content_and_keeps_opt_outs_locally(tmp_path: Path, damage: str) -> None:
    # Rule change (issue 14): content no longer goes out when the flag cannot be read.
    if damage == "corrupt":
        (tmp_path / "state.db").write_bytes(b"this is not a database" * 200)
        env = app_env(tmp_path)
    else:
        env = app_env(tmp_path, MBCSMS_DB=str(tmp_path / "gone" / "state.db"),
                      MBCSMS_LOCAL_STATE=str(tmp_path / "local.db"))
    client = create_app(env).test_client()
    assert messages(post_signed(client, "HER2")) == []
    assert "988" in one_message(post_signed(client, CRISIS))
    assert messages(post_signed(client, "STOP")) == []  # Twilio's word: its own confirmation
    assert post_signed(client, "STOP").status_code == 200
    assert client.get("/healthz").status_code == 503


def test_an_opt_out_is_refused_only_when_even_the_local_file_fails(tmp_path: Path) -> None:
    env = app_env(tmp_path, MBCSMS_DB=str(tmp_path / "gone" / "state.db"),
                  MBCSMS_LOCAL_STATE=str(tmp_path / "gone-too" / "local.db"))
    client = create_app(env).test_client()
    assert post_signed(client, "STOP").status_code == 503
    assert post_signed(client, "START").status_code == 503
    assert "988" in one_message(post_signed(client, CRISIS))


# A request that waited for the store would take LOCK_WAIT seconds; a crisis must not, by a
# margin no busy CI machine erodes (CRISIS_WAIT_SECONDS is 0.3).
LOCK_WAIT = "5"
NOT_WAITING = 2.5


def test_a_crisis_does_not_wait_for_a_locked_store_even_with_the_breaker_closed(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    app = create_app(app_env(tmp_path, MBCSMS_STORE_TIMEOUT=LOCK_WAIT))
    client = app.test_client()
    assert "HER2" in one_message(post_signed(client, "HER2"))
    with sqlite_write_lock(database):
        assert bot_of(app).breaker.state == "closed"
        started = time.perf_counter()
        assert "988" in one_message(post_signed(client, CRISIS))
        assert time.perf_counter() - started < NOT_WAITING


def test_a_crisis_behind_a_busy_write_lock_is_recorded_once_the_lock_frees(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    app = create_app(app_env(tmp_path, MBCSMS_STORE_TIMEOUT=LOCK_WAIT))
    client = app.test_client()
    assert "HER2" in one_message(post_signed(client, "HER2"))

    def answered() -> int:
        with contextlib.closing(sqlite3.connect(database)) as reader:
            return int(reader.execute("SELECT count(*) FROM answered").fetchone()[0])

    before = answered()
    with sqlite_write_lock(database):
        started = time.perf_counter()
        assert "988" in one_message(post_signed(client, CRISIS))
        assert time.perf_counter() - started < NOT_WAITING
        assert answered() == before
    deadline = time.monotonic() + 3
    while answered() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert answered() == before + 1  # finished on a store thread, not lost
    assert bot_of(app).breaker.state == "closed"


def test_a_store_call_in_a_hurry_gives_up_on_a_busy_lock_having_changed_nothing(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    store = SQLiteStore(database, busy_timeout_ms=int(float(LOCK_WAIT) * 1000))
    decided: list[SenderState] = []

    def decide(state: SenderState) -> tuple[Reply, SenderState]:
        decided.append(state)
        return Reply("crisis", "en", "call 911"), replace(state, lang="es")

    store.exchange("sender", "first", decide, 1.0)
    with sqlite_write_lock(database):
        started = time.perf_counter()
        with pytest.raises(StoreBusy):
            store.exchange("sender", "second", decide, 2.0, lock_wait=0.05)
        assert time.perf_counter() - started < NOT_WAITING
    assert len(decided) == 1
    # The same store carries on at once; the message it gave up on is answered as new.
    assert store.exchange("sender", "second", decide, 3.0, lock_wait=0.05) == Recorded("crisis", "en", True)
    assert len(decided) == 2 and decided[-1].lang == "es"


def test_the_breaker_stops_requests_waiting_on_the_store(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    app = create_app(app_env(tmp_path, MBCSMS_STORE_RETRY_SECONDS="30"))
    client = app.test_client()
    one_message(post_signed(client, "HER2"))
    with sqlite_write_lock(database):
        first = time.perf_counter()
        one_message(post_signed(client, "HER2"))  # waits out the lock timeout once
        assert time.perf_counter() - first >= 0.9
        assert bot_of(app).breaker.state == "open"
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_data(as_text=True).strip() == "store unavailable: sqlite (breaker open)"
        started = time.perf_counter()
        for _ in range(20):
            one_message(post_signed(client, "HER2"))
        assert time.perf_counter() - started < 1.0  # 20 answers, none waiting on the lock


def test_a_retried_message_during_the_outage_gets_its_first_reply(tmp_path: Path) -> None:
    app = create_app(app_env(tmp_path))
    client = app.test_client()
    sid = "SM" + "5" * 32
    first = one_message(post_signed(client, "what is her2", sid=sid))
    with sqlite_write_lock(tmp_path / "state.db"):
        assert one_message(post_signed(client, "what is her2", sid=sid)) == first


def test_counters_and_logs_say_what_the_outage_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(app_env(tmp_path, DATABASE_URL="postgresql://postgres@127.0.0.1:1/x",
                             MBCSMS_LOCAL_STATE=str(tmp_path / "l.db"), **FAST))
    bot = bot_of(app)
    heard: list[str] = []
    bot.events.listeners.append(lambda name, amount: heard.append(name))
    client = app.test_client()
    messages(post_signed(client, "HER2"))
    messages(post_signed(client, "STOP"))
    counts = bot.events.counts
    assert counts["replies_withheld_state_unknown"] == 1 and counts["opt_changes_kept_locally"] == 1
    assert counts["store_failures"] >= 1 and "store_failures" in heard
    logged = capsys.readouterr().out
    for event in ("store_breaker_opened", "reply_withheld_state_unknown", "opt_change_kept_locally"):
        assert f'"event": "{event}"' in logged


def test_an_opt_in_during_the_outage_wins_over_an_older_opt_out(tmp_path: Path) -> None:
    app = create_app(app_env(tmp_path, **FAST))
    client = app.test_client()
    assert messages(post_signed(client, "STOP")) == []
    with sqlite_write_lock(tmp_path / "state.db"):
        assert "Welcome back" in one_message(post_signed(client, "START"))
        assert "HER2" in one_message(post_signed(client, "HER2"))  # honoured at once
    time.sleep(0.6)
    assert "HER2" in one_message(post_signed(client, "HER2"))
    with sqlite3.connect(tmp_path / "state.db") as connection:
        assert connection.execute("SELECT opted_out FROM senders").fetchall() == [(0,)]


def test_reply_from_during_an_outage(tmp_path: Path) -> None:
    bot = bot_of(create_app(app_env(tmp_path)))
    with sqlite_write_lock(tmp_path / "state.db"):
        assert bot.answer(Inbound("+15550201009", CRISIS)).topic == "crisis"

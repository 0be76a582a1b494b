"""Issue 14 through the Procfile's gunicorn (2 workers), over real HTTP: SQLite's write lock held
from outside for 8 s, PostgreSQL stopped, PostgreSQL hanging. The checks are tests/outages.py's."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.outages import (
    HangingProxy,
    after_outage,
    before_outage,
    during_outage,
    http_sender,
    mirror_holds,
    postgres_opted_out,
    sqlite_opted_out,
    sqlite_write_lock,
)
from tests.pg_server import PgServer, throwaway_server
from tests.procfile_servers import Server, server_env, start, stop, wait_until_up

LOCK_HELD_SECONDS = 8.0


def healthy(server: Server) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def eventually(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.fixture
def pg() -> Iterator[PgServer]:
    with throwaway_server() as running:
        yield running


def test_sqlite_lock_held_for_8_seconds(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    env = server_env(tmp_path, MBCSMS_DB=str(database), DATABASE_URL="")  # the default 5 s pause
    server = start(tmp_path, "sqlite-outage", env)
    try:
        wait_until_up(server)
        send = http_sender(server.url)
        before = before_outage(send)
        with sqlite_write_lock(database):
            held = time.monotonic()
            measured = during_outage(send, before, clear_is_known=True)
            assert time.monotonic() - held < LOCK_HELD_SECONDS, "the checks must run while the lock is held"
            time.sleep(max(0.0, LOCK_HELD_SECONDS - (time.monotonic() - held)))
        after_outage(send, healthy(server))
        eventually(lambda: sqlite_opted_out(database))  # the opt-out taken during the outage
        print(f"crisis seconds (sqlite lock): max {max(measured.crisis_seconds):.3f}")
    finally:
        stop(server)


def test_postgresql_stopped_and_restarted(pg: PgServer, tmp_path: Path) -> None:
    local = tmp_path / "local.db"
    env = server_env(tmp_path, DATABASE_URL=pg.url(), MBCSMS_LOCAL_STATE=str(local), MBCSMS_STORE_RETRY_SECONDS="1")
    server = start(tmp_path, "pg-stopped", env)
    try:
        wait_until_up(server)
        send = http_sender(server.url)
        before = before_outage(send)
        mirror_holds(local, 3)  # the workers' sync threads have the opt-outs (STOP, PARAR, phrase)
        pg.stop()
        measured = during_outage(send, before, clear_is_known=True)
        pg.start()
        after_outage(send, healthy(server))
        eventually(lambda: postgres_opted_out(pg.url()))
        print(f"crisis seconds (postgresql stopped): max {max(measured.crisis_seconds):.3f}")
    finally:
        stop(server)


def test_postgresql_hanging(pg: PgServer, tmp_path: Path) -> None:
    proxy = HangingProxy(pg.port)
    local = tmp_path / "local.db"
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    env = server_env(tmp_path, DATABASE_URL=url, MBCSMS_LOCAL_STATE=str(local), MBCSMS_STORE_RETRY_SECONDS="1")
    server = start(tmp_path, "pg-hanging", env)
    try:
        wait_until_up(server)
        send = http_sender(server.url)
        before = before_outage(send)
        mirror_holds(local, 3)
        proxy.hang()
        measured = during_outage(send, before, clear_is_known=True)
        proxy.resume()
        after_outage(send, healthy(server))
        eventually(lambda: postgres_opted_out(pg.url()))
        print(f"crisis seconds (postgresql hanging): max {max(measured.crisis_seconds):.3f}")
    finally:
        stop(server)
        proxy.close()

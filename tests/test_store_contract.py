"""One contract, two stores: SQLite on a file and PostgreSQL on a real server must behave alike.

The PostgreSQL half needs MBCSMS_TEST_DATABASE_URL (.ci/postgres.sh sets it); each test gets a
schema of its own there, so tests never see each other's rows.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from mbcsms.conversation import Reply, SenderState
from mbcsms.store import Recorded, StateStore, StoreError, open_store
from mbcsms.store.postgres import PostgresStore
from mbcsms.store.sqlite import SQLiteStore
from tests.pg_server import free_port, fresh_schema, shared_url

NOW = 1_700_000_000.0
SENDER = "a" * 64  # stores only ever see keyed hashes


class Stores:
    """Opens store instances on one database, as several workers or dynos would."""

    def __init__(self, kind: str, location: str) -> None:
        self.kind = kind
        self.location = location
        self._opened: list[StateStore] = []

    def open(self) -> StateStore:
        store = open_kind(self.kind, self.location)
        self._opened.append(store)
        return store

    def unreachable(self, tmp_path: Path) -> StateStore:
        if self.kind == "sqlite":
            store: StateStore = SQLiteStore(tmp_path / "no-such-directory" / "state.db")
        else:
            store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", checkout_timeout=1.0)
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


def open_kind(kind: str, location: str) -> StateStore:
    # As the app opens its store: a database URL chooses PostgreSQL, none the SQLite file.
    if kind == "sqlite":
        return open_store(None, location)
    return open_store(location, "unused.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "sqlite":
        opened = Stores("sqlite", str(tmp_path / "state.db"))
        yield opened
        opened.close_all()
        return
    with fresh_schema(shared_url()) as url:
        opened = Stores("postgresql", url)
        yield opened
        opened.close_all()


def answer(reply: Reply, new_state: SenderState) -> Callable[[SenderState], tuple[Reply, SenderState]]:
    seen: list[SenderState] = []

    def decide(state: SenderState) -> tuple[Reply, SenderState]:
        seen.append(state)
        return reply, new_state

    decide.seen = seen  # type: ignore[attr-defined]
    return decide


def increment(state: SenderState) -> tuple[Reply, SenderState]:
    return Reply("count", "en", "ok"), replace(state, window_count=state.window_count + 1)


def current(store: StateStore, sender: str = SENDER) -> SenderState:
    """The stored state, read through the interface: decide sees it and changes nothing."""
    seen: list[SenderState] = []

    def look(state: SenderState) -> tuple[Reply, SenderState]:
        seen.append(state)
        return Reply("look", "en", None), state

    store.exchange(sender, None, look, NOW)
    return seen[0]


def test_a_new_sender_starts_from_the_default_state(stores: Stores) -> None:
    store = stores.open()
    assert store.name == stores.kind
    assert current(store) == SenderState()


def test_migrate_creates_the_schema_and_can_run_again(stores: Stores) -> None:
    store = stores.open()
    for _ in range(2):  # every deploy's release phase runs it again
        ready = store.migrate()
        assert ready.startswith("SQLite schema is ready in " if stores.kind == "sqlite" else "PostgreSQL schema")
    store.exchange(SENDER, "m1", increment, NOW)
    store.migrate()  # and it keeps what is stored
    assert current(store).window_count == 1


def test_state_round_trips(stores: Stores) -> None:
    store = stores.open()
    full = SenderState(lang="es", last_lang="en", opted_out=True, last_menu="es",
                       window_start=NOW - 12.5, window_count=7, window_noticed=True)
    recorded = store.exchange(SENDER, "m1", answer(Reply("her2", "es", "texto"), full), NOW)
    assert recorded == Recorded("her2", "es", True)
    assert current(store) == full
    assert current(store, "b" * 64) == SenderState()  # other senders are untouched


def test_a_retried_message_gets_its_recorded_reply_and_changes_nothing(stores: Stores) -> None:
    store = stores.open()
    first = store.exchange(SENDER, "m1", increment, NOW)
    decide = answer(Reply("other", "es", "otro"), SenderState(opted_out=True, window_count=99))
    again = store.exchange(SENDER, "m1", decide, NOW + 5)
    assert again == first == Recorded("count", "en", True)
    assert decide.seen == []  # type: ignore[attr-defined]
    assert current(store) == SenderState(window_count=1)
    # ...and the retry is recognised by another worker's store too.
    assert stores.open().exchange(SENDER, "m1", decide, NOW + 6) == first
    assert current(store) == SenderState(window_count=1)


def test_a_retry_sends_no_content_to_a_sender_who_opted_out_since(stores: Stores) -> None:
    store = stores.open()
    store.exchange(SENDER, "m1", answer(Reply("her2", "en", "HER2..."), SenderState()), NOW)
    store.exchange(SENDER, "m2", answer(Reply("crisis", "en", "911..."), SenderState()), NOW)
    store.exchange(SENDER, "m3", answer(Reply("stop", "es", "No recibirá..."), SenderState(opted_out=True)), NOW)
    assert store.exchange(SENDER, "m1", increment, NOW) == Recorded("her2", "en", False)
    assert store.exchange(SENDER, "m2", increment, NOW) == Recorded("crisis", "en", True)
    assert store.exchange(SENDER, "m3", increment, NOW) == Recorded("stop", "es", True)


def test_a_silent_reply_is_recorded_as_not_sent(stores: Stores) -> None:
    store = stores.open()
    store.exchange(SENDER, "m1", answer(Reply("stop", "en", None), SenderState(opted_out=True)), NOW)
    assert store.exchange(SENDER, "m1", increment, NOW) == Recorded("stop", "en", False)


def test_messages_without_an_id_are_never_deduplicated(stores: Stores) -> None:
    store = stores.open()
    for _ in range(3):
        store.exchange(SENDER, None, increment, NOW)
    assert current(store).window_count == 3


def test_an_opt_out_is_seen_by_another_store_on_the_same_database(stores: Stores) -> None:
    worker_a, worker_b = stores.open(), stores.open()
    worker_a.exchange(SENDER, "stop", answer(Reply("stop", "en", None), SenderState(opted_out=True)), NOW)
    assert current(worker_b).opted_out is True
    worker_b.exchange(SENDER, "start", answer(Reply("start", "en", "hi"), SenderState(opted_out=False)), NOW)
    assert current(worker_a).opted_out is False


def test_a_failing_decision_changes_nothing(stores: Stores) -> None:
    store = stores.open()
    store.exchange(SENDER, "m1", increment, NOW)

    def broken(state: SenderState) -> tuple[Reply, SenderState]:
        raise ValueError("bug in the rules")

    with pytest.raises(ValueError):
        store.exchange(SENDER, "m2", broken, NOW)
    assert current(store).window_count == 1
    # The message was not recorded as answered: its retry is decided afresh.
    assert store.exchange(SENDER, "m2", increment, NOW) == Recorded("count", "en", True)
    assert current(store).window_count == 2


def test_concurrent_exchanges_from_several_threads_lose_no_update(stores: Stores) -> None:
    workers = [stores.open(), stores.open()]  # two "dynos", each with threads
    errors: list[BaseException] = []

    def run(thread: int) -> None:
        store = workers[thread % 2]
        try:
            for i in range(10):
                store.exchange(SENDER, f"t{thread}-{i}", increment, NOW)
        except BaseException as error:  # surfaced below, with the count
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert current(workers[0]).window_count == 50


def _increments_in_another_process(kind: str, location: str, prefix: str, count: int) -> None:
    store = open_kind(kind, location)
    try:
        for i in range(count):
            store.exchange(SENDER, f"{prefix}-{i}", increment, NOW)
    finally:
        store.close()


def test_concurrent_exchanges_from_several_processes_lose_no_update(stores: Stores) -> None:
    # spawn, not fork: a forked copy of this process would share the parent's sockets and locks.
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_increments_in_another_process, args=(stores.kind, stores.location, f"p{n}", 25))
        for n in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert current(stores.open()).window_count == 50


def test_several_stores_can_start_at_once(stores: Stores) -> None:
    # Several workers creating the schema together must not trip over each other.
    opened: list[StateStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(stores.open())
            opened[-1].check()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(opened) == 4


def test_a_closed_store_raises_store_error(stores: Stores) -> None:
    store = stores.open()
    store.exchange(SENDER, "m1", increment, NOW)
    store.close()
    with pytest.raises(StoreError):
        store_after_close_exchange(store)


def store_after_close_exchange(store: StateStore) -> None:
    # SQLite reopens its file on demand, which is fine for a file; what matters is that any
    # failure surfaces as StoreError. Force one: a closed PostgreSQL pool, or a vanished file.
    if isinstance(store, SQLiteStore):
        Path(store.path).unlink()
        Path(store.path).mkdir()  # a directory where the database was: cannot be opened
    store.exchange(SENDER, "m2", increment, NOW)


def test_an_unreachable_store_raises_store_error(stores: Stores, tmp_path: Path) -> None:
    store = stores.unreachable(tmp_path)
    with pytest.raises(StoreError):
        store.exchange(SENDER, "m1", increment, NOW)
    with pytest.raises(StoreError):
        store.check()


def test_store_errors_carry_no_request_data(stores: Stores, tmp_path: Path) -> None:
    store = stores.unreachable(tmp_path)
    with pytest.raises(StoreError) as raised:
        store.exchange(SENDER, "m-secret-id", increment, NOW)
    message = str(raised.value)
    assert SENDER not in message and "m-secret-id" not in message
    assert "\n" not in message and len(message) <= 250


def test_postgres_accepts_heroku_style_urls() -> None:
    # Heroku's DATABASE_URL says postgres://; libpq reads it as postgresql://.
    with fresh_schema(shared_url()) as url:
        store = PostgresStore("postgres://" + url.split("://", 1)[1])
        try:
            store.exchange(SENDER, "m1", increment, NOW)
            store.check()
            assert current(store).window_count == 1
        finally:
            store.close()


def test_postgres_urls_keep_their_tls_settings_and_get_a_connect_timeout() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from mbcsms.store.postgres import connection_string

    heroku = conninfo_to_dict(connection_string("postgres://u:p@db.example.com:5432/d?sslmode=require"))
    assert heroku["sslmode"] == "require" and heroku["host"] == "db.example.com"
    assert heroku["connect_timeout"] == "2"  # libpq's smallest: requests wait on the pool, not on this
    own = conninfo_to_dict(connection_string("postgresql://u@h/d?connect_timeout=9&sslrootcert=/ca.pem"))
    assert own["connect_timeout"] == "9" and own["sslrootcert"] == "/ca.pem"


def test_postgres_error_reasons_never_quote_query_values() -> None:
    import psycopg.errors

    from mbcsms.store.postgres import short_reason

    error = psycopg.errors.InvalidTextRepresentation('invalid input syntax for type integer: "+15551234567"')
    reason = short_reason(error)
    assert "15551234567" not in reason and "22P02" in reason


def test_a_sender_purged_while_their_message_waits_for_their_row_is_answered_as_new() -> None:
    """PostgreSQL: the exchange inserts the sender's row if missing, then locks it. A purge
    that deletes the row between the two (it held the row first) must not make the message
    fail: it is answered as a new sender's."""
    with fresh_schema(shared_url()) as url:
        store = open_store(url, "unused.db", timeout=10.0)
        try:
            store.exchange(SENDER, None, increment, NOW)
            outcome: dict[str, object] = {}

            def message() -> None:
                try:
                    outcome["recorded"] = store.exchange(SENDER, "m1", increment, NOW + 1)
                except BaseException as error:  # handed to the test's thread
                    outcome["error"] = error

            with psycopg.connect(url) as purge, psycopg.connect(url, autocommit=True) as watcher:
                purge.execute("SELECT 1 FROM senders WHERE sender = %s FOR UPDATE", (SENDER,))
                thread = threading.Thread(target=message)
                thread.start()
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE %s AND pid <> %s", ("%FOR UPDATE%", purge.info.backend_pid)
                ).fetchone()[0]:  # type: ignore[index]
                    time.sleep(0.01)
                purge.execute("DELETE FROM senders WHERE sender = %s", (SENDER,))
                purge.commit()
                thread.join(timeout=10)
            assert "error" not in outcome, outcome.get("error")
            assert outcome["recorded"] == Recorded("count", "en", True)
            assert current(store).window_count == 1  # a new row, counted once
        finally:
            store.close()

"""The shared store: PostgreSQL, for several dynos (or machines) answering the same numbers.

Each gunicorn worker keeps a small connection pool. The pool is opened on first use and never
blocks start-up, so the app boots (and answers questions) while the database is down, and it
reconnects by itself once the server is back: connections are checked when taken from the pool,
and a pool that gave up reconnecting starts again on the next request.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import logs
from ..conversation import SenderState
from . import ANSWERED_KEEP_SECONDS, Decide, Recorded, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS senders (
    sender TEXT PRIMARY KEY,
    lang TEXT,
    last_lang TEXT,
    opted_out BOOLEAN NOT NULL DEFAULT FALSE,
    last_menu TEXT,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    window_start DOUBLE PRECISION NOT NULL DEFAULT 0,
    window_count INTEGER NOT NULL DEFAULT 0,
    window_noticed BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS answered (
    message TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    lang TEXT NOT NULL,
    sent BOOLEAN NOT NULL,
    answered_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS answered_by_time ON answered (answered_at);
"""

# Concurrent CREATE TABLE IF NOT EXISTS can still fail on the catalog's unique index when several
# dynos start at once; one transaction-scoped advisory lock makes them take turns.
SCHEMA_LOCK_KEY = 0x6D6263736D73  # "mbcsms"

CONNECT_TIMEOUT_SECONDS = 3
CHECKOUT_TIMEOUT_SECONDS = 3.0
# Once the database is known to be down, each request waits only this long for it: the patient's
# answer (sent without the store) should not wait three seconds per message through an outage.
DEGRADED_CHECKOUT_SECONDS = 0.5
# Heroku's smallest Postgres plans allow 20 connections: 2 dynos x 2 workers x 4 still fits.
POOL_MAX_SIZE = 4
# The pool's reconnection backoff doubles without bound; giving up soon and starting afresh on
# the next request means a restarted server is used again within seconds, not minutes.
RECONNECT_TIMEOUT_SECONDS = 5.0
# Twilio waits 15 s for the webhook: a stuck lock or query must fail well before that.
SESSION_SETTINGS = (
    "SET statement_timeout = '5s'",
    "SET lock_timeout = '4s'",
    "SET idle_in_transaction_session_timeout = '30s'",
)
PRUNE_EVERY = 200  # as in the SQLite store: an occasional DELETE keeps "a day" true

# psycopg_pool logs every failed reconnection attempt as plain text on stderr; our own JSON
# events (store_failed_answered_anyway, health_failed) already say the database is down.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

T = TypeVar("T")


def connection_string(database_url: str, connect_timeout: int = CONNECT_TIMEOUT_SECONDS) -> str:
    """libpq reads postgres:// (Heroku) and postgresql:// alike, and keeps sslmode and the other
    URL parameters; we only add a connect timeout unless the URL sets one."""
    try:
        params = conninfo_to_dict(database_url)
    except psycopg.Error as error:
        raise StoreError("postgresql: DATABASE_URL cannot be parsed") from error
    params.setdefault("connect_timeout", str(connect_timeout))
    params.setdefault("application_name", "mbcsms")
    return make_conninfo("", **params)


def short_reason(error: BaseException) -> str:
    """What went wrong, without the values of a query: server errors other than connection
    trouble may quote data in their message, so only their class and SQLSTATE are kept."""
    if isinstance(error, PoolTimeout):
        return "postgresql: no database connection within the timeout (server down or unreachable?)"
    if isinstance(error, psycopg.OperationalError) and getattr(error, "sqlstate", None) is None:
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"postgresql: {first_line[:160]}"
    sqlstate = getattr(error, "sqlstate", None)
    return f"postgresql: {type(error).__name__}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")


def _configure(connection: psycopg.Connection[Any]) -> None:
    for setting in SESSION_SETTINGS:
        connection.execute(setting)
    connection.commit()


class PostgresStore:
    name = "postgresql"

    def __init__(
        self,
        database_url: str,
        *,
        max_size: int = POOL_MAX_SIZE,
        connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
        checkout_timeout: float = CHECKOUT_TIMEOUT_SECONDS,
        prepare: bool = True,
    ) -> None:
        self._conninfo = connection_string(database_url, connect_timeout)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=checkout_timeout,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            # A connection killed by a server restart is found and replaced before we use it.
            check=ConnectionPool.check_connection,
            configure=_configure,
            # No server-side prepared statements: PaaS poolers (PgBouncer) may not keep them.
            kwargs={"prepare_threshold": None},
            name="mbcsms",
        )
        self._checkout_timeout = checkout_timeout
        self._lock = threading.Lock()
        self._opened = False
        self._unreachable = False
        self._closed = False
        self._schema_ready = False
        if prepare:
            self._prepare_at_start()

    # -- schema -----------------------------------------------------------------------------

    def _prepare_at_start(self) -> None:
        try:
            self.migrate()
        except StoreError as error:
            # Not fatal: questions are answered without the store, and the next use tries again.
            self._unreachable = isinstance(error.__cause__, psycopg.OperationalError)
            logs.event("store_schema_deferred", logging.WARNING, store=self.name, reason=str(error))

    def migrate(self) -> str:
        """Create the tables now (at start, and in the release phase); raises StoreError."""
        # A direct connection rather than the pool: a refused connection fails at once instead of
        # waiting out the pool's timeout, and no pool threads exist before gunicorn forks workers.
        try:
            with psycopg.connect(self._conninfo, prepare_threshold=None) as connection:
                self._create_schema(connection)
        except psycopg.Error as error:
            raise StoreError(short_reason(error)) from error
        return "PostgreSQL schema is ready"

    def _create_schema(self, connection: psycopg.Connection[Any]) -> None:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            # A constant of several statements: psycopg's typing wants a LiteralString query.
            connection.execute(SCHEMA)  # type: ignore[arg-type]
        self._schema_ready = True

    # -- the interface ----------------------------------------------------------------------

    def exchange(self, sender: str, message: str | None, decide: Decide, now: float) -> Recorded:
        return self._run(lambda connection: self._exchange(connection, sender, message, decide, now))

    def check(self) -> None:
        self._run(lambda connection: connection.execute("SELECT 1 FROM senders LIMIT 0").fetchall())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._opened:
                self._pool.close(timeout=2.0)

    # -- internals --------------------------------------------------------------------------

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            with self._connection() as connection:
                self._unreachable = False
                if not self._schema_ready:
                    self._create_schema(connection)
                with connection.transaction():
                    return work(connection)
        except PoolTimeout as error:
            self._unreachable = True
            raise StoreError(short_reason(error)) from error
        except psycopg.Error as error:
            # PoolClosed is a psycopg error too.
            raise StoreError(short_reason(error)) from error

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._closed:
                raise StoreError("postgresql: the store is closed")
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
        timeout = min(DEGRADED_CHECKOUT_SECONDS, self._checkout_timeout) if self._unreachable else None
        with self._pool.connection(timeout=timeout) as connection:
            yield connection

    def _exchange(
        self, connection: psycopg.Connection[Any], sender: str, message: str | None, decide: Decide, now: float
    ) -> Recorded:
        # The row must exist before it can be locked; FOR UPDATE then makes every other dyno's
        # exchange for this sender wait, and re-read the state we commit.
        connection.execute(
            "INSERT INTO senders (sender, first_seen, last_seen) VALUES (%s, %s, %s)"
            " ON CONFLICT (sender) DO NOTHING",
            (sender, now, now),
        )
        row = connection.execute(
            "SELECT lang, last_lang, opted_out, last_menu, window_start, window_count, window_noticed"
            " FROM senders WHERE sender = %s FOR UPDATE",
            (sender,),
        ).fetchone()
        assert row is not None  # inserted above, and senders are never deleted
        if message is not None:
            # Checked under the sender's lock, so a retry racing its original waits and sees it.
            answered = connection.execute(
                "SELECT topic, lang, sent FROM answered WHERE message = %s", (message,)
            ).fetchone()
            if answered is not None:
                return Recorded.replayed(answered[0], answered[1], bool(answered[2]), bool(row[2]))
        state = SenderState(row[0], row[1], bool(row[2]), row[3], float(row[4]), int(row[5]), bool(row[6]))
        reply, new = decide(state)
        connection.execute(
            """UPDATE senders SET lang = %s, last_lang = %s, opted_out = %s, last_menu = %s,
                   last_seen = %s, window_start = %s, window_count = %s, window_noticed = %s
               WHERE sender = %s""",
            (new.lang, new.last_lang, new.opted_out, new.last_menu, now, new.window_start,
             new.window_count, new.window_noticed, sender),
        )
        recorded = Recorded.of(reply)
        if message is not None:
            connection.execute(
                "INSERT INTO answered (message, topic, lang, sent, answered_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (message) DO NOTHING",
                (message, recorded.topic, recorded.lang, recorded.sent, now),
            )
            if random.randrange(PRUNE_EVERY) == 0:
                connection.execute("DELETE FROM answered WHERE answered_at < %s", (now - ANSWERED_KEEP_SECONDS,))
        return recorded

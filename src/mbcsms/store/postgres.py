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
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import logs
from ..conversation import SenderState
from . import (
    ANSWERED_KEEP_SECONDS,
    SCHEMA_VERSION,
    Decide,
    KeyCount,
    OptChange,
    Peek,
    Recorded,
    StoreError,
)

# Version 1: the schema of the first releases, exactly as they created it (no version table).
SCHEMA_V1 = """
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

# Step N takes the schema from version N-1 to N, keeping what the release before uses (see
# store.SCHEMA_VERSION).
STEPS: dict[int, str] = {
    1: SCHEMA_V1,
    # Which secret keyed the row (rotation); when its opt-out last changed, kept by a trigger on
    # the database's clock whatever release wrote it (the local mirrors read changes by it).
    2: """
ALTER TABLE senders ADD COLUMN IF NOT EXISTS key_id TEXT;
ALTER TABLE senders ADD COLUMN IF NOT EXISTS opt_changed_at DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS senders_by_opt_change ON senders (opt_changed_at);
CREATE INDEX IF NOT EXISTS senders_by_last_seen ON senders (last_seen);
CREATE OR REPLACE FUNCTION mbcsms_opt_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'INSERT' AND NEW.opted_out)
       OR (TG_OP = 'UPDATE' AND NEW.opted_out IS DISTINCT FROM OLD.opted_out) THEN
        NEW.opt_changed_at := extract(epoch FROM clock_timestamp());
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS senders_opt_changed ON senders;
CREATE TRIGGER senders_opt_changed BEFORE INSERT OR UPDATE OF opted_out ON senders
    FOR EACH ROW EXECUTE FUNCTION mbcsms_opt_changed();
""",
    # Every message moves last_seen: indexed, no update of a sender could be a HOT update (each
    # wrote new entries in every index). purge scans for it once a day instead.
    3: """
DROP INDEX IF EXISTS senders_by_last_seen;
""",
}
assert sorted(STEPS) == list(range(1, SCHEMA_VERSION + 1))
# A change committed a little after the mirror's cursor was read is still found by the next read
# (a transaction lasts at most idle_in_transaction_session_timeout).
OPT_CHANGE_OVERLAP_SECONDS = 60.0

# Concurrent CREATE TABLE IF NOT EXISTS can still fail on the catalog's unique index when several
# dynos start at once; one transaction-scoped advisory lock makes them take turns.
SCHEMA_LOCK_KEY = 0x6D6263736D73  # "mbcsms"

# libpq's smallest: it treats 1 as 2. Connections are made by the pool's own threads, so a
# request waits on the checkout timeout below, not on this.
CONNECT_TIMEOUT_SECONDS = 2
# How long a request waits for a connection (MBCSMS_STORE_TIMEOUT): short, so that no worker sits
# seconds per message while the database is down or hanging.
CHECKOUT_TIMEOUT_SECONDS = 1.0
# Once the database is known to be down, each request waits only this long for it.
DEGRADED_CHECKOUT_SECONDS = 0.5
# Heroku's smallest Postgres plans allow 20 connections: 2 dynos x 2 workers x 4 still fits.
POOL_MAX_SIZE = 4
# The pool's reconnection backoff doubles without bound; giving up soon and starting afresh on
# the next request means a restarted server is used again within seconds, not minutes.
RECONNECT_TIMEOUT_SECONDS = 5.0


def session_settings(timeout: float) -> tuple[str, ...]:
    """Twilio waits 15 s for the webhook, and a worker stuck on the database answers nobody else:
    a stuck lock or query fails after about the store timeout."""
    statement_ms = int(timeout * 1000) + 500
    lock_ms = max(int(timeout * 1000), 100)
    return (
        f"SET statement_timeout = {statement_ms}",
        f"SET lock_timeout = {lock_ms}",
        "SET idle_in_transaction_session_timeout = '30s'",
    )


PRUNE_EVERY = 200  # as in the SQLite store: an occasional DELETE keeps "a day" true

# psycopg_pool logs every failed reconnection attempt as plain text on stderr; our own JSON
# events (store_breaker_opened, health_failed) already say the database is down.
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


def _configurer(timeout: float) -> Callable[[psycopg.Connection[Any]], None]:
    settings = session_settings(timeout)

    def configure(connection: psycopg.Connection[Any]) -> None:
        for setting in settings:
            connection.execute(setting)  # built from numbers only
        connection.commit()

    return configure


class PostgresStore:
    name: ClassVar[str] = "postgresql"
    # A server that stops answering mid-query (frozen, or a port that accepts and stays silent)
    # holds the socket read past statement_timeout, which only the server itself enforces.
    bounds_own_waits: ClassVar[bool] = False

    def __init__(
        self,
        database_url: str,
        *,
        max_size: int = POOL_MAX_SIZE,
        connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
        checkout_timeout: float | None = None,
        timeout: float = CHECKOUT_TIMEOUT_SECONDS,
        prepare: bool = True,
    ) -> None:
        checkout_timeout = timeout if checkout_timeout is None else checkout_timeout
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
            configure=_configurer(timeout),
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
        """Create or upgrade the tables now (at start, in the release phase); raises StoreError."""
        # A direct connection rather than the pool: a refused connection fails at once instead of
        # waiting out the pool's timeout, and no pool threads exist before gunicorn forks workers.
        try:
            with psycopg.connect(self._conninfo, prepare_threshold=None) as connection:
                version = self._create_schema(connection)
        except psycopg.Error as error:
            raise StoreError(short_reason(error)) from error
        return f"PostgreSQL schema is ready (version {version})"

    def _create_schema(self, connection: psycopg.Connection[Any]) -> int:
        """Bring the schema to SCHEMA_VERSION under an advisory lock: several dynos starting at
        once take turns, and each reads the version again once it holds the lock."""
        with connection.transaction():
            version = _schema_version(connection)
            if version < SCHEMA_VERSION:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                version = _schema_version(connection)
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    connection.execute(STEPS[step])
                if version < SCHEMA_VERSION:
                    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                    connection.execute("DELETE FROM schema_version")
                    connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
                    version = SCHEMA_VERSION
            elif version > SCHEMA_VERSION:
                # A newer release migrated it: its steps keep what this code uses, so it keeps
                # working.
                logs.event("schema_newer_than_code", logging.WARNING, store=self.name, version=version)
        self._schema_ready = True
        return version

    # -- the interface ----------------------------------------------------------------------

    def exchange(
        self, sender: str, message: str | None, decide: Decide, now: float, *,
        previous: tuple[str, ...] = (), key_id: str | None = None, lock_wait: float | None = None,
    ) -> Recorded:
        # lock_wait is not needed here: the bot calls this store on its store threads, and
        # stops waiting for a call at its own deadline (bounds_own_waits is False).
        return self._run(
            lambda connection: self._exchange(connection, sender, message, decide, now, previous, key_id)
        )

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
        self, connection: psycopg.Connection[Any], sender: str, message: str | None, decide: Decide,
        now: float, previous: tuple[str, ...], key_id: str | None,
    ) -> Recorded:
        _rekey(connection, sender, previous, key_id)
        # The row must exist before it can be locked; FOR UPDATE then makes every other dyno's
        # exchange for this sender wait, and re-read the state we commit. A purge can delete
        # the row in between (it held it first): then it is inserted again, as a new sender's
        # (purge never deletes an opted-out one), and that row is ours until we commit.
        for _ in range(2):
            connection.execute(
                "INSERT INTO senders (sender, first_seen, last_seen, key_id) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (sender) DO NOTHING",
                (sender, now, now, key_id),
            )
            row = connection.execute(
                "SELECT lang, last_lang, opted_out, last_menu, window_start, window_count, window_noticed"
                " FROM senders WHERE sender = %s FOR UPDATE",
                (sender,),
            ).fetchone()
            if row is not None:
                break
        else:
            raise StoreError("postgresql: a sender's row vanished twice while it was being locked")
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
                   , key_id = coalesce(%s, key_id)
               WHERE sender = %s""",
            (new.lang, new.last_lang, new.opted_out, new.last_menu, now, new.window_start,
             new.window_count, new.window_noticed, key_id, sender),
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

    # -- outages, retention, rotation -------------------------------------------------------

    def peek(self, senders: tuple[str, ...], message: str | None) -> Peek | None:
        return None  # no local copy of the database to read: the Bot's mirror stands in

    def apply_opt_changes(self, changes: list[OptChange]) -> int:
        def apply(connection: psycopg.Connection[Any]) -> int:
            applied = 0
            for change in changes:
                _rekey(connection, change.sender, change.previous, change.key_id)
                connection.execute(
                    "INSERT INTO senders (sender, first_seen, last_seen, key_id) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (sender) DO NOTHING",
                    (change.sender, change.changed_at, change.changed_at, change.key_id),
                )
                # The newer change wins: one recorded by another dyno after this one stays.
                applied += connection.execute(
                    "UPDATE senders SET opted_out = %s WHERE sender = %s AND opted_out <> %s"
                    " AND opt_changed_at <= %s",
                    (change.opted_out, change.sender, change.opted_out, change.changed_at),
                ).rowcount
            return applied

        return self._run(apply)

    def opt_changes_since(self, cursor: float | None) -> tuple[float, list[tuple[str, bool, float]]]:
        def read(connection: psycopg.Connection[Any]) -> tuple[float, list[tuple[str, bool, float]]]:
            clock = connection.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            assert clock is not None
            if cursor is None:
                rows = connection.execute(
                    "SELECT sender, opted_out, opt_changed_at FROM senders WHERE opted_out"
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT sender, opted_out, opt_changed_at FROM senders WHERE opt_changed_at >= %s",
                    (cursor - OPT_CHANGE_OVERLAP_SECONDS,),
                ).fetchall()
            return float(clock[0]), [(row[0], bool(row[1]), float(row[2])) for row in rows]

        return self._run(read)

    def purge(self, now: float, inactive_seconds: float) -> tuple[int, int]:
        def delete(connection: psycopg.Connection[Any]) -> tuple[int, int]:
            senders = connection.execute(
                "DELETE FROM senders WHERE last_seen < %s AND NOT opted_out", (now - inactive_seconds,)
            ).rowcount
            answered = connection.execute(
                "DELETE FROM answered WHERE answered_at < %s", (now - ANSWERED_KEEP_SECONDS,)
            ).rowcount
            return senders, answered

        return self._run(delete)

    def key_counts(self) -> list[KeyCount]:
        def count(connection: psycopg.Connection[Any]) -> list[KeyCount]:
            rows = connection.execute(
                "SELECT key_id, count(*), count(*) FILTER (WHERE opted_out) FROM senders"
                " GROUP BY key_id ORDER BY key_id"
            ).fetchall()
            return [KeyCount(row[0], int(row[1]), int(row[2])) for row in rows]

        return self._run(count)

    def schema_version(self) -> int:
        return self._run(_schema_version)


def _schema_version(connection: psycopg.Connection[Any]) -> int:
    tables = {
        row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    if "schema_version" in tables:
        row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0) if row else 0
    return 1 if {"senders", "answered"} <= tables else 0


def _rekey(connection: psycopg.Connection[Any], sender: str, previous: tuple[str, ...], key_id: str | None) -> None:
    """A sender known only under an older secret's key takes the current key (opt-out kept). Two
    dynos racing: the second's UPDATE waits on the row lock, then finds the old key gone."""
    if not previous:
        return
    if connection.execute("SELECT 1 FROM senders WHERE sender = %s", (sender,)).fetchone() is not None:
        return
    for old in previous:
        if connection.execute(
            "UPDATE senders SET sender = %s, key_id = %s WHERE sender = %s", (sender, key_id, old)
        ).rowcount:
            return

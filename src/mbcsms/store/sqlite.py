"""The embedded store: one SQLite file, shared safely by several gunicorn workers on one machine."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from pathlib import Path

from ..conversation import SenderState
from . import ANSWERED_KEEP_SECONDS, Decide, Recorded, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS senders (
    sender TEXT PRIMARY KEY,
    lang TEXT,
    last_lang TEXT,
    opted_out INTEGER NOT NULL DEFAULT 0,
    last_menu TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    window_start REAL NOT NULL DEFAULT 0,
    window_count INTEGER NOT NULL DEFAULT 0,
    window_noticed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS answered (
    message TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    lang TEXT NOT NULL,
    sent INTEGER NOT NULL,
    answered_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answered_by_time ON answered (answered_at);
"""

BUSY_TIMEOUT_MS = 5000
# Pruning old message ids on every request would cost a write each time; once in a while is
# enough to keep "a day" true within minutes.
PRUNE_EVERY = 200

T = TypeVar("T")
# Sync levels (PRAGMA synchronous): ORDINARY for every message, DURABLE for opt-out changes.
ORDINARY = "NORMAL"
DURABLE = "FULL"
CHECKPOINT_PAGES = 10_000


class SQLiteStore:
    name = "sqlite"

    def __init__(self, path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        try:
            # Opening a new file races other workers switching it to WAL, which can answer
            # "locked" at once instead of waiting: retried like any other lock.
            connection = self._while_locked(self._open)
        except sqlite3.Error as error:
            raise StoreError(f"sqlite: cannot open the database: {error}") from error
        self._local.connection = connection
        return connection

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
            check_same_thread=False,
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            connection.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a crash of the app or of gunicorn, without an
            # fsync per message (the fsync was 3/4 of a request's time). What a power cut can
            # lose is the last moments of rate-limit counters, language choices and dedupe
            # ids; an opt-out or opt-in is still committed under FULL (see exchange).
            connection.execute(f"PRAGMA synchronous = {ORDINARY}")
            # A checkpoint costs two fsyncs, paid by whichever message triggers it: every 10,000
            # pages (a WAL of up to 40 MB) instead of SQLite's 1,000 makes that cost a tenth.
            connection.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
            self._ensure_schema(connection)
            # From here on only BEGIN IMMEDIATE can meet a lock (WAL readers never wait), and
            # _begin_immediate waits for it in its own, finer steps.
            connection.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            connection.close()
            raise
        return connection

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        """Create the tables under the write lock, taken first: a plain CREATE from a read
        snapshot fails at once with "database is locked" (no busy wait) when another worker
        writes meanwhile, which is every start of a busy multi-worker server."""
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if {"senders", "answered"} <= tables:
            return
        self._begin_immediate(connection)
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass

    def exchange(self, sender: str, message: str | None, decide: Decide, now: float) -> Recorded:
        try:
            connection = self._connection()
            recorded = self._transaction(connection, sender, message, decide, now, durable=False)
            if recorded is None:
                # An opt-out or opt-in: it must be on disk before Twilio hears back, even after
                # a power cut. SQLite cannot raise the sync level inside a transaction, so the
                # exchange is done again under FULL (decide is pure; the state is read afresh).
                connection.execute(f"PRAGMA synchronous = {DURABLE}")
                try:
                    recorded = self._transaction(connection, sender, message, decide, now, durable=True)
                finally:
                    connection.execute(f"PRAGMA synchronous = {ORDINARY}")
            assert recorded is not None
            return recorded
        except sqlite3.Error as error:
            # A corrupt or vanished file can leave the connection unusable: start afresh next time.
            self._drop_connection()
            raise StoreError(f"sqlite: {error}") from error

    def _begin_immediate(self, connection: sqlite3.Connection) -> None:
        """Take the write lock, waiting up to the busy timeout."""
        self._while_locked(lambda: connection.execute("BEGIN IMMEDIATE"))

    def _while_locked(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, tried again while the database is locked, up to the busy timeout.

        SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries, far longer than our
        transactions hold the lock (about 0.1 ms): with several workers that sleeping, not the
        work, was most of a request's time. So the handler is off (busy_timeout 0, set when
        the connection opens) and we retry after a short, jittered pause.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        pause = 0.0001
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() >= deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.005)

    def _transaction(
        self, connection: sqlite3.Connection, sender: str, message: str | None, decide: Decide,
        now: float, durable: bool,
    ) -> Recorded | None:
        """One exchange in one write transaction; None, rolled back, when it changes the
        sender's opt-out and ``durable`` is False."""
        self._begin_immediate(connection)
        try:
            recorded = self._exchange(connection, sender, message, decide, now, durable)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if recorded is None:
            connection.execute("ROLLBACK")
            return None
        connection.execute("COMMIT")
        return recorded

    def _exchange(
        self, connection: sqlite3.Connection, sender: str, message: str | None, decide: Decide,
        now: float, durable: bool,
    ) -> Recorded | None:
        row = connection.execute(
            "SELECT lang, last_lang, opted_out, last_menu, window_start, window_count, window_noticed"
            " FROM senders WHERE sender = ?",
            (sender,),
        ).fetchone()
        state = SenderState()
        if row is not None:
            state = SenderState(row[0], row[1], bool(row[2]), row[3], row[4], row[5], bool(row[6]))
        if message is not None:
            answered = connection.execute(
                "SELECT topic, lang, sent FROM answered WHERE message = ?", (message,)
            ).fetchone()
            if answered is not None:
                return Recorded.replayed(answered[0], answered[1], bool(answered[2]), state.opted_out)
        reply, new = decide(state)
        if new.opted_out != state.opted_out and not durable:
            return None
        connection.execute(
            """INSERT INTO senders (sender, lang, last_lang, opted_out, last_menu, first_seen, last_seen,
                                    window_start, window_count, window_noticed)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (sender) DO UPDATE SET
                   lang = excluded.lang, last_lang = excluded.last_lang,
                   opted_out = excluded.opted_out, last_menu = excluded.last_menu,
                   last_seen = excluded.last_seen, window_start = excluded.window_start,
                   window_count = excluded.window_count, window_noticed = excluded.window_noticed""",
            (sender, new.lang, new.last_lang, int(new.opted_out), new.last_menu, now, now,
             new.window_start, new.window_count, int(new.window_noticed)),
        )
        recorded = Recorded.of(reply)
        if message is not None:
            connection.execute(
                "INSERT INTO answered (message, topic, lang, sent, answered_at) VALUES (?, ?, ?, ?, ?)",
                (message, recorded.topic, recorded.lang, int(recorded.sent), now),
            )
            if random.randrange(PRUNE_EVERY) == 0:
                connection.execute(
                    "DELETE FROM answered WHERE answered_at < ?", (now - ANSWERED_KEEP_SECONDS,)
                )
        return recorded

    def check(self) -> None:
        try:
            self._connection().execute("SELECT count(*) FROM senders WHERE 0").fetchone()
        except sqlite3.Error as error:
            self._drop_connection()
            raise StoreError(f"sqlite: {error}") from error

    def migrate(self) -> str:
        # Opening the file creates the tables (see _ensure_schema); check() opens it and reads.
        self.check()
        return f"SQLite schema is ready in {self.path}"

    def close(self) -> None:
        self._drop_connection()

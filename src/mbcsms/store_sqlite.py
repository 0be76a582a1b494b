"""The embedded store: one SQLite file, shared safely by several gunicorn workers on one machine."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path

from .conversation import SenderState
from .store import ANSWERED_KEEP_SECONDS, Decide, Recorded, StoreError

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


class SQLiteStore:
    def __init__(self, path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        try:
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                check_same_thread=False,
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            connection.execute("PRAGMA journal_mode = WAL")
            # FULL: an opt-out is on disk before Twilio hears back, even after a power cut.
            connection.execute("PRAGMA synchronous = FULL")
            connection.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise StoreError(f"sqlite: cannot open the database: {error}") from error
        self._local.connection = connection
        return connection

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
            connection.execute("BEGIN IMMEDIATE")
            try:
                recorded = self._exchange(connection, sender, message, decide, now)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return recorded
        except sqlite3.Error as error:
            # A corrupt or vanished file can leave the connection unusable: start afresh next time.
            self._drop_connection()
            raise StoreError(f"sqlite: {error}") from error

    def _exchange(
        self, connection: sqlite3.Connection, sender: str, message: str | None, decide: Decide, now: float
    ) -> Recorded:
        if message is not None:
            row = connection.execute(
                "SELECT topic, lang, sent FROM answered WHERE message = ?", (message,)
            ).fetchone()
            if row is not None:
                return Recorded(row[0], row[1], bool(row[2]))
        row = connection.execute(
            "SELECT lang, last_lang, opted_out, last_menu, window_start, window_count, window_noticed"
            " FROM senders WHERE sender = ?",
            (sender,),
        ).fetchone()
        state = SenderState()
        if row is not None:
            state = SenderState(row[0], row[1], bool(row[2]), row[3], row[4], row[5], bool(row[6]))
        reply, new = decide(state)
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

    def close(self) -> None:
        self._drop_connection()

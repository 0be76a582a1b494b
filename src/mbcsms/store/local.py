"""What one server keeps on its own disk, so that a store outage neither loses an opt-out nor
sends content to someone who opted out: a small SQLite file shared by the server's workers.

- ``pending``: opt-outs and opt-ins taken while the store could not be written. They are honoured
  at once by every worker of this server (the degraded read consults them first) and written to
  the store as soon as it answers again (``Bot`` flushes them).
- ``mirror`` (PostgreSQL only): every sender key the store holds as opted out, kept current by a
  background thread in each worker (incremental, every couple of seconds) and written through
  with every opt change this server records. ``synced_at`` says how current it is.

Keys only, as in the store: never a number nor a message.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from . import OptChange

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    sender TEXT PRIMARY KEY,
    opted_out INTEGER NOT NULL,
    changed_at REAL NOT NULL,
    key_id TEXT,
    previous TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS mirror (
    sender TEXT PRIMARY KEY,
    opted_out INTEGER NOT NULL,
    changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value REAL NOT NULL
);
"""
TIMEOUT_SECONDS = 2.0  # local disk, tiny transactions: a wait means another worker is writing


class LocalStateError(Exception):
    """The local file cannot be read or written (no disk, no permission)."""


class LocalState:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        try:
            connection = sqlite3.connect(
                self.path, timeout=TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode = WAL")
            # An opt change must survive a crash of the server: FULL, as the store does for it.
            connection.execute("PRAGMA synchronous = FULL")
            connection.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise LocalStateError(f"local state: {error}") from error
        self._local.connection = connection
        return connection

    def _run(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            self._local.connection = None
            raise LocalStateError(f"local state: {error}") from error

    # -- opt changes taken during an outage -------------------------------------------------

    def journal(self, change: OptChange) -> None:
        """Keep an opt change until the store has it; the newest change per sender wins."""
        self._run(
            """INSERT INTO pending (sender, opted_out, changed_at, key_id, previous) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (sender) DO UPDATE SET opted_out = excluded.opted_out,
                   changed_at = excluded.changed_at, key_id = excluded.key_id, previous = excluded.previous
               WHERE excluded.changed_at >= pending.changed_at""",
            (change.sender, int(change.opted_out), change.changed_at, change.key_id, ",".join(change.previous)),
        )

    def has_pending(self) -> bool:
        return bool(self._run("SELECT EXISTS (SELECT 1 FROM pending)")[0][0])

    def pending(self) -> list[OptChange]:
        rows = self._run("SELECT sender, opted_out, changed_at, key_id, previous FROM pending ORDER BY changed_at")
        return [
            OptChange(str(row[0]), bool(row[1]), float(row[2]),  # type: ignore[arg-type]
                      row[3] if row[3] is None else str(row[3]),
                      tuple(part for part in str(row[4]).split(",") if part))
            for row in rows
        ]

    def forget(self, changes: list[OptChange]) -> None:
        """Drop changes the store now has (unless a newer one for the sender came in meanwhile)."""
        for change in changes:
            self._run("DELETE FROM pending WHERE sender = ? AND changed_at = ?", (change.sender, change.changed_at))

    def pending_opt_out(self, senders: tuple[str, ...]) -> bool | None:
        """The newest pending change for any of these keys: True opted out, False opted in, None
        no pending change."""
        marks = ",".join("?" * len(senders))
        rows = self._run(
            f"SELECT opted_out FROM pending WHERE sender IN ({marks}) ORDER BY changed_at DESC LIMIT 1", senders
        )
        return bool(rows[0][0]) if rows else None

    # -- the mirror of opted-out senders (PostgreSQL) ---------------------------------------

    def mirror_opt_out(self, senders: tuple[str, ...]) -> bool:
        marks = ",".join("?" * len(senders))
        rows = self._run(f"SELECT max(opted_out) FROM mirror WHERE sender IN ({marks})", senders)
        return bool(rows and rows[0][0])

    def mirror_record(self, sender: str, opted_out: bool, changed_at: float | None = None) -> None:
        """Write through an opt change this server recorded (or took during an outage)."""
        self._mirror_rows([(sender, opted_out, time.time() if changed_at is None else changed_at)])

    def _mirror_rows(self, rows: list[tuple[str, bool, float]]) -> None:
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    """INSERT INTO mirror (sender, opted_out, changed_at) VALUES (?, ?, ?)
                       ON CONFLICT (sender) DO UPDATE SET opted_out = excluded.opted_out,
                           changed_at = excluded.changed_at
                       WHERE excluded.changed_at >= mirror.changed_at""",
                    [(sender, int(opted_out), changed_at) for sender, opted_out, changed_at in rows],
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._local.connection = None
            raise LocalStateError(f"local state: {error}") from error

    def mirror_synced(self, rows: list[tuple[str, bool, float]], cursor: float, synced_at: float) -> None:
        """A successful read of the store: its changes, the store's clock at the read (the next
        read's cursor) and this server's clock before the read (how fresh the mirror is)."""
        self._mirror_rows(rows)
        self._run("INSERT OR REPLACE INTO meta (name, value) VALUES ('cursor', ?)", (cursor,))
        self._run(
            "INSERT INTO meta (name, value) VALUES ('synced_at', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
            (synced_at,),
        )

    def mirror_cursor(self) -> float | None:
        rows = self._run("SELECT value FROM meta WHERE name = 'cursor'")
        return float(rows[0][0]) if rows else None  # type: ignore[arg-type]

    def mirror_synced_at(self) -> float | None:
        rows = self._run("SELECT value FROM meta WHERE name = 'synced_at'")
        return float(rows[0][0]) if rows else None  # type: ignore[arg-type]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

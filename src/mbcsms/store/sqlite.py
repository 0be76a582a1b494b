"""The embedded store: one SQLite file, shared safely by several gunicorn workers on one machine."""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar, TypeVar

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
    StoreBusy,
    StoreError,
)

# Version 1: the schema of the first releases, exactly as they created it (no version table).
SCHEMA_V1 = """
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

# The tables as step 3 rebuilds them (WITHOUT ROWID), one definition each.
SENDERS_V3 = (
    "sender TEXT PRIMARY KEY, lang TEXT, last_lang TEXT, opted_out INTEGER NOT NULL DEFAULT 0,"
    " last_menu TEXT, first_seen REAL NOT NULL, last_seen REAL NOT NULL,"
    " window_start REAL NOT NULL DEFAULT 0, window_count INTEGER NOT NULL DEFAULT 0,"
    " window_noticed INTEGER NOT NULL DEFAULT 0, key_id TEXT, opt_changed_at REAL NOT NULL DEFAULT 0"
)
ANSWERED_V3 = (
    "message TEXT PRIMARY KEY, topic TEXT NOT NULL, lang TEXT NOT NULL, sent INTEGER NOT NULL,"
    " answered_at REAL NOT NULL"
)


def _column_names(definition: str) -> str:
    return ", ".join(column.split()[0] for column in definition.split(","))


SENDER_COLUMNS = _column_names(SENDERS_V3)
ANSWERED_COLUMNS = _column_names(ANSWERED_V3)


def _rebuilt_without_rowid(table: str, definition: str) -> tuple[str, ...]:
    """Rebuild ``table`` as a WITHOUT ROWID table of ``definition``, keeping every row."""
    columns, new = _column_names(definition), f"{table}_v3"
    return (
        f"CREATE TABLE {new} ({definition}) WITHOUT ROWID",
        f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {new} RENAME TO {table}",
    )


# Step N takes the schema from version N-1 to N, keeping what the release before uses (see
# store.SCHEMA_VERSION).
STEPS: dict[int, tuple[str, ...]] = {
    1: tuple(statement for statement in SCHEMA_V1.split(";") if statement.strip()),
    2: (
        # Which secret keyed the row (rotation), and when its opt-out last changed (the newer of
        # a change taken during an outage and the stored one wins).
        "ALTER TABLE senders ADD COLUMN key_id TEXT",
        "ALTER TABLE senders ADD COLUMN opt_changed_at REAL NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS senders_by_last_seen ON senders (last_seen)",
    ),
    # Each table is one B-tree keyed by its text key (WITHOUT ROWID), instead of a rowid table
    # plus an index of that key; and the index on last_seen, which every message moved, is
    # gone (dropped with its table; purge scans in short batches instead). Same tables and
    # columns, so the release before keeps working; a message writes about half the pages it did.
    3: (
        *_rebuilt_without_rowid("senders", SENDERS_V3),
        *_rebuilt_without_rowid("answered", ANSWERED_V3),
        "CREATE INDEX answered_by_time ON answered (answered_at)",
    ),
}
assert sorted(STEPS) == list(range(1, SCHEMA_VERSION + 1))

# How long a request waits for the write lock (MBCSMS_STORE_TIMEOUT): short, because while
# another process holds the lock every worker would sit that long per message.
BUSY_TIMEOUT_MS = 1000
# A reader in WAL mode is not blocked by a writer; this only covers a WAL being recovered.
READ_TIMEOUT_MS = 200
# Pruning old message ids on every request would cost a write each time; once in a while is
# enough to keep "a day" true within minutes.
PRUNE_EVERY = 200
# Senders purge looks at per write transaction: a few milliseconds of the write lock each, so
# the webhook's messages never wait long behind a purge of a large table.
PURGE_BATCH = 2000

T = TypeVar("T")
# Sync levels (PRAGMA synchronous): ORDINARY for every message, DURABLE for opt-out changes.
ORDINARY = "NORMAL"
DURABLE = "FULL"
CHECKPOINT_PAGES = 10_000


class SQLiteStore:
    name: ClassVar[str] = "sqlite"
    # A local file waits only for the write lock, and _while_locked gives up at the busy timeout.
    bounds_own_waits: ClassVar[bool] = True

    def __init__(self, path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
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
        """Create or upgrade the tables under the write lock, taken first: a plain CREATE from a
        read snapshot fails at once with "database is locked" (no busy wait) when another worker
        writes meanwhile, which is every start of a busy multi-worker server. The version is read
        again under the lock, so several processes starting at once upgrade it once."""
        if _schema_version(connection) >= SCHEMA_VERSION:
            self._warn_if_newer(connection)
            return
        self._begin_immediate(connection)
        try:
            version = _schema_version(connection)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in STEPS[step]:
                    connection.execute(statement)
            if version < SCHEMA_VERSION:
                connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                connection.execute("DELETE FROM schema_version")
                connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _warn_if_newer(self, connection: sqlite3.Connection) -> None:
        version = _schema_version(connection)
        if version > SCHEMA_VERSION:
            # A newer release migrated it (a rollback, or a rolling deploy): its steps keep
            # what this code uses, so it keeps working.
            logs.event("schema_newer_than_code", logging.WARNING, store=self.name, version=version)

    def schema_version(self) -> int:
        try:
            return _schema_version(self._connection())
        except sqlite3.Error as error:
            raise StoreError(f"sqlite: {error}") from error

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def exchange(
        self, sender: str, message: str | None, decide: Decide, now: float, *,
        previous: tuple[str, ...] = (), key_id: str | None = None, lock_wait: float | None = None,
    ) -> Recorded:
        keys = (sender, previous, key_id)
        try:
            connection = self._connection()
            # A caller in a hurry (a crisis) does not pay for a checkpoint of everyone's pages:
            # that is left to the next ordinary commit.
            with _pragma_for_now(connection, "wal_autocheckpoint", 0, CHECKPOINT_PAGES, when=lock_wait is not None):
                recorded = self._transaction(connection, keys, message, decide, now, lock_wait, durable=False)
                if recorded is None:
                    # An opt-out or opt-in: it must be on disk before Twilio hears back, even
                    # after a power cut. SQLite cannot raise the sync level inside a transaction,
                    # so the exchange is done again under FULL (decide is pure; the state is read
                    # afresh).
                    with _pragma_for_now(connection, "synchronous", DURABLE, ORDINARY):
                        recorded = self._transaction(connection, keys, message, decide, now, lock_wait, durable=True)
            assert recorded is not None
            return recorded
        except sqlite3.Error as error:
            # A corrupt or vanished file can leave the connection unusable: start afresh next time.
            self._drop_connection()
            raise StoreError(f"sqlite: {error}") from error

    def _begin_immediate(self, connection: sqlite3.Connection, wait: float | None = None) -> None:
        """Take the write lock, waiting up to ``wait`` seconds (None: the busy timeout)."""
        self._while_locked(lambda: connection.execute("BEGIN IMMEDIATE"), wait)

    def _while_locked(self, attempt: Callable[[], T], wait: float | None = None) -> T:
        """``attempt()``, tried again while the database is locked, for up to ``wait`` seconds
        (None: the busy timeout); then StoreBusy.

        SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries, far longer than our
        transactions hold the lock (about 0.1 ms): with several workers that sleeping, not the
        work, was most of a request's time. So the handler is off (busy_timeout 0, set when
        the connection opens) and we retry after a short, jittered pause.
        """
        wait = self.busy_timeout_ms / 1000 if wait is None else wait
        deadline = time.monotonic() + wait
        pause = 0.0001
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreBusy(f"sqlite: the database stayed locked for {wait:g} s") from error
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.005)

    def _transaction(
        self, connection: sqlite3.Connection, keys: Keys, message: str | None, decide: Decide,
        now: float, lock_wait: float | None, durable: bool,
    ) -> Recorded | None:
        """One exchange in one write transaction, its lock waited for up to ``lock_wait``
        seconds; None, rolled back, when it changes the sender's opt-out and ``durable`` is
        False."""
        self._begin_immediate(connection, lock_wait)
        try:
            recorded = self._exchange(connection, keys, message, decide, now, durable)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if recorded is None:
            connection.execute("ROLLBACK")
            return None
        connection.execute("COMMIT")
        return recorded

    def _exchange(
        self, connection: sqlite3.Connection, keys: Keys, message: str | None, decide: Decide,
        now: float, durable: bool,
    ) -> Recorded | None:
        sender, previous, key_id = keys
        _rekey(connection, sender, previous, key_id)
        row = connection.execute(
            "SELECT lang, last_lang, opted_out, last_menu, window_start, window_count, window_noticed,"
            " opt_changed_at FROM senders WHERE sender = ?",
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
        opt_changed_at = now if new.opted_out != state.opted_out else (row[7] if row is not None else 0.0)
        connection.execute(
            """INSERT INTO senders (sender, lang, last_lang, opted_out, last_menu, first_seen, last_seen,
                                    window_start, window_count, window_noticed, key_id, opt_changed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (sender) DO UPDATE SET
                   lang = excluded.lang, last_lang = excluded.last_lang,
                   opted_out = excluded.opted_out, last_menu = excluded.last_menu,
                   last_seen = excluded.last_seen, window_start = excluded.window_start,
                   window_count = excluded.window_count, window_noticed = excluded.window_noticed,
                   key_id = coalesce(excluded.key_id, senders.key_id),
                   opt_changed_at = excluded.opt_changed_at""",
            (sender, new.lang, new.last_lang, int(new.opted_out), new.last_menu, now, now,
             new.window_start, new.window_count, int(new.window_noticed), key_id, opt_changed_at),
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
        # Opening the file creates or upgrades the tables (see _ensure_schema); check() opens it.
        self.check()
        return f"SQLite schema is ready in {self.path} (version {self.schema_version()})"

    def close(self) -> None:
        self._drop_connection()
        reader = getattr(self._local, "reader", None)
        self._local.reader = None
        if reader is not None:
            reader.close()

    # -- outages, retention, rotation ----------------------------------------------------------

    def peek(self, senders: tuple[str, ...], message: str | None) -> Peek | None:
        """A read on a connection of its own that never takes the write lock: in WAL mode a
        reader sees the last committed state while another process holds the lock."""
        try:
            reader = getattr(self._local, "reader", None)
            if reader is None:
                reader = sqlite3.connect(
                    f"file:{self.path}?mode=rw", uri=True, timeout=READ_TIMEOUT_MS / 1000,
                    isolation_level=None, check_same_thread=False,
                )
                reader.execute("PRAGMA query_only = 1")
                self._local.reader = reader
            marks = ",".join("?" * len(senders))
            row = reader.execute(
                f"SELECT max(opted_out) FROM senders WHERE sender IN ({marks})", senders
            ).fetchone()
            opted_out = bool(row and row[0])
            answered = None
            if message is not None:
                found = reader.execute(
                    "SELECT topic, lang, sent FROM answered WHERE message = ?", (message,)
                ).fetchone()
                if found is not None:
                    answered = Recorded.replayed(found[0], found[1], bool(found[2]), opted_out)
            return Peek(opted_out, answered)
        except sqlite3.Error as error:
            broken = getattr(self._local, "reader", None)
            self._local.reader = None
            if broken is not None:
                broken.close()
            raise StoreError(f"sqlite: {error}") from error

    def _write(self, work: Callable[[sqlite3.Connection], T], durable: bool = False) -> T:
        try:
            connection = self._connection()
            with _pragma_for_now(connection, "synchronous", DURABLE, ORDINARY, when=durable):
                self._begin_immediate(connection)
                try:
                    result = work(connection)
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
                return result
        except sqlite3.Error as error:
            self._drop_connection()
            raise StoreError(f"sqlite: {error}") from error

    def apply_opt_changes(self, changes: list[OptChange]) -> int:
        def apply(connection: sqlite3.Connection) -> int:
            applied = 0
            for change in changes:
                _rekey(connection, change.sender, change.previous, change.key_id)
                row = connection.execute(
                    "SELECT opted_out, opt_changed_at FROM senders WHERE sender = ?", (change.sender,)
                ).fetchone()
                if row is None:
                    connection.execute(
                        "INSERT INTO senders (sender, opted_out, first_seen, last_seen, key_id, opt_changed_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (change.sender, int(change.opted_out), change.changed_at, change.changed_at,
                         change.key_id, change.changed_at),
                    )
                elif bool(row[0]) != change.opted_out and row[1] <= change.changed_at:
                    connection.execute(
                        "UPDATE senders SET opted_out = ?, opt_changed_at = ? WHERE sender = ?",
                        (int(change.opted_out), change.changed_at, change.sender),
                    )
                else:
                    continue
                applied += 1
            return applied

        return self._write(apply, durable=True)

    def opt_changes_since(self, cursor: float | None) -> tuple[float, list[tuple[str, bool, float]]]:
        def read(connection: sqlite3.Connection) -> tuple[float, list[tuple[str, bool, float]]]:
            now = time.time()
            if cursor is None:
                rows = connection.execute(
                    "SELECT sender, opted_out, opt_changed_at FROM senders WHERE opted_out"
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT sender, opted_out, opt_changed_at FROM senders WHERE opt_changed_at >= ?",
                    (cursor - OPT_CHANGE_OVERLAP_SECONDS,),
                ).fetchall()
            return now, [(row[0], bool(row[1]), float(row[2])) for row in rows]

        return self._write(read)

    def purge(self, now: float, inactive_seconds: float) -> tuple[int, int]:
        # No index on last_seen (every message would move it): the senders are walked in key
        # order, PURGE_BATCH at a time, each batch in its own short write transaction.
        cutoff = now - inactive_seconds

        def delete_batch(connection: sqlite3.Connection, after: str) -> tuple[str | None, int]:
            rows = connection.execute(
                "SELECT sender, last_seen, opted_out FROM senders WHERE sender > ? ORDER BY sender LIMIT ?",
                (after, PURGE_BATCH),
            ).fetchall()
            inactive = [(row[0],) for row in rows if row[1] < cutoff and not row[2]]
            connection.executemany("DELETE FROM senders WHERE sender = ?", inactive)
            return (rows[-1][0] if len(rows) == PURGE_BATCH else None), len(inactive)

        senders = 0
        after: str | None = ""
        while after is not None:
            after, deleted = self._write(functools.partial(delete_batch, after=after), durable=True)
            senders += deleted
        answered = self._write(
            lambda connection: connection.execute(
                "DELETE FROM answered WHERE answered_at < ?", (now - ANSWERED_KEEP_SECONDS,)
            ).rowcount,
            durable=True,
        )
        return senders, answered

    def key_counts(self) -> list[KeyCount]:
        def count(connection: sqlite3.Connection) -> list[KeyCount]:
            rows = connection.execute(
                "SELECT key_id, count(*), sum(opted_out) FROM senders GROUP BY key_id ORDER BY key_id"
            ).fetchall()
            return [KeyCount(row[0], int(row[1]), int(row[2] or 0)) for row in rows]

        return self._write(count)


Keys = tuple[str, tuple[str, ...], "str | None"]
# A change committed a little after the cursor was read is still found by the next read.
OPT_CHANGE_OVERLAP_SECONDS = 60.0


@contextlib.contextmanager
def _pragma_for_now(
    connection: sqlite3.Connection, pragma: str, value: object, usual: object, *, when: bool = True
) -> Iterator[None]:
    """``PRAGMA pragma = value`` for the block (only ``when``), then ``usual`` again."""
    if not when:
        yield
        return
    connection.execute(f"PRAGMA {pragma} = {value}")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA {pragma} = {usual}")


def _schema_version(connection: sqlite3.Connection) -> int:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" in tables:
        row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)
    return 1 if {"senders", "answered"} <= tables else 0


def _rekey(connection: sqlite3.Connection, sender: str, previous: tuple[str, ...], key_id: str | None) -> None:
    """A sender known only under an older secret's key takes the current key (opt-out kept)."""
    if not previous:
        return
    if connection.execute("SELECT 1 FROM senders WHERE sender = ?", (sender,)).fetchone() is not None:
        return
    for old in previous:
        moved = connection.execute(
            "UPDATE senders SET sender = ?, key_id = ? WHERE sender = ?", (sender, key_id, old)
        ).rowcount
        if moved:
            return

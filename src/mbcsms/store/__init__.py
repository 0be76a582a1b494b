"""Where senders' state lives: one small interface (here), an SQLite implementation
(``store/sqlite.py``) and a PostgreSQL one (``store/postgres.py``), and ``open_store``, the one
place that chooses between them.

The whole of one message's read-decide-write happens in ``exchange``, inside one transaction that
holds the sender (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a row lock), so two workers or dynos
can never both read an old state and overwrite each other's opt-out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from ..conversation import Reply, SenderState

ANSWERED_KEEP_SECONDS = 24 * 60 * 60
# Replies that may be sent again to a sender who is opted out now: safety, and the opt-out's own.
REPLAYABLE_WHEN_OPTED_OUT = frozenset({"crisis", "stop"})

Decide = Callable[[SenderState], tuple[Reply, SenderState]]

# The schema this code writes. Each store keeps an ordered list of steps; step N brings a
# database from version N-1 to N. A step never removes or renames a table or column (it adds
# them, with defaults; adds or drops an index; rebuilds a table with the same columns), so the
# release before keeps working on an upgraded database during a rolling deploy. Version 1 is the
# schema of the first releases, which had no version table.
SCHEMA_VERSION = 3


class StoreError(Exception):
    """The store could not be read or written (locked, missing, corrupt, unreachable)."""


class StoreBusy(StoreError):
    """The write lock stayed taken for as long as the call could wait: nothing was changed."""


@dataclass(frozen=True)
class OptChange:
    """An opt-out (``opted_out`` True) or opt-in taken while the store could not be written,
    kept on local disk and written to the store when it returns, unless the store holds a newer
    change for the sender."""

    sender: str
    opted_out: bool
    changed_at: float
    key_id: str | None = None
    previous: tuple[str, ...] = ()


@dataclass(frozen=True)
class Peek:
    """What a store read without its write lock knows of a sender (SQLite in WAL mode)."""

    opted_out: bool
    answered: Recorded | None


@dataclass(frozen=True)
class KeyCount:
    key_id: str | None  # None: rows from before key ids were stored (schema version 1)
    senders: int
    opted_out: int


@dataclass(frozen=True)
class Recorded:
    """A reply as stored for a message: enough to send the same reply again on a retry."""

    topic: str
    lang: str
    sent: bool

    @classmethod
    def of(cls, reply: Reply) -> Recorded:
        return cls(reply.topic, reply.lang, reply.body is not None)

    @classmethod
    def replayed(cls, topic: str, lang: str, sent: bool, opted_out_now: bool) -> Recorded:
        """What a retry of an answered message gets: the same reply, except that content never
        goes to a sender who has opted out since (their STOP may have come in between)."""
        if opted_out_now and topic not in REPLAYABLE_WHEN_OPTED_OUT:
            sent = False
        return cls(topic, lang, bool(sent))


class StateStore(Protocol):
    name: ClassVar[str]  # "sqlite" or "postgresql": for logs and error messages
    # True when the store's own timeouts bound every wait of its calls, so a request may make
    # them on its own thread; False when a call can hang past any client setting (a database
    # server frozen mid-query), so the bot makes them on its store threads (bot.StoreCalls).
    bounds_own_waits: ClassVar[bool]

    def exchange(
        self, sender: str, message: str | None, decide: Decide, now: float, *,
        previous: tuple[str, ...] = (), key_id: str | None = None, lock_wait: float | None = None,
    ) -> Recorded:
        """Answer one message atomically: a message already answered returns its recorded
        reply without calling ``decide``; otherwise ``decide`` gets the sender's state and its
        new state and reply are stored together. ``previous``: the sender's keys under older
        secrets; a row found under one of them (and none under ``sender``) is re-keyed to
        ``sender`` with ``key_id`` in the same transaction. ``lock_wait``: wait at most this
        long for the write lock, then StoreBusy (None: the store's timeout); a store that
        bounds its own waits honours it, the others' calls are bounded by the bot's store
        threads. Raises StoreError."""

    def apply_opt_changes(self, changes: list[OptChange]) -> int:
        """Write opt changes taken during an outage; a change older than the one the store
        holds for that sender is skipped. Returns how many changed a row. Raises StoreError."""

    def peek(self, senders: tuple[str, ...], message: str | None) -> Peek | None:
        """The opt-out flag (any of ``senders``) and the recorded reply for ``message``, read
        without waiting for the write lock; None when this store cannot (PostgreSQL: see the
        mirror). Raises StoreError."""

    def opt_changes_since(self, cursor: float | None) -> tuple[float, list[tuple[str, bool, float]]]:
        """For the local mirror: (a new cursor, [(sender, opted_out, changed_at)]) of the opt
        changes since ``cursor`` (with an overlap for late commits); every opted-out sender when
        ``cursor`` is None. Raises StoreError."""

    def purge(self, now: float, inactive_seconds: float) -> tuple[int, int]:
        """Delete senders with no message for ``inactive_seconds`` (never an opted-out one) and
        answered message ids older than a day: (senders deleted, message ids deleted)."""

    def key_counts(self) -> list[KeyCount]:
        """Sender rows per key id (see ``senders.key_id``)."""

    def check(self) -> None:
        """Raise StoreError unless the store answers."""

    def migrate(self) -> str:
        """Create or upgrade the schema now (``mbcsms migrate``, the release phase); safe to run
        any number of times. Returns one line for the operator saying what is ready. Raises
        StoreError."""

    def close(self) -> None: ...


def open_store(
    database_url: str | None, sqlite_path: str | Path, *, prepare: bool = True, timeout: float = 1.0
) -> StateStore:
    """PostgreSQL when a database URL is configured, else the SQLite file.

    ``prepare``: a PostgreSQL store creates its schema as it opens, and only logs a failure
    (the app starts, and answers, while the database is down); ``mbcsms migrate`` passes False
    and calls ``migrate()`` itself, to hear about the failure. ``timeout``: how long a request
    may wait on the store (SQLite's lock wait; PostgreSQL's pool checkout, statement and lock
    timeouts), MBCSMS_STORE_TIMEOUT.
    """
    if database_url:
        from .postgres import PostgresStore

        return PostgresStore(database_url, prepare=prepare, timeout=timeout)
    from .sqlite import SQLiteStore

    return SQLiteStore(sqlite_path, busy_timeout_ms=int(timeout * 1000))

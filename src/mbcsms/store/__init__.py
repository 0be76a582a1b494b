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


class StoreError(Exception):
    """The store could not be read or written (locked, missing, corrupt, unreachable)."""


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

    def exchange(self, sender: str, message: str | None, decide: Decide, now: float) -> Recorded:
        """Answer one message atomically: a message already answered returns its recorded
        reply without calling ``decide``; otherwise ``decide`` gets the sender's state and its
        new state and reply are stored together. Raises StoreError."""

    def check(self) -> None:
        """Raise StoreError unless the store answers."""

    def migrate(self) -> str:
        """Create or upgrade the schema now (``mbcsms migrate``, the release phase); safe to run
        any number of times. Returns one line for the operator saying what is ready. Raises
        StoreError."""

    def close(self) -> None: ...


def open_store(database_url: str | None, sqlite_path: str | Path, *, prepare: bool = True) -> StateStore:
    """PostgreSQL when a database URL is configured, else the SQLite file.

    ``prepare``: a PostgreSQL store creates its schema as it opens, and only logs a failure
    (the app starts, and answers, while the database is down); ``mbcsms migrate`` passes False
    and calls ``migrate()`` itself, to hear about the failure.
    """
    if database_url:
        from .postgres import PostgresStore

        return PostgresStore(database_url, prepare=prepare)
    from .sqlite import SQLiteStore

    return SQLiteStore(sqlite_path)

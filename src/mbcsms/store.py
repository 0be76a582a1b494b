"""Where senders' state lives: one small interface, an SQLite and a PostgreSQL implementation.

The whole of one message's read-decide-write happens in ``exchange``, inside one transaction that
holds the sender (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a row lock), so two workers or dynos
can never both read an old state and overwrite each other's opt-out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .conversation import Reply, SenderState

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
    def exchange(self, sender: str, message: str | None, decide: Decide, now: float) -> Recorded:
        """Answer one message atomically: a message already answered returns its recorded
        reply without calling ``decide``; otherwise ``decide`` gets the sender's state and its
        new state and reply are stored together. Raises StoreError."""

    def check(self) -> None:
        """Raise StoreError unless the store answers."""

    def close(self) -> None: ...


def open_store(database_url: str | None, sqlite_path: str) -> StateStore:
    if database_url:
        from .store_postgres import PostgresStore

        return PostgresStore(database_url)
    from .store_sqlite import SQLiteStore

    return SQLiteStore(sqlite_path)

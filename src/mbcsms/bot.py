"""One inbound message in, one reply out: the conversation rules applied against the state store.

Shared by the webhook and ``mbcsms reply --from``, which both get theirs from ``build_bot``. This
is where a store failure is handled: questions are still answered, but an opt-out that cannot be
recorded is never dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from . import logs
from .catalog import Catalog
from .config import Settings
from .conversation import Conversation, RateLimit, Reply, SenderState
from .senders import message_key, sender_key
from .store import Recorded, StateStore, StoreError, open_store


class OptOutNotRecorded(Exception):
    """An opt-out or opt-in could not be stored: the webhook answers 503 (Twilio then tries the
    fallback URL, see docs/deploy.md) and the error log carries it."""


@dataclass(frozen=True)
class Inbound:
    sender: str | None  # the raw address, never stored nor logged: hashed below
    body: str
    message_sid: str | None = None


class Bot:
    def __init__(self, conversation: Conversation, store: StateStore, secret: str) -> None:
        self.conversation = conversation
        self.store = store
        self.secret = secret

    def answer(self, inbound: Inbound, now: float | None = None) -> Reply:
        now = time.time() if now is None else now
        started = time.perf_counter()
        if not inbound.sender:
            # Nobody to remember: answer the question, keep nothing.
            reply, _ = self.conversation.reply_to(inbound.body, SenderState(), now)
            self._log(reply, "anonymous", started)
            return reply
        sender = sender_key(self.secret, inbound.sender)
        message = (
            message_key(self.secret, inbound.message_sid, sender, inbound.body) if inbound.message_sid else None
        )
        fresh: list[Reply] = []

        # Understood before the store's lock is taken: that lock is shared by every worker.
        understanding = self.conversation.understander.understand(inbound.body)

        def decide(state: SenderState) -> tuple[Reply, SenderState]:
            reply, new_state = self.conversation.respond(understanding, state, now)
            fresh.append(reply)
            return reply, new_state

        try:
            recorded = self.store.exchange(sender, message, decide, now)
        except StoreError as error:
            return self._answer_without_store(inbound, sender, now, started, error)
        reply = fresh[-1] if fresh else self._replay(recorded)
        self._log(reply, sender, started, retry=None if fresh else True)
        return reply

    def _replay(self, recorded: Recorded) -> Reply:
        return self.conversation.render(recorded.topic, recorded.lang, recorded.sent)

    def _answer_without_store(
        self, inbound: Inbound, sender: str, now: float, started: float, error: StoreError
    ) -> Reply:
        reply, _ = self.conversation.reply_to(inbound.body, SenderState(), now)
        if reply.topic in ("stop", "start"):
            logs.event(
                "opt_change_not_recorded", logging.ERROR, topic=reply.topic,
                sender=logs.sender_prefix(sender), reason=_reason(error),
            )
            raise OptOutNotRecorded(reply.topic) from error
        logs.event(
            "store_failed_answered_anyway", logging.ERROR, topic=reply.topic, lang=reply.lang,
            sender=logs.sender_prefix(sender), reason=_reason(error),
        )
        return reply

    def _log(self, reply: Reply, sender: str, started: float, retry: bool | None = None) -> None:
        logs.event(
            "reply", topic=reply.topic, lang=reply.lang, segments=reply.segments,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            sender=logs.sender_prefix(sender), retry=retry,
        )


def build_conversation(settings: Settings) -> Conversation:
    """The catalogs and the rules, loaded once: what every message is answered with."""
    rate_limit = RateLimit(settings.rate_limit, settings.rate_window_seconds)
    return Conversation(Catalog.load(settings.locales), rate_limit)


def build_bot(settings: Settings) -> Bot:
    """Catalog -> Conversation -> state store -> Bot: the one wiring, for the webhook
    (``create_app``) and ``mbcsms reply --from``."""
    conversation = build_conversation(settings)  # first: a broken catalog stops start-up before any store opens
    return Bot(conversation, open_store(settings.database_url, settings.sqlite_path), settings.secret)


def _reason(error: Exception) -> str:
    # The store's own message: a path or an SQL error, never request data.
    return str(error)[:200]

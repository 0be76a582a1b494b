"""The one decision at the heart of mbcsms: given a message and what we know of its sender, what
do we answer, and what do we now know of them?

``reply_to`` is a plain function with no Flask, no I/O and no clock of its own, so the webhook,
``mbcsms reply`` and the tests all run exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .catalog import SOURCE_LANGUAGE, Catalog
from .sms import count_segments
from .understanding import Understander, Understanding, Understood

# Twilio blocks the sender and confirms by itself when the whole message is one of its opt-out
# words, and a reply to it would fail (error 21610): that gets an empty <Response/>. Any other
# opt-out ("stop please", "please stop texting me", PARAR) is ours alone: Twilio neither blocks
# nor confirms it, so it gets one short confirmation in its language.
TWILIO_OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})

# Topics of replies that are not a topic a patient asked for.
OPTED_OUT = "opted_out"
RATE_LIMIT = "rate_limit"
RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class RateLimit:
    replies: int = 20
    window_seconds: float = 600.0


@dataclass(frozen=True)
class SenderState:
    """What we remember of one sender; never their number or what they wrote."""

    lang: str | None = None  # chosen explicitly (ESPAÑOL, ENGLISH)
    last_lang: str | None = None  # of the last message that told its language
    opted_out: bool = False
    last_menu: str | None = None  # language of the last numbered menu shown
    window_start: float = 0.0
    window_count: int = 0
    window_noticed: bool = False


@dataclass(frozen=True)
class Reply:
    topic: str
    lang: str
    body: str | None  # None: answer with an empty <Response/>

    @property
    def segments(self) -> int:
        return count_segments(self.body).segments if self.body else 0

    @property
    def encoding(self) -> str | None:
        return count_segments(self.body).encoding if self.body else None


class Conversation:
    """The catalog and its understanding, loaded once; ``reply_to`` is then called per message."""

    def __init__(self, catalog: Catalog, rate_limit: RateLimit | None = None) -> None:
        self.catalog = catalog
        self.understander = Understander(catalog)
        self.rate_limit = rate_limit or RateLimit()

    def render(self, topic: str, lang: str, sent: bool = True) -> Reply:
        """The reply for a topic in a language; also rebuilds a stored reply for a retry."""
        if not sent or topic in (OPTED_OUT, RATE_LIMITED):
            return Reply(topic, lang, None)
        return Reply(topic, lang, self.catalog.render(topic, lang))

    def reply_to(self, text: str, state: SenderState, now: float) -> tuple[Reply, SenderState]:
        return self.respond(self.understander.understand(text), state, now)

    def respond(
        self, understanding: Understanding, state: SenderState, now: float
    ) -> tuple[Reply, SenderState]:
        """``reply_to`` for a message already understood: what a message says does not depend
        on who sent it, so the webhook understands it before it holds the sender's state."""
        told = understanding.lang
        lang = told or state.lang or state.last_lang or SOURCE_LANGUAGE
        if told:
            state = replace(state, last_lang=told)
        topic = understanding.topic

        # Safety first: an emergency is answered even past an opt-out or the rate limit.
        if understanding.kind == Understood.CRISIS:
            return self.render("crisis", lang), state

        # Opting out and back in take effect at once, whatever the rate limit; only what we
        # say about it is limited, or alternating STOP and START would get past the limit.
        if understanding.kind == Understood.CONTROL and topic == "stop":
            stop_lang = understanding.keyword_lang or lang
            # One confirmation: a repeated stop word, or one Twilio confirms itself, gets none.
            silent = understanding.word in TWILIO_OPT_OUT_WORDS or state.opted_out
            reply, state = self.render("stop", stop_lang, sent=not silent), replace(state, opted_out=True)
            return (reply, state) if silent else self._within_rate_limit(reply, state, now, notice=False)
        if understanding.kind == Understood.CONTROL and topic == "start":
            state = replace(state, opted_out=False, last_menu=lang)
            return self._within_rate_limit(self.render("start", lang), state, now)
        if state.opted_out:
            return self.render(OPTED_OUT, lang, sent=False), state

        if topic == "language":
            lang = understanding.keyword_lang or lang
            state = replace(state, lang=lang, last_lang=lang)
            reply = self.render("language", lang)
        elif understanding.kind == Understood.NUMBER:
            lang = told or state.last_menu or lang
            chosen = self.catalog.menu_topic(understanding.number or 0)
            reply = self.render(chosen.id if chosen else "menu", lang)
        elif understanding.kind in (Understood.CONTROL, Understood.TOPIC):
            # Small talk and feelings ("thanks", "feelings"...) that have no reply of their own
            # in the catalog get the fallback, with the helpline.
            known = topic is not None and self.catalog.has_topic(topic)
            reply = self.render(topic if known else "fallback", lang)
        elif understanding.kind == Understood.EMPTY:
            reply = self.render("menu", lang)  # an empty body, or only punctuation
        else:
            reply = self.render("fallback", lang)
        if reply.topic == "menu":
            state = replace(state, last_menu=lang)
        return self._within_rate_limit(reply, state, now)

    def _within_rate_limit(
        self, reply: Reply, state: SenderState, now: float, notice: bool = True
    ) -> tuple[Reply, SenderState]:
        """Past the limit: one notice with the helpline (unless ``notice`` is False: not to
        someone who just opted out), then silence until the window passes."""
        limit = self.rate_limit
        if now - state.window_start >= limit.window_seconds or now < state.window_start:
            state = replace(state, window_start=now, window_count=0, window_noticed=False)
        if state.window_count < limit.replies:
            return reply, replace(state, window_count=state.window_count + 1)
        if notice and not state.window_noticed:
            return self.render(RATE_LIMIT, reply.lang), replace(state, window_noticed=True)
        return self.render(RATE_LIMITED, reply.lang, sent=False), state

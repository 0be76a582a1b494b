"""The one decision at the heart of mbcsms: given a message and what we know of its sender, what
do we answer, and what do we now know of them?

``reply_to`` is a plain function of an inbound ``Message`` (its text, its channel and how many
pictures it carries), the sender's state and ``now``, with no Flask, no I/O and no clock of its
own (the rate limit and whether the helpline is open are read from ``now``), so the webhook,
``mbcsms reply`` and the tests all run exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from .catalog import SOURCE_LANGUAGE, Catalog
from .helpline_hours import hours_key
from .sms import count_segments
from .understanding import Understander, Understanding, Understood

# On SMS (and MMS, RCS) from a long code or toll-free number, Twilio blocks the sender and
# confirms by itself when the whole message is one of its opt-out words, and a reply to it would
# fail (error 21610): that gets an empty <Response/>. Twilio's automatic STOP handling does not
# cover WhatsApp (Twilio, "Support for opt-out keywords (SMS STOP filtering)"; its Advanced
# Opt-Out article: a Messaging Service's custom opt-out keywords also apply to its WhatsApp
# senders, and then Twilio confirms those too), so on WhatsApp every opt-out gets our own
# confirmation. Any other opt-out ("stop please", "please stop texting me", PARAR) is ours alone
# on every channel: Twilio neither blocks nor confirms it, so it gets one short confirmation in
# its language.
TWILIO_OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})

SMS = "sms"
WHATSAPP = "whatsapp"

# Topics of replies that are not a topic a patient asked for.
OPTED_OUT = "opted_out"
RATE_LIMIT = "rate_limit"
RATE_LIMITED = "rate_limited"

# Small talk the Understanding names: each gets its own short reply, never the fallback.
SMALL_TALK = frozenset({"thanks", "ack", "goodbye", "human_check"})
# Fear, grief, loneliness: a kind line, then the support and helpline answers.
FEELINGS = ("feelings", "support", "helpline")
# A survival or cure question asked in fear: the kind line (which points to support), then the
# facts.
FEELINGS_QUESTION = "feelings_question"
ASKED_IN_FEAR = frozenset({"survival", "cure"})

# A reply's key names what it is made of, so that a retry renders the same words: the topic
# the message was about and "=" when the text is another's, its parts joined by "+" (each the
# answer of a topic of topics.toml, packed into as few messages as their budgets allow) and,
# when it says whether the helpline is open, "@" and the hours key ("open", "closed:monday":
# helpline_hours.hours_key). "her2", "fallback@open", "start=welcome",
# "feelings+support+helpline@closed:tomorrow", "survival=feelings_question+survival".
AS, PARTS, HOURS = "=", "+", "@"


def channel_of(sender: str | None) -> str:
    """Twilio's From: "whatsapp:+1555..." on WhatsApp, the bare number on SMS."""
    return WHATSAPP if sender and sender.lower().startswith("whatsapp:") else SMS


@dataclass(frozen=True)
class Message:
    """One inbound message, as the conversation sees it: never who sent it."""

    text: str
    channel: str = SMS  # "sms" or "whatsapp" (Twilio's From prefix)
    media: int = 0  # pictures, voice notes, contact cards attached (Twilio's NumMedia)


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
    """What goes back for one message: ``body`` (None: an empty <Response/>), and ``more``
    messages when the reply does not fit one within its budget (sent as several <Message>s of
    one response, in order). ``key`` renders the same reply again (see PARTS above)."""

    topic: str
    lang: str
    body: str | None
    more: tuple[str, ...] = ()
    key: str = ""

    @property
    def messages(self) -> tuple[str, ...]:
        return ((self.body,) if self.body else ()) + self.more

    @property
    def record(self) -> str:
        """What the store keeps to send this reply again on a retry."""
        return self.key or self.topic

    @property
    def segments(self) -> int:
        """The most segments any one message takes (each goes as its own SMS)."""
        return max((count_segments(text).segments for text in self.messages), default=0)

    @property
    def total_segments(self) -> int:
        return sum(count_segments(text).segments for text in self.messages)

    @property
    def encoding(self) -> str | None:
        return count_segments(self.body).encoding if self.body else None


class Conversation:
    """The catalog and its understanding, loaded once; ``reply_to`` is then called per message."""

    def __init__(self, catalog: Catalog, rate_limit: RateLimit | None = None) -> None:
        self.catalog = catalog
        self.understander = Understander(catalog)
        self.rate_limit = rate_limit or RateLimit()
        # Replies by (key with its hours, language): a few hundred at most (HOURS_KEYS bounds
        # the hours), so the request path looks up text instead of composing it.
        self._replies: dict[tuple[str, str], Reply] = {}

    def render(self, key: str, lang: str, sent: bool = True, now: float | None = None) -> Reply:
        """The reply for a key (a topic, or parts and hours: see PARTS) in a language; also
        rebuilds a stored reply for a retry. A key whose parts say whether the helpline is open
        but carries no hours (recorded by an older release) takes them from ``now``."""
        name, _, hours = key.partition(HOURS)
        topic, _, made_of = name.rpartition(AS)
        parts = made_of.split(PARTS)
        topic = topic or parts[0]
        if not sent or topic in (OPTED_OUT, RATE_LIMITED):
            return Reply(topic, lang, None, key=key if key != topic else "")
        if not hours and any(self.catalog.needs_hours(part, lang) for part in parts):
            if now is None:
                raise ValueError(f"reply {key!r} says whether the helpline is open: it needs now")
            hours = hours_key(datetime.fromtimestamp(now, UTC))
        full = name + (HOURS + hours if hours else "")
        cached = self._replies.get((full, lang))
        if cached is None:
            messages = self._pack(parts, lang, hours or None)
            cached = Reply(topic, lang, messages[0], messages[1:], "" if full == topic else full)
            self._replies[(full, lang)] = cached
        return cached

    def _pack(self, parts: list[str], lang: str, hours: str | None) -> tuple[str, ...]:
        """The parts' texts, each following one on a new line while the message stays within
        the larger of their budgets; else it starts a new message. Each part is within its own
        budget (``translations check``), so every message is."""
        messages: list[tuple[str, int]] = []
        for part in parts:
            text = self.catalog.render(part, lang, hours)
            budget = self.catalog.topic(part).budget
            if messages:
                joined, room = messages[-1][0] + "\n" + text, max(messages[-1][1], budget)
                if count_segments(joined).segments <= room:
                    messages[-1] = (joined, room)
                    continue
            messages.append((text, budget))
        return tuple(text for text, _ in messages)

    def reply_to(
        self, message: Message | str, state: SenderState, now: float
    ) -> tuple[Reply, SenderState]:
        """The reply to one message (a plain string is an SMS with no media) at ``now`` (Unix
        seconds: the rate limit and whether the helpline is open are read from it)."""
        if isinstance(message, str):
            message = Message(message)
        return self.respond(self.understander.understand(message.text), state, now, message)

    def respond(
        self, understanding: Understanding, state: SenderState, now: float, message: Message | None = None
    ) -> tuple[Reply, SenderState]:
        """``reply_to`` for a message already understood: what a message says does not depend
        on who sent it, so the webhook understands it before it holds the sender's state.
        ``message`` gives the channel and attachments (None: an SMS with none)."""
        channel = message.channel if message is not None else SMS
        media = message.media if message is not None else 0
        told = understanding.lang
        lang = told or state.lang or state.last_lang or SOURCE_LANGUAGE
        if told:
            state = replace(state, last_lang=told)
        topic = understanding.topic

        # Safety first: an emergency is answered even past an opt-out or the rate limit.
        if understanding.kind == Understood.CRISIS:
            return self.render("crisis", lang, now=now), state

        # Opting out and back in take effect at once, whatever the rate limit; only what we
        # say about it is limited, or alternating STOP and START would get past the limit.
        if understanding.kind == Understood.CONTROL and topic == "stop":
            stop_lang = understanding.keyword_lang or lang
            # One confirmation: a repeated stop word, or one Twilio confirms itself (SMS only),
            # gets none.
            twilio_confirms = channel == SMS and understanding.word in TWILIO_OPT_OUT_WORDS
            silent = twilio_confirms or state.opted_out
            reply, state = self.render("stop", stop_lang, sent=not silent, now=now), replace(state, opted_out=True)
            return (reply, state) if silent else self._within_rate_limit(reply, state, now, notice=False)
        if understanding.kind == Understood.CONTROL and topic == "start":
            if state.opted_out:  # welcome back, with the menu
                state = replace(state, opted_out=False, last_menu=lang)
                return self._within_rate_limit(self.render("start", lang, now=now), state, now)
            # Never opted out: the first welcome (the opt-in confirmation carriers require).
            return self._within_rate_limit(self.render("start" + AS + "welcome", lang, now=now), state, now)
        if state.opted_out:
            return self.render(OPTED_OUT, lang, sent=False), state

        if media and understanding.kind == Understood.EMPTY:
            reply = self.render("media", lang, now=now)  # a picture or voice note with no text
        elif topic == "language":
            lang = understanding.keyword_lang or lang
            state = replace(state, lang=lang, last_lang=lang)
            reply = self.render("language", lang, now=now)
        elif understanding.kind == Understood.NUMBER:
            lang = told or state.last_menu or lang
            chosen = self.catalog.menu_topic(understanding.number or 0)
            reply = self.render(chosen.id if chosen else "menu", lang, now=now)
        elif topic in SMALL_TALK:
            reply = self.render(topic, lang, now=now)
        elif topic == FEELINGS[0]:
            reply = self.render(PARTS.join(FEELINGS), lang, now=now)
        elif topic == "support" and understanding.feeling:
            # "me siento muy sola" names support's own words, but it is a feeling first: the
            # kind line, then the support and helpline answers, as the support it asked for.
            reply = self.render("support" + AS + PARTS.join(FEELINGS), lang, now=now)
        elif topic in ASKED_IN_FEAR and understanding.feeling:
            reply = self.render(topic + AS + FEELINGS_QUESTION + PARTS + topic, lang, now=now)
        elif understanding.kind in (Understood.CONTROL, Understood.TOPIC):
            known = topic is not None and self.catalog.has_topic(topic)
            reply = self.render(topic if known and topic is not None else "fallback", lang, now=now)
        elif understanding.kind == Understood.EMPTY:
            reply = self.render("menu", lang, now=now)  # an empty body, or only punctuation
        else:
            reply = self.render("fallback", lang, now=now)
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
            return self.render(RATE_LIMIT, reply.lang, now=now), replace(state, window_noticed=True)
        return self.render(RATE_LIMITED, reply.lang, sent=False), state

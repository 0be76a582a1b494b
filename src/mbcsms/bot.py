"""One inbound message in, one reply out: the conversation rules applied against the state store.

Shared by the webhook and ``mbcsms reply --from``, which both get theirs from ``build_bot``. This
is where a store failure is handled (docs/deploy.md, "When the store is down"):

- A crisis reply never waits for the store: it needs no state, and is recorded only if the store
  answers within a fraction of a second (else in the background, or not at all).
- After a failure the breaker opens: requests stop waiting on the store for a few seconds, then
  one request at a time tries it again.
- Without the store, content goes only to a sender known not to have opted out: SQLite's flag
  read without the write lock, or for PostgreSQL this server's fresh mirror of opt-outs. Where the
  bot cannot be sure, it sends nothing but a crisis reply.
- An opt-out or opt-in taken without the store is honoured at once, kept on local disk, and
  written to the store as soon as it answers. Only when even that fails is it refused (503).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import TypeVar

from . import logs
from .catalog import Catalog
from .config import Settings
from .conversation import Conversation, Message, RateLimit, Reply, SenderState, channel_of
from .senders import SenderKeys, message_key
from .store import OptChange, Recorded, StateStore, StoreBusy, StoreError, open_store
from .store.local import LocalState, LocalStateError
from .understanding import Understanding, Understood

T = TypeVar("T")

# A crisis reply waits at most this long for the store to record it; then it goes out anyway.
CRISIS_WAIT_SECONDS = 0.3
# Of that, how long a crisis waits for SQLite's write lock on its own thread before a store
# thread takes over the wait (the hand-off costs more than the exchange itself, so it is paid
# only when the lock is busy).
CRISIS_LOCK_WAIT_SECONDS = 0.05
# The mirror of opt-outs (PostgreSQL) is brought up to date this often by each worker.
MIRROR_SYNC_SECONDS = 2.0
# Senders remembered for the in-memory rate limit that stands in while the store is away.
OUTAGE_RATE_SENDERS = 10_000
WITHHELD = "withheld"


class OptOutNotRecorded(Exception):
    """An opt-out or opt-in could be stored neither in the store nor on local disk: the webhook
    answers 503 (Twilio then tries the fallback URL, see docs/deploy.md) and the error log
    carries it."""


@dataclass(frozen=True)
class Inbound:
    sender: str | None  # the raw address, never stored nor logged: hashed below
    body: str
    message_sid: str | None = None
    media: int = 0  # Twilio's NumMedia: pictures, voice notes, contact cards attached

    @property
    def message(self) -> Message:
        """What the conversation sees: the text, the channel (from the From prefix) and the
        number of attachments; never the sender."""
        return Message(self.body, channel_of(self.sender), max(0, self.media))


@dataclass(frozen=True)
class _Understood:
    """A message and what it was understood as: decided before the store is touched."""

    understanding: Understanding
    message: Message


class Breaker:
    """A circuit breaker, one per process. Closed: requests use the store. After a failure it
    opens: requests skip the store for ``retry_seconds``; then one request at a time tries it
    (half-open), and a success closes it."""

    def __init__(self, retry_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._opened_at: float | None = None  # the first failure of this outage (monotonic)
        self.outage_started: float | None = None  # the same, by the wall clock
        self._retry_at = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._probing or self._clock() >= self._retry_at else "open"

    @property
    def closed(self) -> bool:
        return self._opened_at is None

    def allow(self) -> bool:
        """May this request use the store? In the half-open state, only one request at a time."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._clock() < self._retry_at:
                return False
            self._probing = True
            return True

    def succeeded(self) -> float | None:
        """The store answered. Returns how long it was away when this closes the breaker."""
        with self._lock:
            if self._opened_at is None:
                return None
            outage = self._clock() - self._opened_at
            self._opened_at = self.outage_started = None
            self._probing = False
            return outage

    def failed(self) -> bool:
        """The store failed. Returns True when this opens the breaker (a new outage)."""
        with self._lock:
            first = self._opened_at is None
            if first:
                self._opened_at = self._clock()
                self.outage_started = time.time()
            self._retry_at = self._clock() + self.retry_seconds
            self._probing = False
            return first


class StoreCalls:
    """Store calls run on a few daemon threads of this process, so that a request waits at most
    its deadline whatever the store does: a database that hangs (a port that accepts and never
    answers, a server frozen mid-query) holds one of these threads, never the worker."""

    THREADS = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.SimpleQueue[tuple[Future[object], Callable[[], object]]] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(self.THREADS)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # First use, or a forked copy of the process: its threads did not come along.
            self._queue = queue.SimpleQueue()
            self._slots = threading.BoundedSemaphore(self.THREADS)
            for number in range(self.THREADS):
                threading.Thread(target=self._work, daemon=True, name=f"mbcsms-store-{number}").start()
            self._pid = os.getpid()

    def _work(self) -> None:
        work = self._queue
        while True:
            future, call = work.get()
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(call())
                    except BaseException as error:  # handed to whoever waits on the future
                        future.set_exception(error)
            finally:
                self._slots.release()

    def submit(self, call: Callable[[], T], wait: float = 0.0) -> Future[T]:
        """Run ``call`` on a store thread, waiting up to ``wait`` seconds for a free one (several
        requests at once in a threaded server); StoreError when none frees up."""
        self._start()
        if not self._slots.acquire(timeout=wait) if wait > 0 else not self._slots.acquire(blocking=False):
            raise StoreError("store: every store thread is still waiting on the store")
        future: Future[T] = Future()
        self._queue.put((future, call))  # type: ignore[arg-type]
        return future

    def call(self, call: Callable[[], T], timeout: float) -> T:
        waited = time.monotonic()
        future = self.submit(call, wait=timeout)
        try:
            return future.result(max(0.0, timeout - (time.monotonic() - waited)))
        except FutureTimeout:
            raise StoreError(f"store: no answer within {timeout:g} s") from None


class Events:
    """Plain counters of what an outage did, for logs, tests and metrics: a listener
    ``(name, amount)`` added to ``listeners`` hears each as it happens, and one ``(topic, lang)``
    added to ``reply_listeners`` each reply as it is logged (``mbcsms.metrics``).

    replies_withheld_state_unknown, store_failures, opt_changes_not_recorded,
    opt_changes_kept_locally, opt_changes_flushed, replies_without_store,
    crisis_without_store, outage_seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: defaultdict[str, float] = defaultdict(float)
        self.listeners: list[Callable[[str, float], None]] = []
        self.reply_listeners: list[Callable[[str, str], None]] = []

    def add(self, name: str, amount: float = 1.0) -> None:
        with self._lock:
            self.counts[name] += amount
        for listener in list(self.listeners):
            listener(name, amount)

    def reply(self, topic: str, lang: str) -> None:
        for listener in list(self.reply_listeners):
            listener(topic, lang)


class Bot:
    def __init__(
        self, conversation: Conversation, store: StateStore, secret: str, *,
        previous_secrets: tuple[str, ...] = (), local: LocalState | None = None,
        timeout: float = 1.0, retry_seconds: float = 5.0, mirror_max_age: float = 5.0,
    ) -> None:
        self.conversation = conversation
        self.store = store
        self.secret = secret
        self.previous_secrets = previous_secrets
        self.local = local
        # SQLite answers a read without its write lock; PostgreSQL needs the mirror instead.
        self.mirrored = store.name == "postgresql"
        self.mirror_max_age = mirror_max_age
        self.breaker = Breaker(retry_seconds)
        self.events = Events()
        # A request waits this long at most: SQLite's lock wait, or PostgreSQL's checkout, twice
        # for an opt change (SQLite writes it again under FULL sync), and a margin.
        self.deadline = 2 * timeout + 0.25
        self._calls = StoreCalls()
        self._outage_rates: dict[str, SenderState] = {}
        self._mirror_thread: threading.Thread | None = None

    # -- a message ----------------------------------------------------------------------------

    def answer(self, inbound: Inbound, now: float | None = None) -> Reply:
        now = time.time() if now is None else now
        started = time.perf_counter()
        # Understood before the store is touched: the store's lock is shared by every worker,
        # and a crisis is decided without it.
        understanding = self.conversation.understander.understand(inbound.body)
        message_in = inbound.message
        if not inbound.sender:
            # Nobody to remember: answer the question, keep nothing.
            reply, _ = self.conversation.respond(understanding, SenderState(), now, message_in)
            self._log(reply, "anonymous", started)
            return reply
        keys = SenderKeys.of(inbound.sender, self.secret, self.previous_secrets)
        message = (
            message_key(self.secret, inbound.message_sid, keys.current, inbound.body)
            if inbound.message_sid else None
        )
        understood = _Understood(understanding, message_in)
        if understanding.kind == Understood.CRISIS:
            return self._crisis(understood, keys, message, now, started)
        reason = "breaker open"
        if self.breaker.allow():
            try:
                return self._with_store(understood, keys, message, now, started)
            except StoreError as error:
                self._store_failed(error)
                reason = _reason(error)
        return self._without_store(understood, keys, message, now, started, reason)

    def _exchange(
        self, understood: _Understood, keys: SenderKeys, message: str | None, now: float,
        fresh: list[tuple[Reply, SenderState, SenderState]], lock_wait: float | None = None,
    ) -> Callable[[], Recorded]:
        def decide(state: SenderState) -> tuple[Reply, SenderState]:
            reply, new_state = self.conversation.respond(understood.understanding, state, now, understood.message)
            fresh.append((reply, state, new_state))
            # The store records the reply's topic: give it the key that renders the same reply
            # again (its parts and hours line), so a retry gets the same words and messages.
            return replace(reply, topic=reply.record), new_state

        return lambda: self.store.exchange(
            keys.current, message, decide, now, previous=keys.previous, key_id=keys.key_id, lock_wait=lock_wait
        )

    def _with_store(
        self, understood: _Understood, keys: SenderKeys, message: str | None, now: float, started: float
    ) -> Reply:
        # Opt changes taken during an outage (by any worker of this server) go in first, so
        # this message is decided on them.
        self._flush_pending()
        fresh: list[tuple[Reply, SenderState, SenderState]] = []
        recorded = self._store_call(self._exchange(understood, keys, message, now, fresh))
        self._store_ok()
        if fresh:
            reply, before, after = fresh[-1]
            if before.opted_out != after.opted_out:
                self._mirror(keys.current, after.opted_out)
        else:
            reply = self._replay(recorded, now)
        self._log(reply, keys.current, started, retry=None if fresh else True)
        return reply

    def _crisis(
        self, understood: _Understood, keys: SenderKeys, message: str | None, now: float, started: float
    ) -> Reply:
        """911 and 988 go out at once: the decision needs no state. With the breaker closed the
        exchange is recorded (language, dedupe, last seen) if the store answers within
        CRISIS_WAIT_SECONDS; otherwise it finishes in the background, or not at all."""
        stateless, _ = self.conversation.respond(understood.understanding, SenderState(), now, understood.message)
        if not self.breaker.closed:
            self.events.add("crisis_without_store")
            self._log(stateless, keys.current, started, degraded=True)
            return stateless
        fresh: list[tuple[Reply, SenderState, SenderState]] = []
        try:
            recorded = self._record_crisis(understood, keys, message, now, fresh)
        except StoreError as error:
            self._store_failed(error)
            recorded = None
        if recorded is None:
            self.events.add("crisis_without_store")
            self._log(stateless, keys.current, started, degraded=True)
            return stateless
        self._store_ok()
        reply = fresh[-1][0] if fresh else self._replay(recorded, now)
        self._log(reply, keys.current, started, retry=None if fresh else True)
        return reply

    def _record_crisis(
        self, understood: _Understood, keys: SenderKeys, message: str | None, now: float,
        fresh: list[tuple[Reply, SenderState, SenderState]],
    ) -> Recorded | None:
        """The crisis's exchange, if the store records it within CRISIS_WAIT_SECONDS; None
        when it goes on in the background. SQLite is tried on this thread while its write lock
        frees within CRISIS_LOCK_WAIT_SECONDS (a checkpoint is left to others); a busy lock,
        or PostgreSQL, is waited for on a store thread. Raises StoreError."""
        began = time.monotonic()
        if self.store.bounds_own_waits:
            try:
                return self._exchange(understood, keys, message, now, fresh, CRISIS_LOCK_WAIT_SECONDS)()
            except StoreBusy:
                pass  # nothing was changed: the store thread below tries it again
        future = self._calls.submit(self._exchange(understood, keys, message, now, fresh))
        try:
            return future.result(max(0.0, min(CRISIS_WAIT_SECONDS, self.deadline) - (time.monotonic() - began)))
        except FutureTimeout:
            future.add_done_callback(self._outcome)
            return None

    def _outcome(self, future: Future[Recorded]) -> None:
        """A store call the request stopped waiting for has ended: the breaker hears of it."""
        error = future.exception()
        if isinstance(error, StoreError):
            self._store_failed(error)
        elif error is None:
            self._store_ok()

    def _without_store(
        self, understood: _Understood, keys: SenderKeys, message: str | None, now: float,
        started: float, reason: str,
    ) -> Reply:
        understanding = understood.understanding
        opted_out, replay = self._known_opt_out(keys, message)
        if replay is not None:
            reply = self._replay(replay, now)
            self._log(reply, keys.current, started, retry=True, degraded=True)
            return reply
        if understanding.kind == Understood.CONTROL and understanding.topic in ("stop", "start"):
            return self._opt_change_without_store(understood, keys, now, started, reason)
        if opted_out is None:
            # Nobody can say whether this sender opted out: content could break their opt-out.
            self.events.add("replies_withheld_state_unknown")
            logs.event(
                "reply_withheld_state_unknown", logging.WARNING, sender=logs.sender_prefix(keys.current),
                store=self.store.name, reason=reason,
            )
            return Reply(WITHHELD, understanding.lang or "en", None)
        # Known: answered by the ordinary rules, the rate limit counted in this process's memory.
        state = replace(self._outage_rates.get(keys.current, SenderState()), opted_out=opted_out)
        reply, new_state = self.conversation.respond(understanding, state, now, understood.message)
        if len(self._outage_rates) >= OUTAGE_RATE_SENDERS:
            self._outage_rates.clear()
        self._outage_rates[keys.current] = new_state
        self.events.add("replies_without_store")
        self._log(reply, keys.current, started, degraded=True)
        return reply

    def _opt_change_without_store(
        self, understood: _Understood, keys: SenderKeys, now: float, started: float, reason: str
    ) -> Reply:
        """Honoured at once and kept on local disk until the store has it. An opt-out is
        answered as a first one (a confirmation where one applies), so that Twilio's
        re-delivery of it gets the same answer; an opt-in as a welcome back (whether the
        sender ever opted out is in the store)."""
        opting_out = understood.understanding.topic == "stop"
        reply, new_state = self.conversation.respond(
            understood.understanding, SenderState(opted_out=not opting_out), now, understood.message
        )
        change = OptChange(keys.current, new_state.opted_out, now, keys.key_id, keys.previous)
        try:
            if self.local is None:
                raise LocalStateError("local state: none configured")
            self.local.journal(change)
        except LocalStateError as error:
            self.events.add("opt_changes_not_recorded")
            logs.event(
                "opt_change_not_recorded", logging.ERROR, topic=reply.topic,
                sender=logs.sender_prefix(keys.current), reason=f"{reason}; {_reason(error)}",
            )
            raise OptOutNotRecorded(reply.topic) from error
        self._mirror(keys.current, new_state.opted_out)
        self.events.add("opt_changes_kept_locally")
        logs.event(
            "opt_change_kept_locally", logging.WARNING, topic=reply.topic,
            sender=logs.sender_prefix(keys.current), reason=reason,
        )
        self._log(reply, keys.current, started, degraded=True)
        return reply

    def _known_opt_out(self, keys: SenderKeys, message: str | None) -> tuple[bool | None, Recorded | None]:
        """Whether the sender opted out, as far as this server can be sure without the store
        (None: it cannot), and the recorded reply when the message was answered before."""
        pending: bool | None = None
        if self.local is not None:
            try:
                pending = self.local.pending_opt_out(keys.all)
            except LocalStateError:
                pending = None
        if self.mirrored:
            if pending is not None:
                return pending, None
            return (self._mirror_opt_out(keys) if self._mirror_is_fresh() else None), None
        try:
            peek = self.store.peek(keys.all, message)
        except StoreError:
            return pending, None
        if peek is None:
            return pending, None
        opted_out = peek.opted_out if pending is None else pending
        replay = peek.answered
        if replay is not None:
            replay = Recorded.replayed(replay.topic, replay.lang, replay.sent, opted_out)
        return opted_out, replay

    # -- the mirror and the journal -------------------------------------------------------------

    def _mirror_is_fresh(self) -> bool:
        """Fresh: synced (by any worker of this server) within MBCSMS_MIRROR_MAX_AGE before the
        store first failed in this outage. A server that started during the outage has none."""
        if self.local is None:
            return False
        try:
            synced_at = self.local.mirror_synced_at()
        except LocalStateError:
            return False
        failed_at = self.breaker.outage_started or time.time()
        return synced_at is not None and synced_at >= failed_at - self.mirror_max_age

    def _mirror_opt_out(self, keys: SenderKeys) -> bool | None:
        assert self.local is not None
        try:
            return self.local.mirror_opt_out(keys.all)
        except LocalStateError:
            return None

    def _mirror(self, sender: str, opted_out: bool) -> None:
        if self.local is None or not self.mirrored:
            return
        try:
            self.local.mirror_record(sender, opted_out)
        except LocalStateError as error:
            logs.event("mirror_not_written", logging.WARNING, reason=_reason(error))

    def sync_mirror(self) -> bool:
        """Bring the mirror up to date from the store (PostgreSQL); False when it could not."""
        if self.local is None or not self.mirrored:
            return False
        try:
            cursor = self.local.mirror_cursor()
            before = time.time()
            new_cursor, rows = self.store.opt_changes_since(cursor)
            self.local.mirror_synced(rows, new_cursor, before)
        except (StoreError, LocalStateError):
            return False
        return True

    def start_background(self) -> None:
        """The mirror's sync thread (PostgreSQL): the web app starts it in each worker."""
        if self.local is None or not self.mirrored:
            return
        if self._mirror_thread is not None and self._mirror_thread.is_alive():
            return
        interval = min(MIRROR_SYNC_SECONDS, self.mirror_max_age / 2)

        def loop() -> None:
            while True:
                self.sync_mirror()
                time.sleep(interval)

        self._mirror_thread = threading.Thread(target=loop, daemon=True, name="mbcsms-mirror")
        self._mirror_thread.start()

    def _flush_pending(self) -> None:
        """Write the opt changes kept on local disk to the store (raises StoreError)."""
        if self.local is None:
            return
        try:
            if not self.local.has_pending():
                return
            changes = self.local.pending()
        except LocalStateError:
            return
        applied = self._store_call(lambda: self.store.apply_opt_changes(changes))
        try:
            self.local.forget(changes)
        except LocalStateError as error:
            logs.event("mirror_not_written", logging.WARNING, reason=_reason(error))
        self.events.add("opt_changes_flushed", len(changes))
        logs.event("opt_changes_flushed", logging.WARNING, count=applied, store=self.store.name)

    # -- the store's health -------------------------------------------------------------------

    def _store_call(self, call: Callable[[], T]) -> T:
        """A store call the request waits for, at most ``deadline``: made right here when the
        store's own timeouts bound it (SQLite), else on a store thread. The hand-off to a thread
        cost about 0.5 ms of a 2 ms request (bench/profile_request.py), so it is paid only
        where it buys safety."""
        if self.store.bounds_own_waits:
            return call()
        return self._calls.call(call, self.deadline)

    def health(self) -> str | None:
        """None when the store answers (and pending opt changes are written); else why not."""
        if not self.breaker.allow():
            return f"{self.store.name}: breaker open"
        try:
            self._store_call(self.store.check)
            self._store_ok()
            self._flush_pending()
        except StoreError as error:
            self._store_failed(error)
            return _reason(error)
        return None

    def _store_failed(self, error: StoreError) -> None:
        self.events.add("store_failures")
        if self.breaker.failed():
            logs.event("store_breaker_opened", logging.ERROR, store=self.store.name, reason=_reason(error))

    def _store_ok(self) -> None:
        outage = self.breaker.succeeded()
        if outage is not None:
            self.events.add("outage_seconds", outage)
            logs.event("store_breaker_closed", logging.WARNING, store=self.store.name,
                       outage_seconds=round(outage, 2))

    def _replay(self, recorded: Recorded, now: float) -> Reply:
        # The recorded topic is the reply's key (see _exchange): the same parts and hours line.
        return self.conversation.render(recorded.topic, recorded.lang, recorded.sent, now=now)

    def _log(
        self, reply: Reply, sender: str, started: float, retry: bool | None = None, degraded: bool = False
    ) -> None:
        logs.event(
            "reply", topic=reply.topic, lang=reply.lang, segments=reply.total_segments,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            sender=logs.sender_prefix(sender), retry=retry, store=None if not degraded else "unavailable",
        )
        if not retry:  # a retry of an answered message is not a new reply
            self.events.reply(reply.topic, reply.lang)


def build_conversation(settings: Settings) -> Conversation:
    """The catalogs and the rules, loaded once: what every message is answered with."""
    rate_limit = RateLimit(settings.rate_limit, settings.rate_window_seconds)
    return Conversation(Catalog.load(settings.locales), rate_limit)


def build_bot(settings: Settings) -> Bot:
    """Catalog -> Conversation -> state store -> Bot: the one wiring, for the webhook
    (``create_app``) and ``mbcsms reply --from``."""
    conversation = build_conversation(settings)  # first: a broken catalog stops start-up before any store opens
    store = open_store(settings.database_url, settings.sqlite_path, timeout=settings.store_timeout_seconds)
    return Bot(
        conversation, store, settings.secret, previous_secrets=settings.previous_secrets,
        local=LocalState(settings.local_state_path()), timeout=settings.store_timeout_seconds,
        retry_seconds=settings.store_retry_seconds, mirror_max_age=settings.mirror_max_age_seconds,
    )


def _reason(error: Exception) -> str:
    # The store's own message: a path or an SQL error, never request data.
    return str(error)[:200]

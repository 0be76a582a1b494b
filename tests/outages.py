"""Store outages made for real, and the one set of checks every outage test runs (issue 14).

- SQLite: the write lock held from outside (another connection in BEGIN IMMEDIATE).
- PostgreSQL stopped: a throwaway server (tests/pg_server.py) shut down.
- PostgreSQL hanging: ``HangingProxy`` between the app and a real server; switched to hang, it
  accepts connections and never answers, and freezes the ones it relays.

The checks take a ``Send`` (the Flask test client or real HTTP to the Procfile's gunicorn):
before the outage some senders opt out (STOP, PARAR, a phrase, WhatsApp); during it they get
nothing, a crisis is answered in under 2 s, a re-delivered STOP gets its first answer, and an
opt-out sent during it is honoured at once; afterwards it is in the store.
"""

from __future__ import annotations

import select
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

from tests.helpers import AUTH_TOKEN, new_sid

CRISIS = "I want to kill myself"
CRISIS_LIMIT_SECONDS = 2.0
# Opted out before the outage, each its own way; the WhatsApp one by WhatsApp.
OPTED_OUT = {
    "+15550201001": "STOP",
    "+15550201002": "PARAR",
    "+15550201003": "please stop texting me",
    "whatsapp:+15550201004": "STOP",
}
CLEAR = "+15550201005"  # never opted out
LATE = "+15550201006"  # opts out during the outage
ALL_OPTED_OUT = [*OPTED_OUT, LATE]


@dataclass
class Answer:
    status: int
    messages: list[str]
    seconds: float


Send = Callable[[str, str, "str | None"], Answer]


def parse(status: int, body: bytes, seconds: float) -> Answer:
    if status != 200:
        return Answer(status, [], seconds)
    root = ElementTree.fromstring(body)
    return Answer(status, [element.text or "" for element in root.iter("Message")], seconds)


def http_sender(base_url: str) -> Send:
    """POST /sms over real HTTP, signed as Twilio signs."""

    def send(body: str, sender: str, sid: str | None = None) -> Answer:
        url = base_url + "/sms"
        form = {"From": sender, "To": "+15550009999", "Body": body, "MessageSid": sid or new_sid(),
                "AccountSid": "AC" + "0" * 32}
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, form),
                     "Content-Type": "application/x-www-form-urlencoded"},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return parse(response.status, response.read(), time.perf_counter() - started)
        except urllib.error.HTTPError as error:
            return Answer(error.code, [], time.perf_counter() - started)

    return send


def client_sender(client: object) -> Send:
    """POST /sms through the Flask test client, signed as Twilio signs."""
    from tests.helpers import post_signed

    def send(body: str, sender: str, sid: str | None = None) -> Answer:
        started = time.perf_counter()
        response = post_signed(client, body, sender=sender, sid=sid)  # type: ignore[arg-type]
        return parse(response.status_code, response.get_data(), time.perf_counter() - started)

    return send


@dataclass
class Before:
    first: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)  # sender: (word, sid, answer)


@dataclass
class Measured:
    crisis_seconds: list[float] = field(default_factory=list)
    content_to_opted_out: int = 0
    clear_answered: bool = False


def before_outage(send: Send) -> Before:
    before = Before()
    for sender, word in OPTED_OUT.items():
        sid = new_sid()
        answer = send(word, sender, sid)
        assert answer.status == 200, answer
        before.first[sender] = (word, sid, answer.messages)
    assert send("HER2", CLEAR, None).messages, "a sender who never opted out is answered"
    for sender in OPTED_OUT:
        assert send("HER2", sender, None).messages == []
    return before


def during_outage(send: Send, before: Before, *, clear_is_known: bool) -> Measured:
    """The checks while the store is away. ``clear_is_known``: this server can be sure that
    CLEAR has not opted out (SQLite's flag, or a fresh mirror), so CLEAR gets content."""
    measured = Measured()
    for sender in OPTED_OUT:
        for body in ("HER2", "MENU", "que es her2"):
            answer = send(body, sender, None)
            assert answer.status == 200, answer
            measured.content_to_opted_out += len(answer.messages)
        crisis = send(CRISIS, sender, None)
        measured.crisis_seconds.append(crisis.seconds)
        assert crisis.status == 200 and len(crisis.messages) == 1 and "988" in crisis.messages[0], crisis
    for sender, (word, sid, first) in before.first.items():
        again = send(word, sender, sid)  # Twilio re-delivers a STOP it had an answer for
        assert again.status == 200 and again.messages == first, (word, again, first)
    crisis = send(CRISIS, CLEAR, None)
    measured.crisis_seconds.append(crisis.seconds)
    assert crisis.status == 200 and "988" in crisis.messages[0]
    clear = send("HER2", CLEAR, None)
    assert clear.status == 200
    measured.clear_answered = bool(clear.messages)
    if clear_is_known:
        assert clear.messages and "HER2" in clear.messages[0], clear
    else:
        assert clear.messages == [], "unsure whether CLEAR opted out: nothing but a crisis reply"
    late = send("PARAR", LATE, None)  # an opt-out during the outage: honoured and confirmed at once
    assert late.status == 200 and len(late.messages) == 1 and "ALTA" in late.messages[0], late
    for body in ("HER2", "hola"):
        measured.content_to_opted_out += len(send(body, LATE, None).messages)
    assert measured.content_to_opted_out == 0
    assert max(measured.crisis_seconds) < CRISIS_LIMIT_SECONDS, measured.crisis_seconds
    return measured


def after_outage(send: Send, healthy: Callable[[], bool], within: float = 30.0) -> None:
    """Once the store is back (/healthz 200 once the breaker's pause is over): as before."""
    deadline = time.monotonic() + within
    while not healthy():
        assert time.monotonic() < deadline, "/healthz never says ok again"
        time.sleep(0.2)
    assert send("HER2", CLEAR, None).messages
    for sender in ALL_OPTED_OUT:
        assert send("HER2", sender, None).messages == []
    assert "Welcome back" in send("START", "+15550201001", None).messages[0]
    assert send("HER2", "+15550201001", None).messages


# -- making outages -------------------------------------------------------------------------


@contextmanager
def sqlite_write_lock(path: Path) -> Iterator[None]:
    """Another process's transaction holding SQLite's write lock (readers are not blocked)."""
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


def _key(number: str) -> str:
    from mbcsms.senders import sender_key
    from tests.helpers import SECRET

    return sender_key(SECRET, number)


def sqlite_opted_out(path: Path, number: str = LATE) -> bool:
    """Whether the store itself (not this server's local file) holds the sender as opted out."""
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT opted_out FROM senders WHERE sender = ?", (_key(number),)).fetchone()
        return bool(row and row[0])


def postgres_opted_out(url: str, number: str = LATE) -> bool:
    import psycopg

    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT opted_out FROM senders WHERE sender = %s", (_key(number),)).fetchone()
        return bool(row and row[0])


def pending_changes(local_state: Path) -> int:
    with sqlite3.connect(local_state) as connection:
        return int(connection.execute("SELECT count(*) FROM pending").fetchone()[0])


def mirror_holds(local_state: Path, count: int, within: float = 15.0) -> None:
    """Wait until the server's mirror (kept by its workers' sync threads) holds ``count``
    opted-out keys and was synced just now."""
    deadline = time.monotonic() + within
    while True:
        try:
            with sqlite3.connect(local_state) as connection:
                held = connection.execute("SELECT count(*) FROM mirror WHERE opted_out").fetchone()[0]
                synced = connection.execute("SELECT value FROM meta WHERE name = 'synced_at'").fetchone()
            if held >= count and synced and synced[0] > time.time() - 1.5:
                return
        except sqlite3.Error:
            pass
        assert time.monotonic() < deadline, "the mirror never caught up"
        time.sleep(0.1)


class HangingProxy:
    """A TCP relay to a real server that can be made to hang: new connections are accepted and
    never answered, relayed ones frozen. Resumed, the frozen connections are cut (as a network
    that comes back after the server's timeouts) and new ones relayed again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hanging = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            if self.hanging:
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.append(upstream)
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        pair = {a: b, b: a}
        try:
            while not self._closed:
                if self.hanging:
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select(list(pair), [], [], 0.1)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    pair[source].sendall(data)
        except (OSError, ValueError):  # cut by resume() or close()
            return
        finally:
            a.close()
            b.close()

    def hang(self) -> None:
        self.hanging = True

    def resume(self) -> None:
        with self._lock:
            frozen, self._sockets = self._sockets, []
        for each in frozen:
            with suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()
        self.hanging = False

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.resume()

"""Crash test: kill gunicorn workers and the whole server under load; no acknowledged opt-out may
be lost, and nobody who opted out may get content (issue 14, "The crash test above still loses
nothing").

    .venv/bin/python bench/crash.py --store sqlite              # --duration 60 --clients 8
    source .ci/postgres.sh && .venv/bin/python bench/crash.py --store postgres

What it does, on 127.0.0.1 only, and it stops by itself:

- Runs the Procfile's ``release:`` step (``mbcsms migrate``), then its ``web:`` command as a PaaS
  would (through a shell, ``WEB_CONCURRENCY`` 2), with the bind address narrowed from 0.0.0.0 to
  127.0.0.1. State: a fresh SQLite file, or a private PostgreSQL database created on the server
  named by ``MBCSMS_TEST_DATABASE_URL`` (``.ci/postgres.sh`` starts one) and dropped afterwards.
  ``MBCSMS_LOCAL_STATE`` (the server's local file for outages) is in the run's own directory, so
  it survives the restarts, as on a persistent disk.
- ``--clients`` threads send Twilio-signed requests, each with a fresh MessageSid, from --senders
  fictional senders (+1555010xxxx, 2,000 by default; each sender belongs to one thread, so its
  messages are in order): STOP, PARAR, "please stop texting me", STOP by WhatsApp
  (``whatsapp:+1...``, the same sender), HER2 and MENU and other questions, START and ALTA,
  a crisis now and then, and sometimes the same request again (same MessageSid, as Twilio
  re-delivers).
- A connection error or a 5xx is retried with the same MessageSid, as Twilio would, until it is
  answered (or for at most --give-up seconds; a message never answered makes that sender's state
  unknown and leaves them out of the checks until their next acknowledged opt change).
- Meanwhile a killer SIGKILLs one gunicorn worker every 1-3 s (one that has finished booting:
  killing a booting worker tests nothing), and twice SIGKILLs the whole server (arbiter and
  workers) and starts it again on the same port, files and database.

Each sender's acknowledged state is tracked: an opt-out answered with HTTP 200 means opted out
from then on, until an opt-in is answered with 200. At the end the server is stopped, started once
more cleanly (its /healthz writes any opt change kept locally to the store), stopped again, and
the store itself is read (SQLite file / PostgreSQL, with the same MBCSMS_SECRET-keyed hash the app
uses). Checked:

- lost: a sender whose last acknowledged opt change was an opt-out, not opted out in the store;
- optin lost: the same for an acknowledged opt-in (the store still says opted out);
- pending: opt changes still waiting in the local file after the clean start;
- content after stop: a reply body other than the opt-out confirmation, the crisis reply or
  nothing, to a sender whose opt-out was acknowledged;
- duplicate: a re-delivered MessageSid answered differently from the first time (a content reply
  replayed to someone who opted out since is expected to be empty);
- 5xx, and crisis replies that took 2 s or more (or were not the crisis reply): as the client
  saw them, leaving out the few that met a moment with no worker ready (the replacement still
  booting, or the server restarting: they wait in the listen queue whatever the bot does; these
  are reported apart), and as the bot timed them in its own log (``latency_ms``);
- SQLite: ``PRAGMA integrity_check`` of the store and of the local file.

Exit status 0 when every check passes, 1 otherwise. ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from twilio.request_validator import RequestValidator

from mbcsms.catalog import Catalog
from mbcsms.conversation import Conversation, SenderState
from mbcsms.senders import sender_key

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROCFILE = ROOT / "Procfile"

AUTH_TOKEN = "crash-auth-token-0123456789abcdef"
SECRET = "crash-secret-0123456789abcdef0123456789"
URL_VARIABLE = "MBCSMS_TEST_DATABASE_URL"
CRISIS_LIMIT = 2.0
REQUEST_TIMEOUT = 10.0  # Twilio waits 15 s; a worker is never this slow unless something is wrong

# What each kind of message is, checked against the bot's own rules before the run starts.
OPT_OUTS = ("STOP", "PARAR", "please stop texting me")
OPT_INS = ("START", "ALTA")
QUESTIONS = ("HER2", "MENU", "what is her2", "que es her2", "3")
CRISIS = ("I want to kill myself", "quiero morir")
# (kind, text, by WhatsApp, weight); "again" re-sends the sender's last answered request.
MIX = (
    ("out", "STOP", False, 10), ("out", "PARAR", False, 6), ("out", "please stop texting me", False, 6),
    ("out", "STOP", True, 6),
    ("in", "START", False, 8), ("in", "ALTA", False, 3),
    ("content", "HER2", False, 14), ("content", "MENU", False, 14), ("content", "what is her2", False, 5),
    ("content", "que es her2", False, 5), ("content", "3", False, 4), ("content", "HER2", True, 5),
    ("crisis", "I want to kill myself", False, 3), ("crisis", "quiero morir", False, 1),
    ("again", "", False, 8),
)


# -- the server ---------------------------------------------------------------------------------


def procfile(process: str) -> str:
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    sys.exit(f"no {process}: line in {PROCFILE}")


def loopback_command() -> str:
    """The Procfile's web command, bound to 127.0.0.1 instead of every interface: the run uses
    a known test token, and nothing outside this machine should reach it."""
    command = procfile("web")
    narrowed, count = re.subn(r"--bind\s+0\.0\.0\.0:", "--bind 127.0.0.1:", command)
    if count != 1:
        sys.exit(f"cannot find '--bind 0.0.0.0:$PORT' in the web command to narrow it: {command}")
    return narrowed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(pid: int) -> list[int]:
    """The arbiter's children (its workers), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


class Server:
    def __init__(self, command: str, env: dict[str, str], port: int, work: Path) -> None:
        self.command, self.env, self.port, self.work = command, env, port, work
        self.log = work / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()  # one kill or restart at a time
        self.local_file = env["MBCSMS_LOCAL_STATE"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    def start(self, within: float = 60.0) -> float:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                # exec: the shell becomes gunicorn's arbiter; its own session, so a kill of the
                # process group reaches the arbiter and its workers and nothing else.
                ["bash", "-c", "exec " + self.command], env={**self.env, "PORT": str(self.port)},
                cwd=self.work, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self.wait_healthy(within)

    def wait_healthy(self, within: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/healthz")
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return time.monotonic()
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer /healthz with 200 within {within:.0f} s; see {self.log}")

    def workers(self) -> list[int]:
        return children(self.process.pid) if self.process and self.process.poll() is None else []

    def ready_workers(self) -> list[int]:
        """Workers that have finished booting: create_app opens the local file (MBCSMS_LOCAL_STATE)
        in its last steps, just before gunicorn starts accepting with it."""
        ready = []
        for pid in self.workers():
            try:
                if any(os.readlink(f"/proc/{pid}/fd/{fd}") == self.local_file for fd in os.listdir(f"/proc/{pid}/fd")):
                    ready.append(pid)
            except OSError:  # gone meanwhile
                continue
        return ready

    def kill_worker(self) -> bool:
        """SIGKILL to one worker that is serving (not one still booting: no request can be in
        its hands, and killing it again only keeps the server a worker short for longer)."""
        with self.lock:
            pids = self.ready_workers()
            if not pids:
                return False
            try:
                os.kill(random.choice(pids), signal.SIGKILL)
            except ProcessLookupError:
                return False
            return True

    def kill_and_restart(self, pause: float) -> float:
        """SIGKILL to the arbiter and every worker at once, then the same command again.
        Returns how long it answered nothing (from the kill to /healthz 200)."""
        with self.lock:
            assert self.process is not None
            killed = time.monotonic()
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            while children(self.process.pid):  # workers die with it; make sure they are gone
                time.sleep(0.01)
            time.sleep(pause)
            up = self.start()
            return up - killed

    def stop(self) -> None:
        """A clean stop (SIGTERM: gunicorn lets the workers finish their request)."""
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                return
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()



class Readiness(threading.Thread):
    """When no worker was ready to take a request (after a kill, while the replacement boots, or
    while the whole server restarts): a request then waits in the listen queue, whatever the bot
    does. Sampled every 20 ms."""

    def __init__(self, server: Server, stop: threading.Event) -> None:
        super().__init__(name="readiness", daemon=True)
        self.server, self.stop = server, stop
        self.windows: list[tuple[float, float]] = []

    def run(self) -> None:
        opened: float | None = None
        while not self.stop.is_set():
            ready = bool(self.server.ready_workers())
            now = time.monotonic()
            if not ready and opened is None:
                opened = now
            elif ready and opened is not None:
                self.windows.append((opened, now))
                opened = None
            self.stop.wait(0.02)
        if opened is not None:
            self.windows.append((opened, time.monotonic()))

    def overlaps(self, began: float, ended: float) -> bool:
        return any(start <= ended and began <= end for start, end in self.windows)


# -- the store ----------------------------------------------------------------------------------


class Store:
    """Where the run keeps its state, and how it is read back at the end (with the server
    stopped)."""

    def __init__(self, kind: str, work: Path, admin_url: str | None) -> None:
        self.kind = kind
        self.work = work
        self.sqlite_path = work / "state.db"
        self.local_path = work / "local.db"
        self.admin_url = admin_url
        self.database: str | None = None
        self.url: str | None = None

    def env(self) -> dict[str, str]:
        env = {"MBCSMS_DB": str(self.sqlite_path), "MBCSMS_LOCAL_STATE": str(self.local_path)}
        if self.url:
            env["DATABASE_URL"] = self.url
        return env

    def create(self) -> None:
        if self.kind != "postgres":
            return
        import psycopg

        assert self.admin_url
        self.database = f"mbcsms_crash_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"CREATE DATABASE {self.database}")
        parts = urllib.parse.urlsplit(self.admin_url)
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.database))

    def drop(self) -> None:
        if self.database is None:
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        self.database = None

    def opted_out(self, keys: list[str]) -> dict[str, bool]:
        """The stored opt-out flag of each key that has a row."""
        found: dict[str, bool] = {}
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.url, connect_timeout=5) as connection:
                rows = connection.execute(
                    "SELECT sender, opted_out FROM senders WHERE sender = ANY(%s)", (keys,)
                ).fetchall()
            return {str(sender): bool(flag) for sender, flag in rows}
        connection = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for sender, flag in connection.execute(
                    f"SELECT sender, opted_out FROM senders WHERE sender IN ({marks})", chunk
                ):
                    found[str(sender)] = bool(flag)
        finally:
            connection.close()
        return found

    def integrity(self) -> dict[str, str]:
        results = {}
        paths = {"local file": self.local_path}
        if self.kind == "sqlite":
            paths = {"store": self.sqlite_path, **paths}
        for name, path in paths.items():
            if not path.exists():
                results[name] = "absent"
                continue
            connection = sqlite3.connect(path)
            try:
                results[name] = "; ".join(str(row[0]) for row in connection.execute("PRAGMA integrity_check"))
            finally:
                connection.close()
        return results

    def pending(self) -> int:
        if not self.local_path.exists():
            return 0
        connection = sqlite3.connect(self.local_path)
        try:
            return int(connection.execute("SELECT count(*) FROM pending").fetchone()[0])
        except sqlite3.OperationalError:  # never created: nothing was ever kept locally
            return 0
        finally:
            connection.close()


# -- the clients --------------------------------------------------------------------------------


@dataclass
class Sender:
    number: str
    state: str = "in"  # "in", "out", or "unknown" (an opt change never answered)
    last: tuple[str, str, str, str] | None = None  # (sid, body, address, reply) last answered
    sent: int = 0


@dataclass
class Tally:
    messages: int = 0
    requests: int = 0
    answered: int = 0
    connection_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    retried_messages: int = 0
    given_up: int = 0
    stops_acknowledged: int = 0
    starts_acknowledged: int = 0
    content_replies: int = 0
    withheld_to_opted_out: int = 0  # content asked by someone opted out, answered with nothing
    resent: int = 0
    duplicates: int = 0
    content_after_stop: int = 0
    crisis: int = 0
    crisis_wrong: int = 0
    crisis_attempts: list[tuple[float, float]] = field(default_factory=list)  # answered: (began, seconds)
    crisis_retried: int = 0  # an attempt failed first (its worker killed, the server down)
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(text)

    def merge(self, other: Tally) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(self, name, mine + value)
            elif isinstance(value, Counter):
                mine.update(value)
            elif isinstance(value, list):
                mine.extend(value)


_sids = itertools.count(1)
_sid_lock = threading.Lock()


def new_sid(run: str) -> str:
    with _sid_lock:
        return f"SM{run}{next(_sids):026d}"


def twiml_text(payload: bytes) -> str:
    root = ET.fromstring(payload)
    return "\n".join(element.text or "" for element in root.iter("Message"))


class Client(threading.Thread):
    def __init__(self, number: int, senders: list[Sender], server: Server, run: str, stop: threading.Event,
                 allowed_after_stop: frozenset[str], crisis_replies: frozenset[str], give_up: float) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.senders, self.server, self.run_id, self.stop = senders, server, run, stop
        self.allowed_after_stop, self.crisis_replies = allowed_after_stop, crisis_replies
        self.give_up = give_up
        self.validator = RequestValidator(AUTH_TOKEN)
        self.random = random.Random(f"{run}-{number}")
        self.tally = Tally()
        self.kinds = [entry[:3] for entry in MIX]
        self.weights = [entry[3] for entry in MIX]
        self.latest: Sender | None = None  # whose message this thread had answered last

    def run(self) -> None:
        while not self.stop.is_set():
            sender = self.random.choice(self.senders)
            kind, text, whatsapp = self.random.choices(self.kinds, self.weights)[0]
            if kind == "again":
                # Twilio re-delivers a request soon after it was answered (the answer was lost
                # on the way back): the last one this thread had answered.
                if self.latest is None or self.latest.last is None:
                    continue
                self.again(self.latest)
            else:
                address = ("whatsapp:" if whatsapp else "") + sender.number
                self.message(sender, kind, text, address, new_sid(self.run_id))

    def post(self, sid: str, body: str, address: str) -> tuple[str, float, float, bool] | None:
        """Send until answered with 200, like Twilio with the same MessageSid: (reply, seconds of
        the answered attempt, when it began, whether an attempt failed), or None if given up."""
        url = self.server.url
        form = {"ToCountry": "US", "To": "+15550009999", "From": address, "Body": body, "MessageSid": sid,
                "AccountSid": "AC" + "0" * 32, "NumMedia": "0", "ApiVersion": "2010-04-01"}
        payload = urllib.parse.urlencode(form)
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, form),
                   "Content-Type": "application/x-www-form-urlencoded", "Connection": "close"}
        first = time.monotonic()
        failed = False
        while True:
            began = time.monotonic()
            self.tally.requests += 1
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=REQUEST_TIMEOUT)
                try:
                    connection.request("POST", "/sms", payload, headers)
                    response = connection.getresponse()
                    status, data = response.status, response.read()
                finally:
                    connection.close()
                self.tally.statuses[status] += 1
                if status == 200:
                    return twiml_text(data), time.monotonic() - began, began, failed
                self.tally.note(f"HTTP {status} to {body!r}: {data[:80]!r}")
            except (OSError, http.client.HTTPException):
                self.tally.connection_errors += 1
            failed = True
            if time.monotonic() - first > self.give_up:
                return None
            time.sleep(self.random.uniform(0.05, 0.25))

    def message(self, sender: Sender, kind: str, text: str, address: str, sid: str) -> None:
        self.tally.messages += 1
        result = self.post(sid, text, address)
        if result is None:
            self.tally.given_up += 1
            sender.last = None  # nothing to re-deliver: Twilio never had an answer
            if kind in ("out", "in"):
                sender.state = "unknown"  # it may or may not have been recorded
            return
        reply, seconds, began, failed = result
        self.tally.answered += 1
        self.tally.retried_messages += failed
        sender.sent += 1
        if kind == "out":
            sender.state = "out"
            self.tally.stops_acknowledged += 1
        elif kind == "in":
            sender.state = "in"
            self.tally.starts_acknowledged += 1
        elif kind == "crisis":
            self.tally.crisis += 1
            self.tally.crisis_attempts.append((began, seconds))
            self.tally.crisis_retried += failed
            if reply not in self.crisis_replies:
                self.tally.crisis_wrong += 1
                self.tally.note(f"crisis {text!r} answered {reply[:60]!r}")
        elif kind == "content":
            if reply:
                self.tally.content_replies += 1
            elif sender.state == "out":
                self.tally.withheld_to_opted_out += 1
        self.check_after_stop(sender, text, reply)
        sender.last = (sid, text, address, reply)
        self.latest = sender

    def again(self, sender: Sender) -> None:
        """Twilio re-delivers the request it just had an answer for: the same answer again
        (nothing changed since; the sender's last message)."""
        assert sender.last is not None
        sid, text, address, first = sender.last
        self.tally.messages += 1
        self.tally.resent += 1
        result = self.post(sid, text, address)
        if result is None:
            self.tally.given_up += 1
            sender.last = None
            return
        reply, _, _, failed = result
        self.tally.answered += 1
        self.tally.retried_messages += failed
        if reply != first:
            self.tally.duplicates += 1
            self.tally.note(f"re-delivered {text!r} (state {sender.state}) got {reply[:50]!r}, first {first[:50]!r}")
        self.check_after_stop(sender, text, reply)

    def check_after_stop(self, sender: Sender, text: str, reply: str) -> None:
        if sender.state == "out" and reply and reply not in self.allowed_after_stop:
            self.tally.content_after_stop += 1
            self.tally.note(f"content after an acknowledged opt-out: {text!r} answered {reply[:60]!r}")


# -- the run ------------------------------------------------------------------------------------


def expected_replies() -> tuple[frozenset[str], frozenset[str]]:
    """The bodies allowed after an opt-out (its confirmation, the crisis reply) and the crisis
    replies, from the catalog; and a check that every message in the mix is what it is meant
    to be under the bot's own rules."""
    catalog = Catalog.load()
    conversation = Conversation(catalog)
    expected = {"out": "stop", "in": "start", "crisis": "crisis"}
    for kind, text, _, _ in MIX:
        if kind == "again":
            continue
        reply, state = conversation.reply_to(text, SenderState(), time.time())
        topic = expected.get(kind)
        if topic is not None and reply.topic != topic:
            sys.exit(f"{text!r} is answered as {reply.topic}, not {topic}: the mix is wrong")
        if kind == "content" and (reply.topic in ("stop", "start", "crisis") or not reply.body):
            sys.exit(f"{text!r} is not a content question ({reply.topic})")
    crisis = frozenset(catalog.render("crisis", lang) for lang in catalog.languages)
    stop = frozenset(catalog.render("stop", lang) for lang in catalog.languages)
    return stop | crisis, crisis


def chaos(server: Server, stop: threading.Event, duration: float, server_kills: int, started: float,
          counts: Counter[str], downtimes: list[float], rng: random.Random) -> None:
    """A worker SIGKILLed every 1-3 s; the whole server SIGKILLed ``server_kills`` times, spread
    over the middle of the run, and started again."""
    slots = [duration * (0.2 + 0.6 * (i + rng.uniform(0.2, 0.8)) / server_kills) for i in range(server_kills)]
    while not stop.is_set():
        wait = rng.uniform(1.0, 3.0)
        if slots and time.monotonic() - started + wait >= slots[0]:
            if stop.wait(max(0.0, slots.pop(0) - (time.monotonic() - started))):
                return
            try:
                downtimes.append(server.kill_and_restart(pause=rng.uniform(0.2, 1.0)))
            except RuntimeError as error:  # reported by the "both server kills done" check
                print(f"restart failed: {error}", file=sys.stderr, flush=True)
                return
            counts["server kills"] += 1
            continue
        if stop.wait(wait):
            return
        if server.kill_worker():
            counts["worker kills"] += 1
        else:
            counts["worker kills skipped (none ready)"] += 1


def log_events(log: Path) -> tuple[Counter[str], float]:
    """What the server logged (events other than replies, HTTP statuses, worker boots,
    tracebacks), and the longest crisis reply as the bot itself timed it, in seconds."""
    counts: Counter[str] = Counter()
    crisis_ms = 0.0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                counts["unparsed JSON line"] += 1
                continue
            event = str(entry.get("event"))
            if event == "http":
                counts[f"http {entry.get('status')}"] += 1
            elif event == "reply":
                if entry.get("topic") == "crisis":
                    crisis_ms = max(crisis_ms, float(entry.get("latency_ms") or 0.0))
            else:
                counts[event] += 1
        elif "Traceback" in line:
            counts["traceback"] += 1
        elif "WORKER TIMEOUT" in line:
            counts["worker timeout"] += 1
        elif "Booting worker" in line:
            counts["worker boots"] += 1
    return counts, crisis_ms / 1000


def run(args: argparse.Namespace) -> dict[str, object]:
    allowed_after_stop, crisis_replies = expected_replies()
    admin_url = None
    if args.store == "postgres":
        admin_url = args.database_url or os.environ.get(URL_VARIABLE, "").strip()
        if not admin_url:
            sys.exit(f"--store postgres needs {URL_VARIABLE} (source .ci/postgres.sh) or --database-url")
    work = Path(tempfile.mkdtemp(prefix=f"mbcsms-crash-{args.store}-"))
    store = Store(args.store, work, admin_url)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MBCSMS_", "TWILIO_")) and key not in ("DATABASE_URL", "WEB_CONCURRENCY", "PORT")}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "MBCSMS_SECRET": SECRET,
        "MBCSMS_PROXY_HOPS": "0",  # called directly: no router in front
        "WEB_CONCURRENCY": str(args.workers),
        "PYTHONUNBUFFERED": "1",
    })
    run_id = uuid.uuid4().hex[:6]
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    downtimes: list[float] = []
    server: Server | None = None
    failed = True
    try:
        store.create()
        env.update(store.env())
        release = subprocess.run(["bash", "-c", procfile("release")], env=env, cwd=work,
                                 capture_output=True, text=True, timeout=60)
        if release.returncode != 0:
            sys.exit(f"release step failed: {release.stdout}{release.stderr}")
        server = Server(loopback_command(), env, free_port(), work)
        server.start()
        print(f"crash test: {args.store}, {args.duration:g} s, {args.clients} clients, {args.workers} workers, "
              f"port {server.port}, files in {work}", flush=True)

        numbers = [f"+1555010{i:04d}" for i in range(args.senders)]
        senders = [Sender(number) for number in numbers]
        stop_clients, stop_chaos = threading.Event(), threading.Event()
        clients = [
            Client(n, senders[n::args.clients], server, run_id, stop_clients, allowed_after_stop, crisis_replies,
                   args.give_up)
            for n in range(args.clients)
        ]
        started = time.monotonic()
        killer = threading.Thread(
            target=chaos, args=(server, stop_chaos, args.duration, args.server_kills, started, counts, downtimes, rng),
            name="chaos", daemon=True,
        )
        readiness = Readiness(server, stop_chaos)
        for client in clients:
            client.start()
        readiness.start()
        killer.start()
        while time.monotonic() - started < args.duration:
            time.sleep(0.2)
        stop_chaos.set()
        killer.join()  # a restart under way finishes first
        readiness.join()
        stop_clients.set()
        for client in clients:
            client.join(args.give_up + REQUEST_TIMEOUT + 5)
        elapsed = time.monotonic() - started
        stuck = sum(client.is_alive() for client in clients)

        # The end: a clean stop, a clean start (its /healthz writes what the local file kept),
        # and a clean stop again; then the store is read with nothing running.
        server.stop()
        server.start()
        deadline = time.monotonic() + 15
        while store.pending() and time.monotonic() < deadline:
            server.wait_healthy(15)
            time.sleep(0.2)
        server.stop()

        tally = Tally()
        for client in clients:
            tally.merge(client.tally)
        keys = {sender.number: sender_key(SECRET, sender.number) for sender in senders if sender.sent}
        stored = store.opted_out(list(keys.values()))
        lost = optin_lost = unknown = opted_out_senders = 0
        for sender in senders:
            if not sender.sent:
                continue
            flag = stored.get(keys[sender.number], False)
            if sender.state == "unknown":
                unknown += 1
            elif sender.state == "out":
                opted_out_senders += 1
                if not flag:
                    lost += 1
                    tally.note(f"lost: {sender.number} acknowledged as opted out, store says not")
            elif flag:
                optin_lost += 1
                tally.note(f"opt-in lost (or a phantom opt-out): {sender.number} store says opted out")
        integrity = store.integrity()
        pending = store.pending()
        events, crisis_in_bot = log_events(server.log)
        # A crisis that met a moment with no worker ready waited for one to boot: reported apart.
        crisis_all = sorted(seconds for _, seconds in tally.crisis_attempts)
        crisis_served = [seconds for began, seconds in tally.crisis_attempts
                         if not readiness.overlaps(began, began + seconds)]
        crisis_waited = [seconds for began, seconds in tally.crisis_attempts
                         if readiness.overlaps(began, began + seconds)]
        crisis_max = max(crisis_served, default=0.0)
        no_worker = sum(end - start for start, end in readiness.windows)
        fivexx = sum(count for status, count in tally.statuses.items() if status >= 500)
        other_status = sum(count for status, count in tally.statuses.items() if status not in (200,) and status < 500)
        checks = {
            "no acknowledged opt-out lost": lost == 0,
            "no acknowledged opt-in lost": optin_lost == 0,
            "nothing pending in the local file": pending == 0,
            "no content after an acknowledged opt-out": tally.content_after_stop == 0,
            "no duplicate reply to a re-delivery": tally.duplicates == 0,
            "no 5xx": fivexx == 0,
            "no other non-200": other_status == 0,
            f"crisis replies under {CRISIS_LIMIT:g} s (with a worker up; and in the bot)":
                crisis_max < CRISIS_LIMIT and crisis_in_bot < CRISIS_LIMIT and tally.crisis_wrong == 0,
            "integrity ok": all(value in ("ok", "absent") for value in integrity.values()),
            "both server kills done": counts["server kills"] == args.server_kills,
            "every client finished": stuck == 0,
        }
        failed = not all(checks.values())
        result = {
            "store": args.store, "duration_s": args.duration, "elapsed_s": round(elapsed, 1),
            "clients": args.clients, "workers": args.workers, "senders": args.senders, "seed": args.seed,
            "senders_who_wrote": len(keys),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
            "requests": tally.requests, "messages": tally.messages, "answered": tally.answered,
            "stops_acknowledged": tally.stops_acknowledged, "starts_acknowledged": tally.starts_acknowledged,
            "senders_opted_out_at_end": opted_out_senders, "senders_unknown": unknown,
            "lost": lost, "optin_lost": optin_lost, "pending_after_clean_start": pending,
            "content_replies": tally.content_replies, "withheld_to_opted_out": tally.withheld_to_opted_out,
            "content_after_stop": tally.content_after_stop,
            "resent": tally.resent, "duplicates": tally.duplicates,
            "status_5xx": fivexx, "status_other_non_200": other_status,
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "connection_errors": tally.connection_errors, "messages_retried": tally.retried_messages,
            "messages_given_up": tally.given_up,
            "crisis": tally.crisis, "crisis_wrong": tally.crisis_wrong,
            "crisis_max_s": round(crisis_max, 3),
            "crisis_p50_s": round(crisis_all[len(crisis_all) // 2], 3) if crisis_all else None,
            "crisis_max_in_bot_s": round(crisis_in_bot, 3),
            "crisis_retried": tally.crisis_retried,
            "crisis_waited_for_a_worker": len(crisis_waited),
            "crisis_max_waited_for_a_worker_s": round(max(crisis_waited, default=0.0), 3),
            "no_worker_ready_s": round(no_worker, 1), "no_worker_ready_windows": len(readiness.windows),
            "worker_kills": counts["worker kills"], "server_kills": counts["server kills"],
            "worker_kills_skipped": counts["worker kills skipped (none ready)"],
            "server_down_s": [round(d, 2) for d in downtimes],
            "integrity": integrity, "server_log": dict(sorted(events.items())),
            "checks": checks, "passed": not failed, "examples": tally.examples, "work": str(work),
        }
        return result
    finally:
        if server is not None:
            server.stop()
        try:
            store.drop()
        except Exception as error:  # noqa: BLE001 - report, but never hide the run's outcome
            print(f"could not drop the test database {store.database}: {error}", file=sys.stderr)
        if not failed and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} vCPU {cpu}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"load average {load:.1f} at the end")


def report(result: dict[str, object]) -> None:
    rows = [
        ("requests (HTTP attempts)", result["requests"]),
        ("acknowledged STOPs", result["stops_acknowledged"]),
        ("lost", result["lost"]),
        ("content-after-stop", result["content_after_stop"]),
        ("5xx", result["status_5xx"]),
        ("max crisis latency", f"{result['crisis_max_s']:.3f} s ({result['crisis']} crisis messages)"),
        ("worker kills", result["worker_kills"]),
        ("server kills", result["server_kills"]),
    ]
    print()
    print(f"| {result['store']} ({result['duration_s']:g} s, {result['clients']} clients) | |")
    print("|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print()
    print(f"senders who wrote {result['senders_who_wrote']} of {result['senders']}; "
          f"messages {result['messages']}, answered {result['answered']}, connection errors "
          f"{result['connection_errors']}, retried {result['messages_retried']}, "
          f"given up {result['messages_given_up']}; "
          f"statuses {result['statuses']}")
    print(f"acknowledged opt-ins {result['starts_acknowledged']}; senders opted out at the end "
          f"{result['senders_opted_out_at_end']}, state unknown {result['senders_unknown']}; opt-ins lost "
          f"{result['optin_lost']}; pending in the local file after a clean start "
          f"{result['pending_after_clean_start']}")
    print(f"content replies {result['content_replies']}, questions from opted-out senders answered with nothing "
          f"{result['withheld_to_opted_out']}; re-deliveries {result['resent']}, answered differently "
          f"{result['duplicates']}")
    print(f"crisis p50 {result['crisis_p50_s']} s, max in the bot (its own log) {result['crisis_max_in_bot_s']} s; "
          f"{result['crisis_waited_for_a_worker']} met a moment with no worker ready (max "
          f"{result['crisis_max_waited_for_a_worker_s']} s, not in the max above); {result['crisis_retried']} "
          f"retried; wrong reply {result['crisis_wrong']}")
    print(f"no worker ready (booting after a kill, or the server restarting): {result['no_worker_ready_s']} s in "
          f"{result['no_worker_ready_windows']} windows; worker kills skipped (none ready) "
          f"{result['worker_kills_skipped']}")
    print(f"server down after each kill: {result['server_down_s']} s; integrity {result['integrity']}")
    print(f"server log: {result['server_log']}")
    for example in result["examples"]:  # type: ignore[union-attr]
        print(f"  example: {example}")
    for name, ok in result["checks"].items():  # type: ignore[union-attr]
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    print("PASSED" if result["passed"] else f"FAILED (files kept in {result['work']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (default 2, the Procfile's)")
    parser.add_argument("--senders", type=int, default=2_000,
                        help="distinct senders, at most 10,000 (default 2,000: a few messages each, mostly "
                             "within the rate limit of 20 replies in 10 minutes)")
    parser.add_argument("--server-kills", type=int, default=2, help="whole-server kills (default 2)")
    parser.add_argument("--give-up", type=float, default=30.0,
                        help="seconds a client keeps re-sending one unanswered message (default 30)")
    parser.add_argument("--database-url", help=f"PostgreSQL server to create the run's database on "
                                               f"(default ${URL_VARIABLE})")
    parser.add_argument("--seed", type=int, default=None, help="seed of the killer's schedule")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the run's files (kept anyway on failure)")
    args = parser.parse_args()
    if not 1 <= args.senders <= 10_000:
        parser.error("--senders: 1 to 10000 (+1555010xxxx)")
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients and --duration must be positive")
    result = run(args)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()

"""The least the webhook's required work can cost: each step done the plainest way, nothing else.

Not the bot. A measuring stick for ``bench/load.py --floor STEPS``: the bare app (read the form,
answer one static TwiML) plus only the steps named in ``FLOOR_STEPS`` (comma-separated):

- ``signature``: Twilio's HMAC over the URL and form, 403 if it is wrong, and the keyed hashes
  of sender and MessageSid that the state is filed under;
- ``understand``: the real understander on the real catalog;
- ``store``: one SQLite write transaction per message (WAL, synchronous NORMAL): read the
  sender, look the MessageSid up, upsert the sender, record the MessageSid, commit;
- ``log``: one JSON line on stdout.

If even this cannot reach a throughput target, no amount of tuning the bot's own code will.
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import sys
import time
import urllib.parse

from flask import Flask, Response, request
from twilio.request_validator import RequestValidator

from mbcsms.catalog import Catalog
from mbcsms.senders import message_key, sender_key
from mbcsms.understanding import Understander

STEPS = frozenset(step for step in os.environ.get("FLOOR_STEPS", "").split(",") if step)
UNKNOWN = STEPS - {"signature", "understand", "store", "log"}
if UNKNOWN:
    sys.exit(f"FLOOR_STEPS: unknown steps {sorted(UNKNOWN)}")

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
    "Thank you for your message. Reply with a number for a topic.</Message></Response>"
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS senders (sender TEXT PRIMARY KEY, lang TEXT, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS answered (message TEXT PRIMARY KEY, topic TEXT NOT NULL, answered_at REAL NOT NULL);
"""

validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
secret = os.environ["MBCSMS_SECRET"]
understander = Understander(Catalog.load()) if "understand" in STEPS else None
database = None
if "store" in STEPS:
    # Beside the bot's own file, never the same one, and one file for each set of steps.
    path = f"{os.environ['MBCSMS_DB']}.floor-{'-'.join(sorted(STEPS))}"
    database = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    database.execute("PRAGMA busy_timeout = 5000")
    database.execute("PRAGMA journal_mode = WAL")
    database.execute("PRAGMA synchronous = NORMAL")
    database.execute("BEGIN IMMEDIATE")  # one worker creates the tables, the other waits
    for statement in filter(str.strip, SCHEMA.split(";")):
        database.execute(statement)
    database.execute("COMMIT")
    # Short retries of our own, as the bot's store does: SQLite's busy handler sleeps whole ms.
    database.execute("PRAGMA busy_timeout = 0")

app = Flask(__name__)


def begin_immediate(connection: sqlite3.Connection) -> None:
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError:
            time.sleep(0.0001)


def record(sender: str, message: str, topic: str) -> None:
    assert database is not None
    begin_immediate(database)
    database.execute("SELECT lang, count FROM senders WHERE sender = ?", (sender,)).fetchone()
    database.execute("SELECT topic FROM answered WHERE message = ?", (message,)).fetchone()
    database.execute(
        "INSERT INTO senders VALUES (?, 'en', 1) ON CONFLICT (sender) DO UPDATE SET count = count + 1",
        (sender,),
    )
    database.execute(  # a repeated MessageSid (a round that outran its bodies) is no error
        "INSERT INTO answered VALUES (?, ?, ?) ON CONFLICT (message) DO NOTHING", (message, topic, time.time())
    )
    database.execute("COMMIT")


@app.post("/sms")
def sms() -> Response:
    form = dict(urllib.parse.parse_qsl(request.get_data(as_text=True)))
    sender, message, topic = "", "", "none"
    if "signature" in STEPS:
        computed = validator.compute_signature(request.base_url, form)
        if not hmac.compare_digest(computed.encode(), request.headers.get("X-Twilio-Signature", "").encode()):
            return Response("Forbidden\n", status=403)
        sender = sender_key(secret, form.get("From", ""))
        message = message_key(secret, form.get("MessageSid", ""), sender, form.get("Body", ""))
    if understander is not None:
        topic = understander.understand(form.get("Body", "")).topic or "none"
    if database is not None:
        record(sender or form.get("From", ""), message or form.get("MessageSid", ""), topic)
    if "log" in STEPS:
        sys.stdout.write(json.dumps({"event": "reply", "topic": topic, "sender": sender[:10]}) + "\n")
        sys.stdout.flush()
    return Response(TWIML, status=200, content_type="text/xml; charset=utf-8")

"""What the bot remembers, through the signed webhook and a real SQLite file."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mbcsms import create_app
from mbcsms.bot import Bot, Inbound, OptOutNotRecorded
from mbcsms.conversation import Conversation
from mbcsms.store.sqlite import SQLiteStore
from tests.helpers import HELPLINE, PATIENT, SECRET, app_env, new_sid, post_signed
from tests.twiml import messages, one_message

SPANISH_HER2 = "HER2 positivo"
ENGLISH_HER2 = "HER2-positive"


def test_language_choice_is_remembered(send):
    assert "español" in one_message(send("ESPAÑOL"))
    assert SPANISH_HER2 in one_message(send("HER2"))
    assert "English" in one_message(send("ENGLISH"))
    assert ENGLISH_HER2 in one_message(send("HER2"))


def test_language_choice_survives_a_restart(tmp_path):
    first = create_app(app_env(tmp_path)).test_client()
    one_message(post_signed(first, "ESPANOL"))
    second = create_app(app_env(tmp_path)).test_client()
    assert SPANISH_HER2 in one_message(post_signed(second, "HER2"))


def test_opt_out_holds_until_opt_in(send):
    assert messages(send("STOP")) == []
    assert messages(send("HER2")) == []
    assert messages(send("hello")) == []
    assert "Welcome back" in one_message(send("START"))
    assert ENGLISH_HER2 in one_message(send("HER2"))


def test_spanish_opt_out_is_confirmed_and_spanish_opt_in_works(send):
    assert "ALTA" in one_message(send("PARAR"))
    assert messages(send("HER2")) == []
    assert "1 " in one_message(send("ALTA"))


def test_opt_out_survives_a_restart(tmp_path):
    first = create_app(app_env(tmp_path)).test_client()
    assert messages(post_signed(first, "STOP")) == []
    restarted = create_app(app_env(tmp_path)).test_client()
    assert messages(post_signed(restarted, "HER2")) == []


def test_two_instances_on_one_file_honour_each_others_opt_outs(tmp_path):
    a = create_app(app_env(tmp_path)).test_client()
    b = create_app(app_env(tmp_path)).test_client()
    assert messages(post_signed(a, "STOP")) == []
    assert messages(post_signed(b, "HER2")) == []
    one_message(post_signed(b, "START"))
    assert ENGLISH_HER2 in one_message(post_signed(a, "HER2"))


def test_opt_out_is_per_number_across_sms_and_whatsapp(send):
    assert messages(send("STOP", sender="+1 (555) 010-0001")) == []
    assert messages(send("HER2", sender=f"whatsapp:{PATIENT}")) == []
    assert ENGLISH_HER2 in one_message(send("HER2", sender="+15550100002"))


def test_retried_message_gets_the_same_reply_and_changes_nothing_twice(tmp_path):
    client = create_app(app_env(tmp_path, MBCSMS_RATE_LIMIT="2")).test_client()
    sid = new_sid()
    first = one_message(post_signed(client, "HER2", sid=sid))
    assert one_message(post_signed(client, "HER2", sid=sid)) == first  # not counted again
    assert one_message(post_signed(client, "HER2")) == first  # the 2nd reply of the window
    assert "many messages" in one_message(post_signed(client, "HER2"))
    # A retried STOP after START must not opt the sender out again (another sender: this one
    # is past its rate limit).
    other = "+15550100002"
    stop_sid = new_sid()
    assert messages(post_signed(client, "STOP", sender=other, sid=stop_sid)) == []
    assert "Welcome" in one_message(post_signed(client, "START", sender=other))
    assert messages(post_signed(client, "STOP", sender=other, sid=stop_sid)) == []
    assert messages(post_signed(client, "HER2", sender=other)) != []


def test_a_reused_message_sid_is_a_retry_only_from_the_same_sender_with_the_same_body(send):
    # Twilio never reuses a MessageSid; a client that does must not lose a STOP to the dedupe.
    assert one_message(send("hello", sender="+15550700001", sid="SMfixed"))
    assert messages(send("STOP", sender="+15550700002", sid="SMfixed")) == []
    assert messages(send("what is her2", sender="+15550700002")) == []  # B's STOP was recorded
    assert messages(send("STOP", sender="+15550700001", sid="SMfixed")) == []
    assert messages(send("what is her2", sender="+15550700001")) == []  # and so was A's
    # The same sid, sender and body is a retry: the same reply again, nothing counted twice.
    first = one_message(send("what is her2", sender="+15550700003", sid="SMretry"))
    assert one_message(send("what is her2", sender="+15550700003", sid="SMretry")) == first


def test_rate_limit_through_the_webhook(tmp_path):
    client = create_app(app_env(tmp_path, MBCSMS_RATE_LIMIT="3")).test_client()
    bodies = [messages(post_signed(client, "HER2")) for _ in range(6)]
    assert [len(b) for b in bodies] == [1, 1, 1, 1, 0, 0]
    assert HELPLINE in bodies[3][0]
    assert "988" in one_message(post_signed(client, "suicide"))
    assert [len(messages(post_signed(client, "HER2", sender="+15550100099")))] == [1]


def test_numbered_menu_through_the_webhook(send):
    assert "8 HER2-positive" in one_message(send("MENU"))
    assert ENGLISH_HER2 in one_message(send("8"))
    one_message(send("ESPAÑOL"))
    menu = one_message(send("menu"))
    assert "8 HER2 positivo" in menu
    assert SPANISH_HER2 in one_message(send("8"))


def test_no_phone_number_or_message_body_is_stored_or_logged(tmp_path, capsys):
    numbers = ["+15550104321", "whatsapp:+15550108765", "+34 600 123 987"]
    body = "my oncologist Dr Zebulon said it reached my liver"
    client = create_app(app_env(tmp_path)).test_client()
    for number in numbers:
        for text in [body, "STOP", "START", "ESPAÑOL", "HER2"]:
            post_signed(client, text, sender=number)
    database = b"".join(path.read_bytes() for path in tmp_path.glob("state.db*"))
    captured = capsys.readouterr()
    logged = captured.out + captured.err
    assert "reply" in logged  # something was logged, so the scan means something
    for number in numbers:
        digits = "".join(ch for ch in number if ch.isdigit())
        for form in {number, digits, digits[-10:], "+" + digits}:
            assert form.encode() not in database, form
            assert form not in logged, form
    assert b"Zebulon" not in database and "Zebulon" not in logged


def _bot(path, timeout_ms: int = 5000) -> Bot:
    from mbcsms import logs
    from mbcsms.catalog import Catalog

    logs.configure()
    return Bot(Conversation(Catalog.load()), SQLiteStore(path, busy_timeout_ms=timeout_ms), SECRET,
               timeout=timeout_ms / 1000)


@pytest.mark.parametrize("damage", ["corrupt", "missing_directory", "locked"])
def test_store_failure_never_drops_an_opt_out_nor_sends_content_it_cannot_vouch_for(tmp_path, damage, capsys):
    # Issue 14 changed the rule: content goes out only when the sender's flag can be read (the
    # lock case: WAL readers are not blocked); an opt-out is kept on local disk, or refused.
    from mbcsms.store.local import LocalState

    path = tmp_path / "state.db"
    blocker = None
    if damage == "corrupt":
        path.write_bytes(b"this is not a database" * 200)
    elif damage == "missing_directory":
        path = tmp_path / "no-such-dir" / "state.db"
    else:
        _bot(path).answer(Inbound(PATIENT, "hola", new_sid()))  # the file exists, the flag is clear
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
    bot = _bot(path, timeout_ms=50)
    bot.local = LocalState(tmp_path / "local.db")
    answer = bot.answer(Inbound(PATIENT, "que es her2", new_sid()))
    if damage == "locked":
        assert answer.topic == "her2" and answer.lang == "es" and answer.body
    else:
        assert answer.body is None and answer.topic == "withheld"
    assert bot.answer(Inbound(PATIENT, "PARAR", new_sid())).topic == "stop"
    assert bot.answer(Inbound(PATIENT, "HER2", new_sid())).body is None  # honoured at once
    logged = capsys.readouterr().out
    assert "store_breaker_opened" in logged and "opt_change_kept_locally" in logged
    if blocker is not None:
        blocker.execute("ROLLBACK")
        # Once the lock is gone (and the breaker's pause is over) the opt-out is in the store.
        time.sleep(5.1)
        assert bot.health() is None
        with sqlite3.connect(path) as connection:
            assert connection.execute("SELECT opted_out FROM senders").fetchall() == [(1,)]
        assert bot.answer(Inbound(PATIENT, "HER2", new_sid())).body is None
    else:
        bot.local = None  # 503 only when even the local file cannot keep it
        with pytest.raises(OptOutNotRecorded):
            bot.answer(Inbound("+15550100077", "STOP", new_sid()))


def test_store_failure_through_the_webhook(tmp_path):
    (tmp_path / "state.db").write_bytes(b"garbage" * 1000)
    client = create_app(app_env(tmp_path)).test_client()
    assert messages(post_signed(client, "HER2")) == []  # the flag cannot be read: no content
    assert "ALTA" in one_message(post_signed(client, "PARAR"))  # kept in state.db-local
    assert client.get("/healthz").status_code == 503


def test_concurrent_senders_on_one_file_lose_no_opt_out(tmp_path):
    bots = [_bot(tmp_path / "state.db") for _ in range(3)]
    senders = [f"+1555011{n:04d}" for n in range(30)]

    def opt_out(index: int) -> None:
        bot = bots[index % len(bots)]
        bot.answer(Inbound(senders[index], "HER2", new_sid()))
        bot.answer(Inbound(senders[index], "STOP", new_sid()))

    threads = [threading.Thread(target=opt_out, args=(i,)) for i in range(len(senders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(bots[0].answer(Inbound(s, "HER2", new_sid())).body is None for s in senders)


def test_a_retry_after_an_opt_out_sends_no_content(send):
    sid = new_sid()
    assert ENGLISH_HER2 in one_message(send("what is her2", sid=sid))
    assert "ALTA" in one_message(send("PARAR"))
    assert messages(send("what is her2", sid=sid)) == []  # Twilio's retry of the first message

"""Issue 12's small talk and feelings end to end: what the understanding reads in a message
(thanks, ok, bye, "are you a real person?", fear and loneliness, an emoji alone) and the reply
the conversation gives it, through the signed webhook, the Procfile's server and `mbcsms reply`,
in English and in Spanish."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mbcsms.catalog import Catalog
from mbcsms.cli import main
from tests.helpers import HELPLINE
from tests.procfile_servers import send as send_over_http
from tests.procfile_servers import server_env, start, stop, wait_until_up
from tests.twiml import messages, one_message

# (message, the reply's first message comes from this catalog entry, its language)
SMALL_TALK = [
    ("thanks", "thanks", "en"),
    ("Thank you so much ❤️", "thanks", "en"),
    ("gracias", "thanks", "es"),
    ("muchas gracias 🙏", "thanks", "es"),
    ("👍", "thanks", None),
    ("ok", "ack", "en"),
    ("bye", "goodbye", "en"),
    ("adios, buenas noches", "goodbye", "es"),
    ("are you a real person?", "human_check", "en"),
    ("eres una persona real?", "human_check", "es"),
]

FEELINGS = [
    ("im scared", "en"),
    ("I need someone who understands", "en"),
    ("me siento muy sola", "es"),
    ("😢", None),
    ("💔", None),
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def first_line(catalog: Catalog, topic: str, lang: str) -> str:
    return catalog.render(topic, lang, None).split("{hours}")[0]


@pytest.mark.parametrize(("text", "topic", "lang"), SMALL_TALK)
def test_small_talk_gets_a_short_warm_reply_never_the_fallback(send, catalog, text, topic, lang):
    body = one_message(send(text))
    replies = {catalog.render(topic, code, None) for code in (("en", "es") if lang is None else (lang,))}
    assert body in replies
    assert body not in {catalog.render("fallback", code, None) for code in ("en", "es")}
    assert "911" not in body


@pytest.mark.parametrize(("text", "lang"), FEELINGS)
def test_feelings_get_a_kind_line_then_support_and_the_helpline(send, catalog, text, lang):
    sent = messages(send(text))
    whole = "\n".join(sent)
    langs = ("en", "es") if lang is None else (lang,)
    assert any(whole.startswith(catalog.render("feelings", code, None)) for code in langs)
    assert any(first_line(catalog, "support", code)[:60] in whole for code in langs)
    assert HELPLINE in whole  # the helpline reply: while it is open it says so, else it gives urgent numbers
    assert any(catalog.hours_line(code, "open") in whole for code in langs) or "911" in whole
    assert not whole.startswith(catalog.render("crisis", "en", None)[:30])


@pytest.mark.parametrize("text", ["im scared of dying", "tengo miedo de morir", "I'm so afraid, I don't want to die"])
def test_fear_is_not_a_crisis(send, catalog, text):
    body = "\n".join(messages(send(text)))
    assert "call 911 now" not in body and "llame al 911 ahora" not in body


def test_a_survival_question_asked_in_fear_gets_a_kind_line_then_the_facts(send, catalog):
    body = one_message(send("im scared, how long do people live with this"))
    assert body.startswith(catalog.render("feelings_question", "en", None))
    assert catalog.render("survival", "en", None) in body


def test_hola_and_hi_stay_the_menu(send, catalog):
    assert one_message(send("hi")) == catalog.render("menu", "en", None)
    assert one_message(send("hola")) == catalog.render("menu", "es", None)


def test_small_talk_counts_toward_the_rate_limit(tmp_path):
    from mbcsms import create_app
    from tests.helpers import app_env, post_signed

    client = create_app(app_env(tmp_path, MBCSMS_RATE_LIMIT="2")).test_client()
    answered = [messages(post_signed(client, "thanks")) for _ in range(4)]
    assert answered[0] and answered[1]  # within the limit
    assert HELPLINE in answered[2][0]  # the one notice
    assert answered[3] == []  # then silence


@pytest.mark.parametrize(("text", "topic", "lang"), [("thanks", "thanks", "en"), ("gracias", "thanks", "es")])
def test_mbcsms_reply_answers_small_talk(catalog, text, topic, lang):
    result = CliRunner().invoke(main, ["reply", text])
    assert result.exit_code == 0
    assert result.output.strip() == catalog.render(topic, lang, None).replace("\n", " / ")


def test_small_talk_through_the_procfile_server(tmp_path: Path, catalog) -> None:
    env = server_env(tmp_path, MBCSMS_DB=str(tmp_path / "state.db"), DATABASE_URL="", WEB_CONCURRENCY="2")
    server = start(tmp_path, "small-talk", env)
    try:
        wait_until_up(server)
        assert catalog.render("thanks", "en", None) in send_over_http(server, "thank you!", "+15550107021")
        assert catalog.render("thanks", "es", None) in send_over_http(server, "gracias", "+15550107022")
        feelings = send_over_http(server, "me siento muy sola", "+15550107023")
        assert catalog.render("feelings", "es", None) in feelings and HELPLINE in feelings
    finally:
        stop(server)

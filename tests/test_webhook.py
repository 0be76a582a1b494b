"""POST /sms through the Flask test client with requests signed the way Twilio signs them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from mbcsms import create_app
from mbcsms.helpline_hours import hours_key
from tests.helpers import AUTH_TOKEN, HELPLINE, PATIENT, PUBLIC_URL, app_env, new_sid, post_signed, sign
from tests.twiml import messages, one_message


def test_signed_request_behind_a_tls_ending_proxy_is_answered(send):
    response = send("kadcyla")
    assert response.headers["Content-Type"].startswith("text/xml")
    assert "trastuzumab" in one_message(response)


def test_twiml_is_built_by_the_twilio_package(send):
    body = send("HER2").get_data(as_text=True)
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')


def test_spanish_reply_comes_back_intact(send):
    assert "HER2 positivo" in one_message(send("que es her2 positivo"))


def test_missing_signature_is_forbidden(client):
    response = client.post("/sms", data={"From": "+15550100001", "Body": "HER2"},
                           base_url="https://bot.example.org")
    assert response.status_code == 403
    assert b"<Message>" not in response.data


def test_wrong_token_is_forbidden(client):
    assert post_signed(client, "HER2", token="not-the-token").status_code == 403


def test_tampered_body_is_forbidden(client):
    form = {"From": "+15550100001", "Body": "HER2", "MessageSid": new_sid()}
    signature = sign(PUBLIC_URL, form)
    form["Body"] = "STOP"
    response = client.post("/sms", data=form, base_url="http://bot.example.org",
                           headers={"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https"})
    assert response.status_code == 403


def test_signature_for_another_url_is_forbidden(client):
    form = {"From": "+15550100001", "Body": "HER2", "MessageSid": new_sid()}
    response = client.post("/sms", data=form, base_url="http://bot.example.org",
                           headers={"X-Twilio-Signature": sign("https://evil.example.org/sms", form),
                                    "X-Forwarded-Proto": "https"})
    assert response.status_code == 403


@pytest.mark.parametrize("query", ["next=%2F", "a=1&b=%C3%A9", "next=https%3A%2F%2Fx", "a=%7E", "a=%20b+c", "é=1"])
def test_a_webhook_url_with_escapes_in_its_query_is_checked_as_signed(client, query):
    # Twilio signs the URL exactly as configured; request.url would decode "%2F" to "/".
    form = {"From": "+15550100001", "Body": "HER2", "MessageSid": new_sid()}
    headers = {"X-Twilio-Signature": sign(f"{PUBLIC_URL}?{query}", form), "X-Forwarded-Proto": "https"}
    response = client.post(f"/sms?{query}", data=form, base_url="http://bot.example.org", headers=headers)
    assert response.status_code == 200 and b"HER2" in response.data
    # ...and the query is signed too: another one is refused.
    response = client.post("/sms?next=%2Fevil", data=form, base_url="http://bot.example.org", headers=headers)
    assert response.status_code == 403


def test_without_trusted_proxy_the_https_signature_does_not_match(tmp_path):
    client = create_app(app_env(tmp_path, MBCSMS_PROXY_HOPS="0")).test_client()
    assert post_signed(client, "HER2").status_code == 403
    assert post_signed(client, "HER2", url="http://bot.example.org/sms").status_code == 200


def test_hmac_sha256_signature_settings_are_honoured(client):
    from twilio.request_validator import RequestValidator

    form = {"From": "+15550100001", "Body": "HER2", "MessageSid": new_sid()}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL, form, "HMAC_SHA256")
    headers = {"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https",
               "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_SHA256"}
    ok = client.post("/sms", data=form, base_url="http://bot.example.org", headers=headers)
    assert ok.status_code == 200
    headers["X-Twilio-Webhooks-Signature-Settings"] = ""
    assert client.post("/sms", data=form, base_url="http://bot.example.org", headers=headers).status_code == 403


def test_stop_answers_an_empty_response(send):
    assert messages(send("STOP")) == []


def test_healthz(client):
    assert client.get("/healthz").status_code == 200


def test_healthz_names_the_store_but_not_its_path(tmp_path):
    (tmp_path / "state.db").write_bytes(b"garbage" * 1000)
    response = create_app(app_env(tmp_path)).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_data(as_text=True).strip() == "store unavailable: sqlite (breaker open)"


def test_an_oversized_request_is_refused_before_it_is_read(client):
    unsigned = client.post("/sms", data={"Body": "x" * (300 * 1024)}, base_url="https://bot.example.org")
    assert unsigned.status_code == 403  # no signature header: refused before the body is read
    forged = client.post("/sms", data={"Body": "x" * (300 * 1024)}, base_url="https://bot.example.org",
                         headers={"X-Twilio-Signature": "forged"})
    assert forged.status_code == 413  # checking the signature needs the form: too big to read


def test_livez_answers_while_the_sqlite_store_cannot_open(tmp_path):
    # MBCSMS_DB is a directory: SQLite cannot open it. Liveness never touches the store.
    client = create_app(app_env(tmp_path, MBCSMS_DB=str(tmp_path))).test_client()
    assert client.get("/livez").status_code == 200
    assert client.get("/healthz").status_code == 503
    assert client.get("/livez").get_data(as_text=True) == "ok\n"


def test_livez_answers_while_postgresql_is_down(tmp_path):
    from tests.pg_server import free_port

    down = f"postgresql://postgres@127.0.0.1:{free_port()}/mbcsms"  # nothing listens there
    client = create_app(app_env(tmp_path, DATABASE_URL=down, MBCSMS_LOCAL_STATE=str(tmp_path / "l.db"))).test_client()
    assert client.get("/livez").status_code == 200
    assert client.get("/healthz").status_code == 503
    assert client.get("/livez").status_code == 200


# --- issue 12, through the signed webhook --------------------------------------------------

WHATSAPP_PATIENT = "whatsapp:" + PATIENT


def spanish(send, sender: str = PATIENT) -> None:
    assert "español" in one_message(send("ESPAÑOL", sender=sender))


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_picture_with_no_text_gets_the_media_line(send, catalog, lang):
    if lang == "es":
        spanish(send)
    picture = {"NumMedia": "1", "MediaContentType0": "image/jpeg"}
    assert one_message(send("", extra=picture)) == catalog.render("media", lang)
    assert one_message(send(None, extra={"NumMedia": "2"})) == catalog.render("media", lang)
    # With text, the text is answered.
    assert "HER2" in one_message(send("que es her2" if lang == "es" else "what is her2", extra={"NumMedia": "1"}))
    # A broken NumMedia counts as none: an empty message gets the menu.
    assert one_message(send("", extra={"NumMedia": "many"})) == catalog.render("menu", lang)


@pytest.mark.parametrize(("stop", "lang"), [("STOP", "en"), ("PARAR", "es")])
def test_a_picture_from_an_opted_out_sender_gets_nothing(send, stop, lang):
    send(stop)
    assert messages(send("", extra={"NumMedia": "1"})) == []
    assert messages(send("", sender=WHATSAPP_PATIENT, extra={"NumMedia": "1"})) == []


@pytest.mark.parametrize(("stop", "lang"), [("STOP", "en"), ("PARAR", "es")])
def test_a_whatsapp_stop_is_confirmed_and_later_content_withheld_on_both_channels(send, catalog, stop, lang):
    assert one_message(send(stop, sender=WHATSAPP_PATIENT)) == catalog.render("stop", lang)
    assert messages(send(stop, sender=WHATSAPP_PATIENT)) == []  # confirmed once
    for sender in (WHATSAPP_PATIENT, PATIENT):
        assert messages(send("HER2", sender=sender)) == []
        assert messages(send("MENU", sender=sender)) == []
    # An SMS STOP stays Twilio's to confirm.
    assert messages(send("STOP", sender="+15550100002")) == []


@pytest.mark.parametrize(("start", "stop", "lang"), [("START", "STOP", "en"), ("ALTA", "PARAR", "es")])
def test_first_welcome_then_welcome_back_only_after_an_opt_out(send, catalog, start, stop, lang):
    assert one_message(send(start)) == catalog.render("welcome", lang)
    send(stop)
    assert one_message(send(start)) == catalog.render("start", lang)  # welcome back, with the menu


def test_a_retry_of_a_first_welcome_is_the_same_welcome(send, catalog):
    sid = new_sid()
    first = one_message(send("START", sid=sid))
    assert first == one_message(send("START", sid=sid)) == catalog.render("welcome", "en")


@pytest.mark.parametrize(("text", "lang"), [("can you refill my prescription", "en"), ("donde puedo estacionar", "es")])
def test_the_fallback_says_whether_the_helpline_is_open_now(send, catalog, text, lang):
    before = catalog.hours_line(lang, hours_key(datetime.now(UTC)))
    body = one_message(send(text))
    after = catalog.hours_line(lang, hours_key(datetime.now(UTC)))
    assert before in body or after in body
    assert "{" not in body and HELPLINE in body


@pytest.mark.parametrize("lang", ["en", "es"])
def test_the_helpline_answer_says_whether_it_is_open_now_and_a_retry_says_the_same(send, catalog, lang):
    sid = new_sid()
    before = catalog.hours_line(lang, hours_key(datetime.now(UTC)))
    body = one_message(send("linea de ayuda" if lang == "es" else "helpline", sid=sid))
    after = catalog.hours_line(lang, hours_key(datetime.now(UTC)))
    assert before in body or after in body
    assert one_message(send("linea de ayuda" if lang == "es" else "helpline", sid=sid)) == body


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_reply_of_several_messages_is_several_message_elements_in_order(app, catalog, lang):
    from mbcsms.conversation import SenderState
    from mbcsms.understanding import Understanding, Understood
    from mbcsms.webhook import twiml

    conversation = app.extensions["mbcsms"].conversation
    reply, _ = conversation.respond(Understanding(Understood.TOPIC, "feelings", lang), SenderState(), 1.8e9)
    with app.test_request_context():
        response = twiml(reply)
    root = ET.fromstring(response.get_data())
    assert [element.text for element in root.iter("Message")] == list(reply.messages)
    assert "\n".join(reply.messages).startswith(catalog.render("feelings", lang))
    assert len(reply.messages) == (1 if lang == "en" else 3)

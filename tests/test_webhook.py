"""POST /sms through the Flask test client with requests signed the way Twilio signs them."""

from __future__ import annotations

import pytest

from mbcsms import create_app
from tests.helpers import AUTH_TOKEN, PUBLIC_URL, app_env, new_sid, post_signed, sign
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

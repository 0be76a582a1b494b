"""Hard to break: whatever reaches POST /sms, the bot answers valid TwiML or refuses cleanly.

Fuzzed and odd requests through the signed webhook, a flood from one sender, several gunicorn
workers on one SQLite file, forged signatures, and a scan of everything logged for phone numbers.
"""

from __future__ import annotations

import json
import random
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from mbcsms import create_app
from tests import log_scan
from tests.helpers import AUTH_TOKEN, HELPLINE, PUBLIC_URL, app_env, new_sid, post_signed, sign
from tests.procfile_servers import server_env, start, stop, wait_until_up

MAX_REPLY = 1600

# Every number used below, for the log scan at the end. 555-01xx numbers are fictional.
NUMBERS = [f"+1555012{n:04d}" for n in range(3456, 3456 + 100)]
FORMATS = (
    lambda n: n,  # +15550123456
    lambda n: n[2:],  # 5550123456
    lambda n: n[1:],  # 15550123456
    lambda n: "whatsapp:" + n,
    lambda n: f"({n[2:5]}) {n[5:8]}-{n[8:]}",
    lambda n: f"+1 {n[2:5]}-{n[5:8]}-{n[8:]}",
)

@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    # One app for the fuzzing: hypothesis runs many examples in one test function.
    return create_app(app_env(tmp_path_factory.mktemp("adversarial")))


@pytest.fixture(scope="module")
def shared_client(shared_app: Flask) -> FlaskClient:
    return shared_app.test_client()


@pytest.fixture
def client(shared_client: FlaskClient) -> FlaskClient:
    # One app for the whole file keeps it fast (a catalog load per test adds up); every test
    # writes as its own senders, so none sees another's rate limit or opt-out.
    return shared_client


def twiml_messages(response: TestResponse) -> list[str]:
    """The reply's <Message> texts, after checking it is a 200 TwiML document within limits."""
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    assert all(child.tag == "Message" for child in root)
    bodies = [element.text or "" for element in root.iter("Message")]
    # Issue 12: a feelings reply is the kind line, the support answer and the helpline answer,
    # as up to three messages where one would pass its segment budget (Spanish); never more.
    assert len(bodies) <= 3
    assert all(0 < len(body) <= MAX_REPLY for body in bodies)
    return bodies


def post_raw(client: FlaskClient, form: dict[str, str], signature: str | None,
             url: str = PUBLIC_URL, **kwargs: object) -> TestResponse:
    headers = {"X-Forwarded-Proto": url.split(":")[0]}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post("/sms", data=form, base_url=f"http://{url.split('/')[2]}", headers=headers, **kwargs)


# -- fuzzing ----------------------------------------------------------------------------------

# Any text a phone can send, control characters and NUL included; lone surrogates cannot be
# encoded in a request at all, so they are left out.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
senders = st.one_of(
    st.sampled_from(NUMBERS[80:]).flatmap(lambda n: st.sampled_from([f(n) for f in FORMATS])),
    st.just(""),
)
field_names = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,15}", fullmatch=True).filter(
    lambda name: name not in ("From", "Body", "MessageSid", "SmsSid")
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(any_text, st.sampled_from(["STOP", "START", "1", "ESPAÑOL", "help"])),
       sender=senders, extra=st.dictionaries(field_names, any_text, max_size=5))
def test_any_signed_body_gets_valid_twiml(shared_client: FlaskClient, body: str, sender: str,
                                          extra: dict[str, str]) -> None:
    twiml_messages(post_signed(shared_client, body, sender=sender, extra=extra))


@settings(max_examples=100, deadline=None)
@given(sid=any_text, sms_sid=any_text, to=any_text, num_media=any_text)
def test_any_signed_parameters_get_valid_twiml(shared_client: FlaskClient, sid: str, sms_sid: str,
                                               to: str, num_media: str) -> None:
    form = {"From": NUMBERS[79], "Body": "HER2", "MessageSid": sid, "SmsSid": sms_sid, "To": to,
            "NumMedia": num_media}
    twiml_messages(post_raw(shared_client, form, sign(PUBLIC_URL, form)))


# -- odd requests -----------------------------------------------------------------------------

ODD_BODIES = {
    "empty": "",
    "5000 characters": "what is her2 " * 385,
    "5000 characters, no spaces": "x" * 5000,
    "nul and control characters": "her2\x00\x01\x07\x1b[31m\x7f\r\n\t\x0b\x0c",
    "xml injection": "</Message><Message>pwned</Message></Response><Response><Message>x",
    "html and entities": "<script>alert(1)</script> &amp; &lt;b&gt; <![CDATA[x]]> <?xml?> <!--",
    "emoji": "💔😢🎗️ what is her2 👩🏽‍⚕️",
    "rtl": "\u202eما هو سرطان الثدي النقيلي؟ \u05de\u05d4 \u200f",
    "only punctuation": "?!?!...,,,;;;",
    "numbers": "0" * 400,
    "huge number": "99999999999999999999999999999999",
    "format string": "%s %d {0} {helpline} {topics} ${PATH}",
    "sql": "'); DROP TABLE senders; --",
    "phone number in body": f"please call me at {NUMBERS[1]} or {NUMBERS[1][2:]}",
}


@pytest.mark.parametrize("body", ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_odd_bodies_get_valid_twiml(client: FlaskClient, body: str) -> None:
    sender = NUMBERS[60 + list(ODD_BODIES.values()).index(body)]
    bodies = twiml_messages(post_signed(client, body, sender=sender))
    assert not any("pwned" in text or "<script" in text for text in bodies)


def test_one_long_word_is_answered_quickly(client: FlaskClient) -> None:
    # A pasted URL or a held-down key: typo correction must not grow with the word's length
    # (it once took minutes for 1,600 letters, and gunicorn would kill the worker: a 502).
    for word in ("x" * 1600, "her2" * 400, "https://example.org/" + "a1b2" * 395):
        started = time.perf_counter()
        twiml_messages(post_signed(client, word, sender=NUMBERS[75]))
        assert time.perf_counter() - started < 2.0


def test_xml_in_the_body_cannot_add_a_message(client: FlaskClient) -> None:
    response = post_signed(client, ODD_BODIES["xml injection"], sender=NUMBERS[74])
    assert len(twiml_messages(response)) == 1
    assert b"pwned" not in response.data


def test_no_from(client: FlaskClient) -> None:
    assert len(twiml_messages(post_signed(client, "HER2", sender=None))) == 1


def test_no_body(client: FlaskClient) -> None:
    assert len(twiml_messages(post_signed(client, None, sender=NUMBERS[3]))) == 1


def test_no_from_no_body_no_sid(client: FlaskClient) -> None:
    twiml_messages(post_raw(client, {}, sign(PUBLIC_URL, {})))


def test_empty_values(client: FlaskClient) -> None:
    form = {"From": "", "Body": "", "MessageSid": "", "SmsSid": "", "To": ""}
    twiml_messages(post_raw(client, form, sign(PUBLIC_URL, form)))


def test_extra_unknown_fields(client: FlaskClient) -> None:
    extra = {"MediaUrl0": "https://evil.example.org/x.jpg", "NumMedia": "1", "X-Injected": "<x/>",
             "Body2": "STOP", "FromCity": "Nowhere", "OptOutType": "STOP"}
    assert len(twiml_messages(post_signed(client, "HER2", sender=NUMBERS[4], extra=extra))) == 1


def test_repeated_fields_are_signed_and_answered(client: FlaskClient) -> None:
    # Twilio's signature covers every value of a repeated field; the first Body is the one read.
    pairs = [("From", NUMBERS[4]), ("Body", "HER2"), ("Body", "STOP"), ("MessageSid", new_sid())]
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL, MultiDict(pairs))
    response = client.post("/sms", data=urllib.parse.urlencode(pairs), base_url="http://bot.example.org",
                           content_type="application/x-www-form-urlencoded",
                           headers={"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https"})
    assert len(twiml_messages(response)) == 1


def test_many_form_fields(client: FlaskClient) -> None:
    extra = {f"Field{i}": "x" * 20 for i in range(900)}
    assert len(twiml_messages(post_signed(client, "HER2", sender=NUMBERS[5], extra=extra))) == 1


def test_a_megabyte_form_is_answered_or_refused_never_crashed(client: FlaskClient) -> None:
    extra = {f"Field{i}": "x" * 200 for i in range(5000)}
    response = post_signed(client, "HER2", sender=NUMBERS[76], extra=extra)
    if response.status_code == 200:
        assert len(twiml_messages(response)) == 1
    else:  # a size limit (413) is a fine answer too
        assert 400 <= response.status_code < 500


def test_get_is_not_allowed(client: FlaskClient) -> None:
    response = client.get("/sms", base_url="http://bot.example.org",
                          query_string={"From": NUMBERS[6], "Body": "HER2"},
                          headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 405


@pytest.mark.parametrize("content_type, data", [
    ("application/json", b'{"From": "+15550123462", "Body": "STOP"}'),
    ("text/plain", b"From=%2B15550123462&Body=STOP"),
    ("application/xml", b"<From>+15550123462</From>"),
    ("application/x-www-form-urlencoded; charset=latin-1", b"Body=HER2"),
])
def test_wrong_content_type(client: FlaskClient, content_type: str, data: bytes) -> None:
    # The body is not a form, so there are no parameters: Twilio would sign the URL alone.
    response = client.post("/sms", data=data, content_type=content_type, base_url="http://bot.example.org",
                           headers={"X-Twilio-Signature": sign(PUBLIC_URL, {}), "X-Forwarded-Proto": "https"})
    assert response.status_code < 500
    if response.status_code == 200:
        twiml_messages(response)


def test_multipart_form_is_read_like_a_form(client: FlaskClient) -> None:
    form = {"From": NUMBERS[7], "Body": "HER2", "MessageSid": new_sid()}
    response = client.post("/sms", data=form, content_type="multipart/form-data",
                           base_url="http://bot.example.org",
                           headers={"X-Twilio-Signature": sign(PUBLIC_URL, form), "X-Forwarded-Proto": "https"})
    assert len(twiml_messages(response)) == 1


@pytest.mark.parametrize("host", ["bot.example.org:notaport", "bot.example.org:99999", "[::1", "a" * 300])
def test_bad_forwarded_host_is_refused_not_crashed(client: FlaskClient, host: str) -> None:
    form = {"From": NUMBERS[8], "Body": "HER2", "MessageSid": new_sid()}
    # Signed for the odd URL itself, and for another: a port that does not parse must not
    # crash the signature check on either path.
    for signed_for in (f"https://{host}/sms", PUBLIC_URL):
        response = client.post("/sms", data=form, base_url="http://bot.example.org", headers={
            "X-Twilio-Signature": sign(signed_for, form), "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": host})
        assert response.status_code < 500


# -- forged signatures ------------------------------------------------------------------------

def _forged(case: str) -> tuple[dict[str, str], str | None, str]:
    form = {"From": NUMBERS[9], "Body": "STOP", "MessageSid": new_sid()}
    if case == "another url":
        return form, sign("https://evil.example.org/sms", form), PUBLIC_URL
    if case == "another token":
        return form, sign(PUBLIC_URL, form, token="not-the-auth-token"), PUBLIC_URL
    if case == "tampered body":
        signature = sign(PUBLIC_URL, {**form, "Body": "HER2"})
        return form, signature, PUBLIC_URL
    if case == "extra field added":
        signature = sign(PUBLIC_URL, form)
        return {**form, "OptOutType": "STOP"}, signature, PUBLIC_URL
    if case == "plain http":
        return form, sign(PUBLIC_URL, form), "http://bot.example.org/sms"
    if case == "empty header":
        return form, "", PUBLIC_URL
    if case == "garbage header":
        return form, "\x00" * 28, PUBLIC_URL
    if case == "non-ascii header":
        return form, "é" * 28, PUBLIC_URL
    return form, None, PUBLIC_URL  # missing header


@pytest.mark.parametrize("case", ["another url", "another token", "tampered body", "extra field added",
                                  "plain http", "empty header", "garbage header", "non-ascii header",
                                  "missing header"])
def test_forged_signature_is_forbidden_and_changes_nothing(client: FlaskClient, case: str) -> None:
    form, signature, url = _forged(case)
    response = post_raw(client, form, signature, url=url)
    assert response.status_code == 403
    assert b"<Message" not in response.data and b"<Response" not in response.data
    # The forged STOP was not recorded: the same sender, properly signed, still gets answers.
    assert len(twiml_messages(post_signed(client, "HER2", sender=NUMBERS[9]))) == 1


# -- a flood from one sender ------------------------------------------------------------------

def test_a_stranger_text_in_the_signature_settings_is_refused_and_never_logged(
        client: FlaskClient, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    form = {"From": NUMBERS[90], "Body": "what is her2", "MessageSid": new_sid()}
    headers = {"X-Twilio-Signature": sign(PUBLIC_URL, form), "X-Forwarded-Proto": "https",
               "X-Twilio-Webhooks-Signature-Settings": f"algorithm={NUMBERS[91]}"}
    response = client.post("/sms", data=form, base_url="http://bot.example.org", headers=headers)
    assert response.status_code == 403 and b"<Message" not in response.data
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "signature_rejected" in logged and NUMBERS[91][2:] not in logged
    log_scan.collect("signature settings test", logged)


def test_flood_from_one_sender_stays_inside_the_rate_limit(client: FlaskClient) -> None:
    sender = FORMATS[3](NUMBERS[10])  # whatsapp:+1...
    replies = [twiml_messages(post_signed(client, "what is her2", sender=sender)) for _ in range(22)]
    content = [r for r in replies if r and HELPLINE not in r[0]]
    notices = [r for r in replies if r and HELPLINE in r[0]]
    assert len(content) == 20
    assert len(notices) == 1 and replies[20] == notices[0]
    assert replies[21] == []
    # Past the limit an emergency is still answered, and does not reopen the flood.
    crisis = twiml_messages(post_signed(client, "i want to kill myself", sender=sender))
    assert len(crisis) == 1 and "911" in crisis[0] and "988" in crisis[0]
    for body in ("her2", "hello", "1", "side effects"):
        assert twiml_messages(post_signed(client, body, sender=sender)) == []


# -- several gunicorn workers on one SQLite file ----------------------------------------------

def _send(url: str, form: dict[str, str]) -> tuple[int, bytes]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers={"X-Twilio-Signature": sign(url, form)})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The Procfile's web process with 3 workers on one SQLite file."""
    env = server_env(tmp_path, MBCSMS_DB=str(tmp_path / "state.db"), DATABASE_URL="", WEB_CONCURRENCY="3")
    server = start(tmp_path, "gunicorn", env)
    try:
        wait_until_up(server)
        yield f"{server.url}/sms", server.log
    finally:
        stop(server)
        log_scan.collect("gunicorn (adversarial)", server.output())


def test_gunicorn_workers_on_one_sqlite_file_record_every_opt_out(gunicorn: tuple[str, Path]) -> None:
    url, _ = gunicorn
    rng = random.Random(1234)
    senders = [FORMATS[i % len(FORMATS)](n) for i, n in enumerate(NUMBERS[16:56])]
    plans = []
    for sender in senders:
        bodies = [rng.choice(["what is her2", "hello", "side effects", "1", "tengo miedo", "clinical trials"])
                  for _ in range(5)]
        bodies.insert(rng.randrange(1, 5), rng.choice(["STOP", "stop please", "unsubscribe", "PARAR"]))
        plans.append((sender, bodies))

    def converse(plan: tuple[str, list[str]]) -> list[int]:
        sender, bodies = plan
        return [_send(url, {"From": sender, "Body": body, "MessageSid": new_sid()})[0] for body in bodies]

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = [status for result in pool.map(converse, plans) for status in result]
    assert len(statuses) == 40 * 6
    assert set(statuses) == {200}

    for sender in senders:
        status, body = _send(url, {"From": sender, "Body": "what is her2", "MessageSid": new_sid()})
        assert status == 200
        assert list(ET.fromstring(body)) == [], (sender, body)


def test_crafted_paths_cannot_break_or_forge_access_log_lines(gunicorn: tuple[str, Path]) -> None:
    url, log = gunicorn
    base = url.rsplit("/", 1)[0]
    host, port = base.split("//")[1].split(":")
    forged = '{"event": "forged", "status": 200}'
    paths = ["/%22x%5C", "/a%0A" + urllib.parse.quote(forged), "/sms/+15550123499", "/%E2%80%A8%0D"]
    for path in paths:
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            assert connection.recv(100).startswith(b"HTTP/1.1 404")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        access = [json.loads(line) for line in lines if line.startswith("{") and '"event": "http"' in line]
        if sum(entry["status"] == 404 for entry in access) >= len(paths):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("gunicorn did not log the 404s")
    for line in lines:
        if line.startswith("{"):
            assert json.loads(line)["event"] != "forged", line  # every JSON line parses; none forged
    assert "15550123499" not in "\n".join(lines)


# -- nothing logged names a sender ------------------------------------------------------------

def _pattern(number: str) -> re.Pattern[str]:
    # The ten national digits with any separators a formatter could put between them.
    return re.compile(r"[\s().\-]*".join(number[2:]))


def test_zz_nothing_logged_contains_a_phone_number() -> None:
    """Runs last in this file: scans what every test so far logged or printed, in the formats
    sent above (tests/log_scan.py scans the whole suite again at its end, for any number)."""
    text = log_scan.collected_text()
    assert '"event": "reply"' in text  # the collection worked
    assert '"event": "http"' in text or "/sms" in text  # and so did gunicorn's
    leaks = [number for number in NUMBERS if _pattern(number).search(text)]
    assert leaks == []

"""What the tests share: the test deployment's settings, fictional senders, our own numbers, and
requests signed exactly the way Twilio signs them."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SECRET = "test-secret-0123456789abcdef0123456789"
PUBLIC_URL = "https://bot.example.org/sms"
PATIENT = "+15550100001"  # 555-01xx numbers are fictional
HELPLINE = "1-877-465-6636"  # the Komen Breast Care Helpline, in every fallback and notice

_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{next(_sids):032d}"


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment variables for create_app: the test token and secret, SQLite in tmp_path."""
    env = {
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "MBCSMS_SECRET": SECRET,
        "MBCSMS_DB": str(tmp_path / "state.db"),
        "DATABASE_URL": "",
    }
    env.update(extra)
    return env


SendSms = Callable[..., TestResponse]


def post_signed(client: FlaskClient, body: str | None = "hello", sender: str | None = PATIENT,
                sid: str | None = None, url: str = PUBLIC_URL, token: str = AUTH_TOKEN,
                extra: dict[str, str] | None = None) -> TestResponse:
    """POST /sms as Twilio does behind a TLS-ending router: it signed the public https URL and
    the router forwards plain http with X-Forwarded-Proto and the original Host."""
    form = {"To": "+15550009999", "MessageSid": sid or new_sid(), "AccountSid": "AC" + "0" * 32}
    if sender is not None:
        form["From"] = sender
    if body is not None:
        form["Body"] = body
    form.update(extra or {})
    host = url.split("/")[2]
    return client.post(
        "/sms",
        data=form,
        base_url=f"http://{host}",
        headers={
            "X-Twilio-Signature": sign(url, form, token),
            "X-Forwarded-Proto": url.split(":")[0],
            "X-Forwarded-For": "203.0.113.5",
        },
    )

"""Twilio's door: ``POST /sms`` (SMS and WhatsApp), ``GET /livez`` and ``GET /healthz``.

request -> verify the signature -> Bot.answer -> TwiML. Nothing else happens here.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from functools import lru_cache

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.datastructures import MultiDict

from . import logs
from .bot import Bot, Inbound, OptOutNotRecorded
from .conversation import Reply

blueprint = Blueprint("webhook", __name__)

# Where Twilio posts messages (the number's webhook URL ends with it).
WEBHOOK_PATH = "/sms"
# Twilio's own limit for one message body; a longer reply would be refused.
MAX_BODY = 1600


def bot() -> Bot:
    the_bot: Bot = current_app.extensions["mbcsms"]
    return the_bot


def signature_is_valid(validators: tuple[RequestValidator, ...] | None) -> bool:
    """Signed with the Auth Token, or during a rotation with the secondary one
    (TWILIO_SECONDARY_AUTH_TOKEN)."""
    if validators is None:  # `mbcsms serve --dev` only, bound to 127.0.0.1
        return True
    return any(_signed_with(validator) for validator in validators)


def _signed_with(validator: RequestValidator) -> bool:
    headers = request.headers  # each use of Flask's request proxy costs a context lookup
    signature = headers.get("X-Twilio-Signature")
    if not signature:
        return False
    algorithm = get_signature_algorithm(headers.get("X-Twilio-Webhooks-Signature-Settings"))
    url, form = called_url(), _Params(request.form)
    # validate() always computes two HMACs, for the URL with and without its port. The URL as
    # it came (which is one of those two) is almost always the one Twilio signed: when it
    # matches, validate() would say True too, for half the work. Otherwise ask validate(), for
    # the URL as it came and as Werkzeug decodes it (a URL typed with "é" in the console).
    try:
        computed = validator.compute_signature(url, form, algorithm)
    except ValueError:
        # An algorithm Twilio's library does not know: refused here, since validate() would
        # log the header's text, which anyone can write (a phone number, say).
        return False
    # As bytes: compare_digest refuses str with non-ASCII, which a forged header may carry.
    if hmac.compare_digest(computed.encode(), signature.encode()):
        return True
    candidates = dict.fromkeys((url, request.url))  # both, or one when they are the same
    return any(validator.validate(each, form, signature, algorithm) for each in candidates)


class _Params:
    """The form as Twilio's validator reads it. It asks a form for ``getall`` first (Werkzeug's
    MultiDict has ``getlist``), and an AttributeError for each field, every request, cost a
    third of the signature's time."""

    __slots__ = ("form",)

    def __init__(self, form: MultiDict[str, str]) -> None:
        self.form = form

    def __iter__(self) -> Iterator[str]:
        return iter(self.form)

    def __len__(self) -> int:
        return len(self.form)

    def getall(self, name: str) -> list[str]:
        return self.form.getlist(name)


def called_url() -> str:
    """The URL Twilio called, as configured in the console: Twilio signs it byte for byte.

    ProxyFix restores scheme and host behind the router. The path and query are taken as they
    came (gunicorn's RAW_URI, Werkzeug's REQUEST_URI), because ``request.url`` decodes
    percent-escapes in the query ("?next=%2F" becomes "?next=/") and would fail a true signature.
    """
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        return f"{request.scheme}://{request.host}{raw}"
    return request.url


@lru_cache(maxsize=1024)
def _twiml_text(bodies: tuple[str, ...]) -> str:
    # Replies come from the catalog, a few hundred texts: serialise each once, not per message.
    # A reply too long for one message within its budget is several <Message>s, sent in order.
    response = MessagingResponse()
    for body in bodies:
        response.message(body[:MAX_BODY])
    return str(response)


def twiml(reply: Reply | None) -> Response:
    text = _twiml_text(reply.messages if reply is not None else ())
    return Response(text, status=200, content_type="text/xml; charset=utf-8")


@blueprint.post(WEBHOOK_PATH)
def sms() -> Response:
    if not signature_is_valid(current_app.config["MBCSMS_VALIDATORS"]):
        logs.event("signature_rejected", logging.WARNING, status=403)
        return Response("Forbidden\n", status=403, content_type="text/plain")
    form = request.form
    inbound = Inbound(
        sender=form.get("From") or None,
        body=form.get("Body", ""),
        message_sid=form.get("MessageSid") or form.get("SmsSid") or None,
        media=_num_media(form.get("NumMedia")),
    )
    try:
        reply = bot().answer(inbound)
    except OptOutNotRecorded:
        return Response("Opt-out not recorded; please retry\n", status=503, content_type="text/plain")
    return twiml(reply)


def _num_media(value: str | None) -> int:
    """Twilio's NumMedia (0-10); anything else counts as none."""
    try:
        return min(max(int(value or 0), 0), 10)
    except ValueError:
        return 0


@blueprint.get("/livez")
def livez() -> Response:
    """Liveness: 200 whenever this process can answer, whatever the store does (the platform's
    health check: a store outage must not get instances restarted, see docs/deploy.md)."""
    return Response("ok\n", status=200, content_type="text/plain")


@blueprint.get("/healthz")
def healthz() -> Response:
    """Readiness of the store: 200 when it answers; 503 while it fails or the breaker is open
    (requests then skip the store: see docs/deploy.md)."""
    problem = bot().health()
    if problem is not None:
        logs.event("health_failed", logging.ERROR, status=503, reason=problem[:200], breaker=bot().breaker.state)
        # Which store and the breaker's state, not why: the detail (a path, a host) is for the
        # logs, not for whoever polls this URL.
        which = problem.partition(":")[0]
        return Response(
            f"store unavailable: {which} (breaker {bot().breaker.state})\n", status=503, content_type="text/plain"
        )
    return Response("ok\n", status=200, content_type="text/plain")

"""Twilio's door: ``POST /sms`` (SMS and WhatsApp) and ``GET /healthz``.

request -> verify the signature -> Bot.answer -> TwiML. Nothing else happens here.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from . import logs
from .bot import Bot, Inbound, OptOutNotRecorded
from .conversation import Reply
from .store import StoreError

blueprint = Blueprint("webhook", __name__)

# Twilio's own limit for one message body; a longer reply would be refused.
MAX_BODY = 1600


def bot() -> Bot:
    return current_app.extensions["mbcsms"]


def signature_is_valid(validator: RequestValidator | None) -> bool:
    if validator is None:  # `mbcsms serve --dev` only, bound to 127.0.0.1
        return True
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        return False
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    # request.url is the URL Twilio called: ProxyFix restores scheme and host behind the router.
    return validator.validate(request.url, request.form, signature, algorithm)


def twiml(reply: Reply | None) -> Response:
    response = MessagingResponse()
    if reply is not None and reply.body:
        response.message(reply.body[:MAX_BODY])
    return Response(str(response), status=200, content_type="text/xml; charset=utf-8")


@blueprint.post("/sms")
def sms() -> Response:
    if not signature_is_valid(current_app.config["MBCSMS_VALIDATOR"]):
        logs.event("signature_rejected", logging.WARNING, status=403)
        return Response("Forbidden\n", status=403, content_type="text/plain")
    inbound = Inbound(
        sender=request.form.get("From") or None,
        body=request.form.get("Body", ""),
        message_sid=request.form.get("MessageSid") or request.form.get("SmsSid") or None,
    )
    try:
        reply = bot().answer(inbound)
    except OptOutNotRecorded:
        return Response("Opt-out not recorded; please retry\n", status=503, content_type="text/plain")
    return twiml(reply)


@blueprint.get("/healthz")
def healthz() -> Response:
    try:
        bot().store.check()
    except StoreError as error:
        logs.event("health_failed", logging.ERROR, status=503, reason=str(error)[:200])
        return Response(f"store unavailable: {str(error)[:200]}\n", status=503, content_type="text/plain")
    return Response("ok\n", status=200, content_type="text/plain")

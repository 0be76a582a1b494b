"""mbcsms: a text-message support line for people living with metastatic breast cancer."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs
from .bot import build_bot
from .config import Settings, environment
from .store import StateStore, StoreError

__all__ = ["create_app"]

MAX_REQUEST_BYTES = 256 * 1024


def create_app(config: Settings | Mapping[str, str] | None = None) -> Flask:
    """The application factory. ``config`` is a Settings, or environment variables that
    override the process environment (handy in tests), or None for the environment alone."""
    settings = config if isinstance(config, Settings) else Settings.from_env(environment(config))
    logs.configure(settings.log_level)
    app = _flask_app(settings)
    bot = build_bot(settings)
    app.extensions["mbcsms"] = bot
    _add_webhook(app)
    _trust_proxies(app, settings.proxy_hops)
    _check_store(bot.store)
    logs.event("started", store=bot.store.name)
    return app


def _flask_app(settings: Settings) -> Flask:
    app = Flask(__name__)
    # The form is read before its signature can be checked: bound what a stranger can make us
    # read. Twilio's own requests are a few kilobytes.
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["MBCSMS_SETTINGS"] = settings
    app.config["MBCSMS_VALIDATOR"] = _signature_validator(settings)
    return app


def _signature_validator(settings: Settings) -> RequestValidator | None:
    """Twilio's signature check, keyed with the Auth Token (which Settings guarantees outside dev
    mode). Only `mbcsms serve --dev` (127.0.0.1) runs without one."""
    return None if settings.dev else RequestValidator(settings.twilio_auth_token)


def _add_webhook(app: Flask) -> None:
    from .webhook import blueprint

    app.register_blueprint(blueprint)


def _trust_proxies(app: Flask, hops: int) -> None:
    """Behind a PaaS router that ends TLS, Twilio signed https://host/sms but we see http://;
    trust exactly as many X-Forwarded-* hops as there are proxies, no more."""
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]


def _check_store(store: StateStore) -> None:
    try:
        store.check()
    except StoreError as error:
        # Not fatal: questions are still answered and the store is tried again on each message;
        # /healthz says 503 until it answers.
        logs.event("store_unavailable_at_start", logging.ERROR, reason=str(error)[:200])

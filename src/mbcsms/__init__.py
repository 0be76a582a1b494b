"""mbcsms: a text-message support line for people living with metastatic breast cancer."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs
from .bot import Bot
from .catalog import Catalog
from .config import ConfigError, Settings
from .conversation import Conversation, RateLimit
from .store import StoreError, open_store

__all__ = ["create_app"]

MAX_REQUEST_BYTES = 256 * 1024


def create_app(config: Settings | Mapping[str, str] | None = None) -> Flask:
    """The application factory. ``config`` is a Settings, or environment variables that
    override the process environment (handy in tests), or None for the environment alone."""
    if isinstance(config, Settings):
        settings = config
    else:
        settings = Settings.from_env({**os.environ, **(config or {})})
    logs.configure(settings.log_level)

    app = Flask(__name__)
    # The form is read before its signature can be checked: bound what a stranger can make us
    # read. Twilio's own requests are a few kilobytes.
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["MBCSMS_SETTINGS"] = settings
    if not settings.dev and not settings.twilio_auth_token:
        raise ConfigError("TWILIO_AUTH_TOKEN is not set: it is needed to verify that requests come from Twilio")
    # Only `mbcsms serve --dev` (127.0.0.1) runs without checking signatures.
    app.config["MBCSMS_VALIDATOR"] = (
        None if settings.dev else RequestValidator(settings.twilio_auth_token or "")
    )
    catalog = Catalog.load(settings.locales)
    conversation = Conversation(catalog, RateLimit(settings.rate_limit, settings.rate_window_seconds))
    store = open_store(settings.database_url, str(settings.sqlite_path))
    app.extensions["mbcsms"] = Bot(conversation, store, settings.secret)

    from .webhook import blueprint

    app.register_blueprint(blueprint)
    if settings.proxy_hops:
        # Behind a PaaS router that ends TLS, Twilio signed https://host/sms but we see http://;
        # trust exactly as many X-Forwarded-* hops as there are proxies, no more.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    try:
        store.check()
    except StoreError as error:
        # Not fatal: questions are still answered and the store is tried again on each message;
        # /healthz says 503 until it answers.
        logs.event("store_unavailable_at_start", logging.ERROR, reason=str(error)[:200])
    logs.event("started", store=store.name)
    return app

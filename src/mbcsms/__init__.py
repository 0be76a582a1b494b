"""mbcsms: a text-message support line for people living with metastatic breast cancer."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs
from .bot import Bot, build_bot
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
    _add_metrics(app, bot, settings)
    _trust_proxies(app, settings.proxy_hops)
    _check_store(bot.store)
    _check_local_state(bot)
    bot.start_background()
    logs.event("started", store=bot.store.name)
    return app


def _flask_app(settings: Settings) -> Flask:
    app = Flask(__name__)
    # The form is read before its signature can be checked: bound what a stranger can make us
    # read. Twilio's own requests are a few kilobytes.
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["MBCSMS_SETTINGS"] = settings
    app.config["MBCSMS_VALIDATORS"] = _signature_validators(settings)
    return app


def _signature_validators(settings: Settings) -> tuple[RequestValidator, ...] | None:
    """Twilio's signature check, keyed with the Auth Token (which Settings guarantees outside dev
    mode), and with TWILIO_SECONDARY_AUTH_TOKEN too during a token rotation. Only
    `mbcsms serve --dev` (127.0.0.1) runs without one."""
    if settings.dev:
        return None
    tokens = (settings.twilio_auth_token, settings.twilio_secondary_auth_token)
    return tuple(RequestValidator(token) for token in tokens if token)


def _add_webhook(app: Flask) -> None:
    from .webhook import blueprint

    app.register_blueprint(blueprint)


def _add_metrics(app: Flask, bot: Bot, settings: Settings) -> None:
    from . import metrics

    metrics.install(app, bot, settings.metrics_token, settings.metrics_dir)


def _trust_proxies(app: Flask, hops: int) -> None:
    """Behind a PaaS router that ends TLS, Twilio signed https://host/sms but we see http://;
    trust exactly as many X-Forwarded-* hops as there are proxies, no more."""
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]


def _check_local_state(bot: Bot) -> None:
    """Opt changes taken during an outage are kept in a local file: say so at start if it cannot
    be written (they would then be refused with 503 during an outage)."""
    from .store.local import LocalStateError

    if bot.local is None:
        return
    try:
        bot.local.has_pending()
    except LocalStateError as error:
        logs.event("local_state_unavailable", logging.ERROR, reason=str(error)[:200])


def _check_store(store: StateStore) -> None:
    try:
        store.check()
    except StoreError as error:
        # Not fatal: crisis replies (and replies the bot can be sure of) still go out and the
        # store is tried again; /healthz says 503 until it answers.
        logs.event("store_unavailable_at_start", logging.ERROR, reason=str(error)[:200])

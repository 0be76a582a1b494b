"""``GET /metrics``: Prometheus text for what the bot did, per dyno.

Fed by the Bot's own hooks (``Bot.events``: its counters of outages, and each reply as it is
logged), never by a second path. Labels come only from fixed sets (the catalog's topic ids and
language codes; anything else is counted as "other"): no number, no message, no sender hash.

Under gunicorn each worker writes its figures to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multiprocess mode, set up by ``mbcsms.gunicorn_config``) and ``/metrics`` adds up every worker's,
dead ones included (counters only grow). Served only with ``Authorization: Bearer
$MBCSMS_METRICS_TOKEN``; 404 when that is unset.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .bot import Bot
from .conversation import OPTED_OUT, RATE_LIMIT, RATE_LIMITED
from .webhook import WEBHOOK_PATH

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

OTHER = "other"
# Topics of replies that are no topic of the catalog.
SPECIAL_TOPICS = (OPTED_OUT, RATE_LIMIT, RATE_LIMITED)

# Metrics of this process. In multiprocess mode their values live in files, one per worker.
REGISTRY = CollectorRegistry(auto_describe=True)
REPLIES = Counter("mbcsms_replies", "Replies decided, by topic and language (retries of an answered "
                  "message not counted; silent ones such as a repeated STOP included)",
                  ["topic", "lang"], registry=REGISTRY)
CRISIS = Counter("mbcsms_crisis_replies", "Crisis replies (911 and 988)", registry=REGISTRY)
OPT_OUTS = Counter("mbcsms_opt_outs", "Opt-out messages honoured (STOP, PARAR, ...)", registry=REGISTRY)
OPT_INS = Counter("mbcsms_opt_ins", "Opt-in messages honoured (START, ALTA, ...)", registry=REGISTRY)
STORE_FAILURES = Counter("mbcsms_store_failures", "Store calls that failed or timed out", registry=REGISTRY)
NOT_RECORDED = Counter("mbcsms_opt_changes_not_recorded", "Opt-outs or opt-ins recorded neither in the "
                       "store nor on local disk (answered 503)", registry=REGISTRY)
WITHHELD = Counter("mbcsms_replies_withheld_state_unknown", "Replies withheld during an outage because "
                   "nobody could say whether the sender opted out", registry=REGISTRY)
OUTAGE = Counter("mbcsms_store_outage_seconds", "Seconds the store was away, added when it returns",
                 registry=REGISTRY)
OUTAGE_EVENTS = ("opt_changes_kept_locally", "opt_changes_flushed", "replies_without_store", "crisis_without_store")
EVENTS = Counter("mbcsms_outage_events", "Other outage events of the bot", ["event"], registry=REGISTRY)
LATENCY = Histogram("mbcsms_request_latency_seconds", "Time to answer POST /sms", registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

_BY_EVENT = {
    "store_failures": STORE_FAILURES,
    "opt_changes_not_recorded": NOT_RECORDED,
    "replies_withheld_state_unknown": WITHHELD,
    "outage_seconds": OUTAGE,
}

blueprint = Blueprint("metrics", __name__)


class Recorder:
    """Hears one Bot's events and replies; labels only from the catalog's fixed sets."""

    def __init__(self, bot: Bot) -> None:
        catalog = bot.conversation.catalog
        self.topics = frozenset(topic.id for topic in catalog.source.topics) | frozenset(SPECIAL_TOPICS)
        self.languages = frozenset(catalog.languages)
        # Each label pair's counter, found once (labels() validates and locks every call);
        # bounded by the fixed sets above.
        self._replies: dict[tuple[str, str], Counter] = {}

    def event(self, name: str, amount: float) -> None:
        counter = _BY_EVENT.get(name)
        if counter is not None:
            counter.inc(amount)
        elif name in OUTAGE_EVENTS:
            EVENTS.labels(name).inc(amount)

    def reply(self, topic: str, lang: str) -> None:
        labels = (topic if topic in self.topics else OTHER, lang if lang in self.languages else OTHER)
        counter = self._replies.get(labels)
        if counter is None:
            counter = self._replies[labels] = REPLIES.labels(*labels)
        counter.inc()
        if topic == "crisis":
            CRISIS.inc()
        elif topic == "stop":
            OPT_OUTS.inc()
        elif topic == "start":
            OPT_INS.inc()


def install(app: Flask, bot: Bot, token: str | None, multiprocess_dir: Path | None) -> None:
    """Count what ``bot`` does, time POST /sms, and serve /metrics (404 without a token)."""
    recorder = Recorder(bot)
    bot.events.listeners.append(recorder.event)
    bot.events.reply_listeners.append(recorder.reply)
    app.config["MBCSMS_METRICS"] = (token, multiprocess_dir)
    app.wsgi_app = _TimedWebhook(app.wsgi_app)  # type: ignore[method-assign]
    app.register_blueprint(blueprint)


class _TimedWebhook:
    """Times POST /sms around Flask as gunicorn calls it. Flask's before/after request hooks
    cost twice the metrics themselves (bench/instructions.py: 45k instructions a request)."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != WEBHOOK_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        response = self.wsgi_app(environ, start_response)
        LATENCY.observe(time.perf_counter() - started)
        return response


def _authorized(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # As bytes: compare_digest refuses str with non-ASCII, which a stranger's header may carry.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@blueprint.get("/metrics")
def metrics() -> Response:
    token, multiprocess_dir = current_app.config["MBCSMS_METRICS"]
    if token is None:
        return Response("Not Found\n", status=404, content_type="text/plain")
    if not _authorized(token):
        return Response("Unauthorized\n", status=401, content_type="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE_LATEST)

"""Logs as one JSON object a line on stdout: what happened, never who said what.

Only the fields named here ever reach a log line; a phone number or a message body has no field
to go in, and nothing else of a request is logged (see ``quiet_request_logs``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

LOGGER_NAME = "mbcsms"
logger = logging.getLogger(LOGGER_NAME)

ALLOWED_FIELDS = (
    "topic", "lang", "latency_ms", "sender", "status", "reason", "store", "segments", "retry",
    "count", "outage_seconds", "version", "breaker",
)

_ALLOWED = frozenset(ALLOWED_FIELDS)


# One encoder for every line: json.dumps with any option builds a new one each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._stamp = (-1, "")  # (a second, its time text): one tuple, replaced whole (threads)

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._stamp
        if int(record.created) != second:  # a busy worker logs many lines a second
            second = int(record.created)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._stamp = (second, stamp)
        entry: dict[str, object] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields = record.__dict__
        for name in ALLOWED_FIELDS:
            value = fields.get(name)
            if value is not None:
                entry[name] = value
        return _ENCODER.encode(entry)


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stdout is at the time, so a redirected stdout gets the lines too."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def configure(level: str = "INFO") -> None:
    """JSON lines on stdout for the mbcsms logger; idempotent, so several apps in one process
    (tests, two instances) do not duplicate lines."""
    logger.setLevel(level)
    logger.propagate = False
    if not any(getattr(handler, "_mbcsms", False) for handler in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        handler._mbcsms = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    quiet_request_logs()


def quiet_request_logs() -> None:
    # Werkzeug's access log prints the request line; ours carries no number, but keep it to
    # warnings so a query string can never leak one.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    unknown = fields.keys() - _ALLOWED
    if unknown:  # a programming error, caught by the tests; never log what we did not vet
        raise ValueError(f"log fields not allowed: {sorted(unknown)}")
    if logger.isEnabledFor(level):
        # Straight to the handlers: Logger.log would first walk the stack for the calling file
        # and line, which no line of ours prints (a tenth of a request's logging).
        logger.handle(logger.makeRecord(LOGGER_NAME, level, "(mbcsms)", 0, name, (), None, extra=fields))


def sender_prefix(sender_key: str) -> str:
    """A short prefix of the keyed hash: enough to follow one conversation in the logs."""
    return sender_key[:10]

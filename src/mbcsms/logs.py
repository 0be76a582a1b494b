"""Logs as one JSON object a line on stdout: what happened, never who said what.

Only the fields named here ever reach a log line; a phone number or a message body has no field
to go in, and nothing else of a request is logged (see ``quiet_request_logs``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
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


# (a second, its time text): one tuple, replaced whole (threads).
_stamp = (-1, "")


def json_line(created: float, msecs: float, level_name: str, event: str, fields: Mapping[str, object]) -> str:
    """One log line: its time (UTC, to the millisecond), level and event, then the allowed
    fields of ``fields`` that are set."""
    global _stamp
    second, stamp = _stamp
    if int(created) != second:  # a busy worker logs many lines a second
        second = int(created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamp = (second, stamp)
    entry: dict[str, object] = {"time": f"{stamp}.{int(msecs):03d}Z", "level": level_name, "event": event}
    for name in ALLOWED_FIELDS:
        value = fields.get(name)
        if value is not None:
            entry[name] = value
    return _ENCODER.encode(entry)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json_line(record.created, record.msecs, record.levelname.lower(), record.getMessage(),
                         record.__dict__)


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

    def write_line(self, line: str) -> None:
        """``line`` as ``emit`` writes a record's: under the handler's lock, then flushed."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            stream = self.stream
            stream.write(line + self.terminator)
            stream.flush()


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


def _only_ours() -> _StdoutHandler | None:
    """The logger's one handler when it is ours and nothing filters: then a line can be written
    straight away, without a LogRecord (see ``event``)."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.filters:
        return None
    handler = handlers[0]
    if not isinstance(handler, _StdoutHandler) or handler.filters:
        return None
    return handler


def quiet_request_logs() -> None:
    # Werkzeug's access log prints the request line; ours carries no number, but keep it to
    # warnings so a query string can never leak one.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    unknown = fields.keys() - _ALLOWED
    if unknown:  # a programming error, caught by the tests; never log what we did not vet
        raise ValueError(f"log fields not allowed: {sorted(unknown)}")
    if not logger.isEnabledFor(level):
        return
    handler = _only_ours()
    if handler is not None and level >= handler.level:
        # As configured (stdout only): the line without a LogRecord, whose making (thread,
        # process and module names, a lock) cost as much as the line itself, once a request.
        created = time.time()
        line = json_line(created, (created - int(created)) * 1000, _LEVEL_NAMES.get(level) or
                         logging.getLevelName(level).lower(), name, fields)
        try:
            handler.write_line(line)
        except Exception:
            handler.handleError(_record(level, name, fields))
        return
    # Straight to the handlers: Logger.log would first walk the stack for the calling file
    # and line, which no line of ours prints (a tenth of a request's logging).
    logger.handle(_record(level, name, fields))


def _record(level: int, name: str, fields: dict[str, object]) -> logging.LogRecord:
    return logger.makeRecord(LOGGER_NAME, level, "(mbcsms)", 0, name, (), None, extra=fields)


# The record's levelname, lower-cased as JsonFormatter writes it, for the standard levels.
_LEVEL_NAMES = {
    level: logging.getLevelName(level).lower()
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
}


def sender_prefix(sender_key: str) -> str:
    """A short prefix of the keyed hash: enough to follow one conversation in the logs."""
    return sender_key[:10]

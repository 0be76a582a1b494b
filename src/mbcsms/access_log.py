"""gunicorn's access log, made with only the fields its format names.

gunicorn's ``Logger.atoms`` builds every field a format could use for every request: some twenty
plain ones plus one for each request header, response header and WSGI environ variable, about
60 µs a request on the VM of bench/README.md, while the Procfile's format prints three of them
(method, status, milliseconds). ``AccessLogger`` (the ``logger_class`` of
``mbcsms.gunicorn_config``) works out only the fields the format names, each as gunicorn does;
a format that names a header or an environ variable (``%({x-request-id}i)s``) gets gunicorn's
own ``atoms``, so every format still prints what gunicorn would print. gunicorn's ``access``
still writes the line: its quoting of strings and its ``-`` for a missing field apply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

# The names inside "%(...)s" (any conversion) of a format.
_NAME = re.compile(r"%\(([^)]*)\)")

Atom = Callable[[Logger, Any, Mapping[str, Any], timedelta], object]


def _status(resp: Any) -> object:
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


def _sent(resp: Any) -> int | None:
    return getattr(resp, "sent", None)


# gunicorn's plain fields (glogging.Logger.atoms, gunicorn 22 to 27), each worked out alone.
ATOMS: dict[str, Atom] = {
    "h": lambda log, resp, environ, took: environ.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, environ, took: "-",
    "u": lambda log, resp, environ, took: log._get_user(environ) or "-",
    "t": lambda log, resp, environ, took: log.now(),
    "r": lambda log, resp, environ, took: (
        f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"),
    "s": lambda log, resp, environ, took: _status(resp),
    "m": lambda log, resp, environ, took: environ.get("REQUEST_METHOD"),
    "U": lambda log, resp, environ, took: environ.get("PATH_INFO"),
    "q": lambda log, resp, environ, took: environ.get("QUERY_STRING"),
    "H": lambda log, resp, environ, took: environ.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, environ, took: _sent(resp) is not None and str(_sent(resp)) or "-",
    "B": lambda log, resp, environ, took: _sent(resp),
    "f": lambda log, resp, environ, took: environ.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, environ, took: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, environ, took: took.seconds,
    "D": lambda log, resp, environ, took: took.seconds * 1000000 + took.microseconds,
    "M": lambda log, resp, environ, took: took.seconds * 1000 + int(took.microseconds / 1000),
    "L": lambda log, resp, environ, took: f"{took.seconds:d}.{took.microseconds:06d}",
    "p": lambda log, resp, environ, took: f"<{os.getpid()}>",
}


def named_atoms(access_format: str) -> tuple[str, ...] | None:
    """The fields ``access_format`` names, or None when one of them is not a plain field (a
    header, a response header or an environ variable: gunicorn's own ``atoms`` makes those)."""
    names = tuple(dict.fromkeys(_NAME.findall(access_format)))
    return names if all(name in ATOMS for name in names) else None


class AccessLogger(Logger):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's Logger; its access lines are made from the fields their format names."""

    _format: str | None = None
    _names: tuple[str, ...] | None = None

    def atoms(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta) -> dict[str, object]:
        access_format = self.cfg.access_log_format
        if access_format != self._format:  # the first request, or a reload changed the format
            self._format, self._names = access_format, named_atoms(access_format)
        if self._names is None:
            atoms: dict[str, object] = super().atoms(resp, req, environ, request_time)
            return atoms
        return {name: ATOMS[name](self, resp, environ, request_time) for name in self._names}

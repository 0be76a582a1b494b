"""The access log's lines are gunicorn's own, made from only the fields the format names."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from mbcsms import gunicorn_config
from mbcsms.access_log import ATOMS, AccessLogger, named_atoms

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_format() -> str:
    web = next(line for line in PROCFILE.read_text(encoding="utf-8").splitlines() if line.startswith("web:"))
    found = re.search(r"--access-logformat '([^']*)'", web)
    assert found, web
    return found.group(1)


def request(method: str = "POST", path: str = "/sms", status: str = "200 OK") -> tuple[object, object, dict[str, str]]:
    resp = SimpleNamespace(status=status, sent=412, headers=[("Content-Type", "text/xml; charset=utf-8")])
    req = SimpleNamespace(headers=[("HOST", "bot.example.org"), ("X-REQUEST-ID", 'id "7"')])
    environ = {
        "REMOTE_ADDR": "10.0.0.9", "REQUEST_METHOD": method, "RAW_URI": path + "?a=%22b",
        "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": path, "QUERY_STRING": "a=%22b",
        "HTTP_USER_AGENT": 'TwilioProxy/1.1 "x"', "HTTP_REFERER": "https://example.org/",
    }
    return resp, req, environ


def lines(access_format: str, **request_fields: str) -> tuple[str, str]:
    """The line gunicorn's Logger and ours make for one request, as ``access`` formats it."""
    cfg = Config()
    cfg.set("access_log_format", access_format)
    resp, req, environ = request(**request_fields)
    took = timedelta(seconds=1, microseconds=2345)
    made = []
    for logger_class in (Logger, AccessLogger):
        log = logger_class(cfg)
        log.now = lambda: "[30/Nov/2026:12:00:00 +0000]"  # one clock for both
        made.append(access_format % log.atoms_wrapper_class(log.atoms(resp, req, environ, took)))
    return made[0], made[1]


def test_the_procfile_access_line_is_gunicorns() -> None:
    access_format = procfile_format()
    assert named_atoms(access_format) == ("m", "s", "M")
    theirs, ours = lines(access_format)
    assert ours == theirs == '{"event": "http", "method": "POST", "status": 200, "latency_ms": 1002}'
    theirs, ours = lines(access_format, method="GET", path="/x", status="404 NOT FOUND")
    assert ours == theirs


def test_every_plain_field_is_made_as_gunicorn_makes_it() -> None:
    access_format = " ".join(f"{name}=%({name})s" for name in ATOMS)
    assert named_atoms(access_format) == tuple(ATOMS)
    theirs, ours = lines(access_format)
    assert ours == theirs
    assert 'a=TwilioProxy/1.1 \\"x\\"' in ours  # gunicorn's quoting still applies


@pytest.mark.parametrize("access_format", ['%(h)s "%({x-request-id}i)s"', "%(s)s %({content-type}o)s",
                                           "%({path_info}e)s %(M)s", "%(nosuchfield)s %(m)s"])
def test_a_format_naming_headers_or_unknown_fields_gets_gunicorns_own_atoms(access_format: str) -> None:
    assert named_atoms(access_format) is None
    theirs, ours = lines(access_format)
    assert ours == theirs


def test_a_header_named_by_the_format_is_printed() -> None:
    theirs, ours = lines('%(h)s "%({x-request-id}i)s"')
    assert ours == theirs == '10.0.0.9 "id \\"7\\""'


def test_the_procfile_config_uses_it() -> None:
    assert gunicorn_config.logger_class == "mbcsms.access_log.AccessLogger"
    cfg = Config()
    cfg.set("logger_class", gunicorn_config.logger_class)
    assert cfg.logger_class is AccessLogger


def test_safe_atoms_is_what_gunicorn_wraps_with() -> None:
    # The quoting and the "-" for a missing field come from gunicorn's access(), not from us.
    assert AccessLogger.atoms_wrapper_class is SafeAtoms

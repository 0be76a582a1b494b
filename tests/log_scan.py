"""A pytest plugin: everything logged while the whole suite runs is scanned for phone numbers.

It collects every log record of the app (and of Flask, Werkzeug and the root logger), whatever
each test printed (stdout and stderr, as pytest captured them), and every ``*.log`` file the
tests' servers wrote under pytest's temporary directory (gunicorn's and PostgreSQL's output).
At the end of the session a phone number in any of it fails the run, naming where it was.

Test numbers are fictional (+1 555-01xx, and a few others); the patterns below find any number
written with a leading ``+`` and any US number in its national forms, with whatever separators a
formatter could put between the digits. The helpline and crisis numbers are our own, not a
sender's, and may appear.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbcsms.logs import LOGGER_NAME, JsonFormatter

PHONE_NUMBERS = re.compile(
    r"\+[\s().-]*\d(?:[\s().-]*\d){7,14}"  # international: +15550100001, +34 600 123 987
    r"|(?<![\w.])\(?[2-9]\d{2}\)?[\s.-]*\d{3}[\s.-]*\d{4}(?![\w.])"  # US national: (555) 010-0001
)
OUR_OWN_NUMBERS = ("8774656636",)  # the Komen Breast Care Helpline, 1-877-465-6636
# The sender field is a keyed hash prefix: ten hex characters, which may happen to be digits.
# In a JSON line ("sender": "...") and in a record's repr ('sender': '...').
SENDER_FIELD = re.compile(r"""(["'])sender\1: (["'])[0-9a-f]{10}\2""")

_collected: list[tuple[str, str]] = []  # (where, text)
_FORMATTER = JsonFormatter()


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # The JSON line as it reaches stdout, and every attribute of the record, in case
        # something rides along that the formatter would leave out.
        where = f"log record {record.name}"
        collect(where, _FORMATTER.format(record))
        collect(where, repr(vars(record)))


def collect(where: str, text: str) -> None:
    """Add output the plugin cannot see by itself (a server's, read before its files go)."""
    _collected.append((where, text))


def collected_text() -> str:
    """Everything collected so far, for a test that scans for particular numbers."""
    return "\n".join(text for _, text in _collected)


_handler = _Collect(logging.DEBUG)
_LOGGERS = (LOGGER_NAME, "", "werkzeug", "flask.app")


def pytest_configure(config: pytest.Config) -> None:
    for name in _LOGGERS:
        logging.getLogger(name).addHandler(_handler)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, text in report.sections:
        if text:
            collect(f"{report.nodeid} ({title})", text)


def _server_logs(config: pytest.Config) -> Iterator[tuple[str, str]]:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    for path in Path(factory.getbasetemp()).rglob("*.log"):
        if path.is_file():
            yield str(path), path.read_text(encoding="utf-8", errors="replace")


def phone_numbers_in(text: str) -> list[str]:
    text = SENDER_FIELD.sub("sender: <key>", text)
    found = (match.group(0) for match in PHONE_NUMBERS.finditer(text))
    return [number for number in found if re.sub(r"\D", "", number)[-10:] not in OUR_OWN_NUMBERS]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for name in _LOGGERS:
        logging.getLogger(name).removeHandler(_handler)
    if session.testscollected == 0 or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return
    leaks = [
        (where, number)
        for where, text in [*_collected, *_server_logs(session.config)]
        for number in phone_numbers_in(text)
    ]
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"log scan: a phone number was logged {len(leaks)} times, first in:"]
        lines += [f"  {where}: {number!r}" for where, number in leaks[:10]]
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

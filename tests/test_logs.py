"""The JSON log line: what the formatter writes for a record."""

from __future__ import annotations

import json
import logging
import re

import pytest

from mbcsms import logs
from mbcsms.logs import LOGGER_NAME, JsonFormatter


def _record(created: float, **fields: object) -> logging.LogRecord:
    record = logging.getLogger(LOGGER_NAME).makeRecord(
        LOGGER_NAME, logging.INFO, "(mbcsms)", 0, "reply", (), None, extra=fields)
    record.created, record.msecs = created, (created % 1) * 1000
    return record


def test_a_line_is_the_json_of_its_time_level_event_and_allowed_fields() -> None:
    line = JsonFormatter().format(_record(1_764_460_800.25, topic="her2", lang="es", retry=None,
                                          latency_ms=1.5, reason='dijo "¿qué?"', other="x"))
    assert json.loads(line) == {"time": "2025-11-30T00:00:00.250Z", "level": "info", "event": "reply",
                                "topic": "her2", "lang": "es", "reason": 'dijo "¿qué?"', "latency_ms": 1.5}
    assert "¿qué?" in line  # written as UTF-8, not escaped


def test_each_line_gets_its_own_second_whatever_came_before() -> None:
    formatter = JsonFormatter()
    seconds = [1_764_460_800, 1_764_460_801, 1_764_460_800, 1_764_460_862, 1_764_460_862]
    times = [json.loads(formatter.format(_record(second + 0.125)))["time"] for second in seconds]
    assert times == ["2025-11-30T00:00:00.125Z", "2025-11-30T00:00:01.125Z", "2025-11-30T00:00:00.125Z",
                     "2025-11-30T00:01:02.125Z", "2025-11-30T00:01:02.125Z"]


def _only_our_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The logger as ``configure`` leaves it in production: our stdout handler alone (the test
    suite's log scan adds one of its own to every run)."""
    logs.configure("INFO")
    ours = [handler for handler in logs.logger.handlers if isinstance(handler, logs._StdoutHandler)]
    assert len(ours) == 1
    monkeypatch.setattr(logs.logger, "handlers", ours)


def test_an_event_is_written_straight_to_stdout_as_the_formatter_writes_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _only_our_handler(monkeypatch)
    assert logs._only_ours() is not None
    fields = {"topic": "her2", "lang": "es", "retry": None, "latency_ms": 1.5, "reason": 'dijo "¿qué?"'}
    logs.event("reply", **fields)
    logs.event("store_breaker_opened", logging.ERROR, reason="x")
    logs.event("hidden", logging.DEBUG, reason="below the level")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    formatted = json.loads(JsonFormatter().format(_record(1_764_460_800.25, **fields)))
    assert {k: v for k, v in first.items() if k != "time"} == {k: v for k, v in formatted.items() if k != "time"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second == {"time": second["time"], "level": "error", "event": "store_breaker_opened", "reason": "x"}
    assert "¿qué?" in lines[0]


def test_another_handler_gets_every_event_as_a_record(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _only_our_handler(monkeypatch)
    records: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = records.append  # type: ignore[method-assign]
    monkeypatch.setattr(logs.logger, "handlers", [*logs.logger.handlers, listener])
    assert logs._only_ours() is None
    logs.event("reply", topic="her2")
    assert [(r.getMessage(), r.topic) for r in records] == [("reply", "her2")]  # type: ignore[attr-defined]
    assert json.loads(capsys.readouterr().out)["topic"] == "her2"  # and stdout still has the line

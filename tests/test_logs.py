"""The JSON log line: what the formatter writes for a record."""

from __future__ import annotations

import json
import logging

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

"""The whole-suite log scan (tests/log_scan.py) sees the app's log lines, knows a phone number."""

from __future__ import annotations

import pytest

from mbcsms import logs
from tests import log_scan
from tests.helpers import HELPLINE


def test_the_scan_collects_the_app_log_lines() -> None:
    logs.configure("INFO")
    before = len(log_scan._collected)
    logs.event("reply", topic="her2", lang="en", sender="0123456789")
    assert any('"event": "reply"' in text for _, text in log_scan._collected[before:])


@pytest.mark.parametrize("text", [
    "+15550100001", "whatsapp:+15550100001", "+1 (555) 010-0001", "+1 555-010-0001",
    "(555) 010-0001", "555.010.0001", "5550100001", "+34 600 123 987", "from=+447700900123",
])
def test_phone_numbers_are_found(text: str) -> None:
    assert log_scan.phone_numbers_in(f"some log line {text} end") != []


@pytest.mark.parametrize("text", [
    '{"event": "reply", "sender": "6563796762", "latency_ms": 0.53}',  # a hash prefix of digits
    "{'sender': '1234567890', 'created': 2763884800.125, 'thread': 140234567890123}",
    f"call the helpline at {HELPLINE}, or 911, or 988",
    '"time": "2026-11-23T08:03:52.993Z"', "MessageSid SM00000000000000000005550100001",
])
def test_other_numbers_are_not_phone_numbers(text: str) -> None:
    assert log_scan.phone_numbers_in(text) == []

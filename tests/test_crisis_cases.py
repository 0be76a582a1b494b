"""Crisis recall and false alarms on 2,292 patient-style messages (tests/data/crisis_cases.jsonl).

Six sets written by helpers from the rules alone: ``redteam`` (585 crises, 297 ordinary
messages with alarming words), ``heldout`` (200 and 150), ``heldout2`` (180 and 120, crises of
every kind), ``heldout3`` (150 and 100, by an oncology-triage brief), ``heldout4`` (150 and 100,
phone-typed: rambling, abbreviations, regional Spanish) and ``heldout5`` (160 and 100,
euphemistic wording and symptoms in lay words), the last five written without seeing the
keyword lists and measured before their misses were added (55.5%, 65.6%, 69.3%, 84.0% and
71.9% recall then). All were then used to add phrases, so they are
regression cases now. Missing a crisis is far worse than an extra 911/988, so the bar for
recall is high and false alarms are only kept in check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbcsms.conversation import Conversation, SenderState

CASES = [json.loads(line) for line in (Path(__file__).parent / "data" / "crisis_cases.jsonl")
         .read_text(encoding="utf-8").splitlines() if line.strip()]
NOW = 1_700_000_000.0
MIN_RECALL = 0.94
MAX_FALSE_ALARMS = 0.04


def is_crisis(conversation: Conversation, text: str) -> bool:
    return conversation.reply_to(text, SenderState(), NOW)[0].topic == "crisis"


@pytest.mark.parametrize("kind", ["suicide", "medical", "mixed"])
def test_crises_are_caught(conversation: Conversation, kind: str) -> None:
    cases = [case["text"] for case in CASES if case["crisis"] and case["kind"] == kind]
    missed = [text for text in cases if not is_crisis(conversation, text)]
    assert len(cases) >= 150
    assert 1 - len(missed) / len(cases) >= MIN_RECALL, missed


def test_ordinary_messages_rarely_get_the_crisis_reply(conversation: Conversation) -> None:
    cases = [case["text"] for case in CASES if not case["crisis"]]
    alarms = [text for text in cases if is_crisis(conversation, text)]
    assert len(cases) > 400
    assert len(alarms) / len(cases) <= MAX_FALSE_ALARMS, alarms

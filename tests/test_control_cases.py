"""Opt-outs, opt-ins and language switches on 721 patient-style messages
(tests/data/control_cases.jsonl).

Two sets written by helpers from the rules alone (453, then 268 held out: no false opt-out or
opt-in, 14 misses before their fixes), then used to fix what they found, so they are regression
cases now, not a held-out sample. Cases the writers marked debatable are left out. ``case`` says
what must happen: ``false_optout`` must not opt out, ``optout`` must, ``false_optin`` (sent by
someone opted out) must not opt back in, ``optin`` must, ``lang_no`` must not switch the language,
``lang_yes`` must switch to ``lang``. ``before`` is the sender's state: none, opted out, or a chosen
language.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mbcsms.conversation import Conversation, SenderState

CASES = [json.loads(line) for line in (Path(__file__).parent / "data" / "control_cases.jsonl")
         .read_text(encoding="utf-8").splitlines() if line.strip()]
NOW = 1_700_000_000.0
# Silencing someone who did not ask, or messaging someone who opted out, is never acceptable.
MUST_ALL_PASS = {"false_optout", "false_optin"}
AT_LEAST = 0.95  # as the labelled sets in test_eval.py


def state_before(before: str | None) -> SenderState:
    if before == "opted_out":
        return SenderState(opted_out=True)
    if before in ("en", "es"):
        return SenderState(lang=before, last_lang=before)
    return SenderState()


def behaves(conversation: Conversation, case: dict[str, str | None]) -> bool:
    before = state_before(case["before"])
    answer, after = conversation.reply_to(str(case["text"]), before, NOW)
    return {
        "false_optout": not after.opted_out,
        "optout": after.opted_out,
        "false_optin": after.opted_out,
        "optin": not after.opted_out,
        "lang_no": after.lang == before.lang and answer.topic != "language",
        "lang_yes": after.lang == case.get("lang"),
    }[str(case["case"])]


def test_the_cases_cover_every_kind() -> None:
    assert set(Counter(case["case"] for case in CASES)) == {
        "false_optout", "optout", "false_optin", "optin", "lang_no", "lang_yes"}


@pytest.mark.parametrize("kind", ["false_optout", "optout", "false_optin", "optin", "lang_no", "lang_yes"])
def test_control_cases(conversation: Conversation, kind: str) -> None:
    cases = [case for case in CASES if case["case"] == kind]
    wrong = [case["text"] for case in cases if not behaves(conversation, case)]
    if kind in MUST_ALL_PASS:
        assert wrong == []
    else:
        assert 1 - len(wrong) / len(cases) >= AT_LEAST, wrong
